//! Sightline models: image operations, the ONNX Runtime engine, task models, and the registry that
//! builds them from a model folder.

pub mod classifier;
pub mod engine;
pub mod error;
pub mod image;
pub mod load_options;
pub mod load_pool;
pub mod model_config;
pub mod ocr;
pub mod pipeline;
pub mod registry;
pub mod tensor_model;
pub mod yolo;

pub use crate::image::decode::DecodeLimits;
pub use engine::{init_runtime, RuntimeInfo};
pub use error::ModelError;
pub use load_options::LoadOptions;
pub use load_pool::LoadPool;
pub use registry::ModelRegistry;
