//! Sightline models: image operations, ONNX Runtime sessions, task models, and the registry that
//! builds them from a model folder.

pub mod classifier;
pub mod contour;
pub mod drawing;
pub mod error;
pub mod image_adjust;
pub mod image_decode;
pub mod instance_mask;
pub mod letterbox;
pub mod model_config;
pub mod nms;
pub mod ocr;
pub mod onnx_worker;
pub mod preprocess;
pub mod registry;
pub mod resize;
pub mod rle;
pub mod runtime;
pub mod yolo_model;
pub mod yolo_output;

pub use error::ModelError;
pub use image_decode::DecodeLimits;
pub use registry::{ModelRegistry, RegistryOptions};
pub use runtime::{init_runtime, RuntimeInfo};
