//! The one error type of the core crate. `models` converts into it; `server` maps it to HTTP statuses.

use std::path::PathBuf;

/// Cloneable because a single failed load is reported to every request that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CoreError {
    #[error("Invalid Model ID sent in request: {0}")]
    InvalidModelId(String),
    #[error("Model not found: {0}")]
    ModelNotFound(String),
    #[error("Could not load input image. Cause: {0}")]
    BadImage(String),
    #[error("Invalid request parameter: {0}")]
    InvalidParameter(String),
    #[error("Model {model_id} is a {actual} model and cannot serve a {requested} request")]
    TaskMismatch { model_id: String, actual: String, requested: String },
    #[error("Model package is broken: {file}: {reason}")]
    BrokenModel { file: PathBuf, reason: String },
    #[error("Model architecture not supported: {0}")]
    UnsupportedModel(String),
    #[error("Model {0} is busy: its inference queue is full; retry the request")]
    Overloaded(String),
    #[error("Inference failed: {0}")]
    Inference(String),
    #[error("Internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// A short, stable name used as a metrics label and in logs.
    pub fn kind(&self) -> &'static str {
        match self {
            CoreError::InvalidModelId(_) => "invalid_model_id",
            CoreError::ModelNotFound(_) => "model_not_found",
            CoreError::BadImage(_) => "bad_image",
            CoreError::InvalidParameter(_) => "invalid_parameter",
            CoreError::TaskMismatch { .. } => "task_mismatch",
            CoreError::BrokenModel { .. } => "broken_model",
            CoreError::UnsupportedModel(_) => "unsupported_model",
            CoreError::Overloaded(_) => "overloaded",
            CoreError::Inference(_) => "inference",
            CoreError::Internal(_) => "internal",
        }
    }
}
