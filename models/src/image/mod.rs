//! Image operations: decoding (bounded), the reference pipelines' adjustments, resizing and
//! letterboxing, the input tensor, drawing the visualisation, and a binary mask's contour and
//! run-length encoding.

pub mod adjust;
pub mod contour;
pub mod decode;
pub mod drawing;
pub mod letterbox;
pub mod pillow;
pub mod preprocess;
pub mod resize;
pub mod rle;
pub mod tensor;
