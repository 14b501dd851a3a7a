//! The one error type of the models crate; it converts into `CoreError` at the manager boundary.

use std::path::PathBuf;

use sightline_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("ONNX Runtime could not be initialised from ORT_DYLIB_PATH={path}: {reason}")]
    Runtime { path: String, reason: String },
    #[error("{0}")]
    BadImage(String),
    #[error("{}: {reason}", file.display())]
    BrokenModel { file: PathBuf, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    Inference(String),
}

impl From<ModelError> for CoreError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Runtime { .. } => CoreError::Internal(e.to_string()),
            ModelError::BadImage(m) => CoreError::BadImage(m),
            ModelError::BrokenModel { file, reason } => CoreError::BrokenModel { file, reason },
            ModelError::Unsupported(m) => CoreError::UnsupportedModel(m),
            ModelError::Overloaded(m) => CoreError::Overloaded(m),
            ModelError::Inference(m) => CoreError::Inference(m),
        }
    }
}
