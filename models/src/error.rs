//! The one error type of the models crate; it converts into `CoreError` at the manager boundary.

use std::path::PathBuf;

use sightline_core::CoreError;
use sightline_engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The engine's own failures (a session that cannot be built or run, a full queue).
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    BadImage(String),
    #[error("{}: {reason}", file.display())]
    BrokenModel { file: PathBuf, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Inference(String),
    /// A request the model cannot take (a text over its tokenizer's limit).
    #[error("{0}")]
    InvalidInput(String),
}

impl From<ModelError> for CoreError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Engine(e) => e.into(),
            ModelError::BadImage(m) => CoreError::BadImage(m),
            ModelError::BrokenModel { file, reason } => CoreError::BrokenModel { file, reason },
            ModelError::Unsupported(m) => CoreError::UnsupportedModel(m),
            ModelError::Inference(m) => CoreError::Inference(m),
            ModelError::InvalidInput(m) => CoreError::InvalidInput(m),
        }
    }
}
