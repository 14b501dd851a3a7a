//! Image operations: decoding (bounded), the reference pipelines' adjustments, resizing and
//! letterboxing, the input tensor, and drawing the visualisation.

pub mod adjust;
pub mod decode;
pub mod drawing;
pub mod letterbox;
pub mod preprocess;
pub mod resize;
pub mod tensor;
