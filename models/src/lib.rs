//! Sightline models: the registry that builds a model from its folder, the task families under
//! `tasks/` (one folder each), and the image operations they share. Models reach ONNX Runtime only
//! through the engine's interface (`sightline_engine`); see README.md for adding a family.

pub mod error;
pub mod image;
pub mod load_options;
pub mod model_config;
pub mod registry;
pub mod tasks;

pub use crate::image::decode::DecodeLimits;
pub use error::ModelError;
pub use load_options::LoadOptions;
pub use registry::ModelRegistry;
