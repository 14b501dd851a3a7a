//! The one error type of the engine crate; task models take it into their own, and it converts
//! into `CoreError` where it reaches the manager.

use std::path::PathBuf;

use sightline_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("ONNX Runtime could not be initialised from ORT_DYLIB_PATH={path}: {reason}")]
    Runtime { path: String, reason: String },
    /// A model file that no provider could build or run at load time.
    #[error("{}: {reason}", file.display())]
    BrokenModel { file: PathBuf, reason: String },
    /// The model's queue refused the request (over its count limit and its wait bound).
    #[error(transparent)]
    Refused(CoreError),
    #[error("{0}")]
    Inference(String),
}

impl From<EngineError> for CoreError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Runtime { .. } => CoreError::Internal(e.to_string()),
            EngineError::BrokenModel { file, reason } => CoreError::BrokenModel { file, reason },
            EngineError::Refused(e) => e,
            EngineError::Inference(m) => CoreError::Inference(m),
        }
    }
}
