//! The task families, one folder each; the registry (`crate::registry`) maps a model folder to one
//! of them. Each imports only the engine's interface, `crate::image` and its own files.

pub mod classifier;
pub mod embedding;
pub mod instances;
pub mod ocr;
pub mod rfdetr;
pub mod tensor;
pub mod yolo;
