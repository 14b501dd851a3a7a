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
    /// An input the model cannot take as it is (a text past its tokenizer's limit).
    #[error("Invalid input: {0}")]
    InvalidInput(String),
    /// A tensor that does not fit the model's signature or its own shape (the protocol's 400).
    #[error("{0}")]
    InvalidTensor(String),
    #[error("Model {model_id} is a {actual} model and cannot serve a {requested} request")]
    TaskMismatch { model_id: String, actual: String, requested: String },
    #[error("Model package is broken: {file}: {reason}")]
    BrokenModel { file: PathBuf, reason: String },
    #[error("Model architecture not supported: {0}")]
    UnsupportedModel(String),
    /// The model's queue is over its count limit and its wait bound (429 with `Retry-After`).
    #[error("{message}")]
    Overloaded { message: String, retry_after_secs: u64 },
    #[error("Inference failed: {0}")]
    Inference(String),
    /// The model source rejected the credentials (401).
    #[error("Unauthorized access to the model source - check the API key and make sure it is valid for the workspace you use: {0}")]
    SourceUnauthorized(String),
    /// The model source refused access (403).
    #[error(
        "Unauthorized access to the model source - check that the API key or credentials have the required scopes: {0}"
    )]
    SourceForbidden(String),
    /// The model API's 402.
    #[error("Not enough credits to perform this request. Verify your workspace billing page: {0}")]
    SourcePaymentRequired(String),
    /// The model API's 423.
    #[error("Model API usage is paused. Please contact your workspace administrator to re-enable API keys: {0}")]
    SourceLocked(String),
    /// The source could not be reached, failed (5xx) or cut a download short, on every attempt.
    #[error("Could not fetch the model from its source; retry later: {0}")]
    SourceUnavailable(String),
    #[error("Timeout when attempting to fetch the model from its source: {0}")]
    SourceTimeout(String),
    /// The source answered, but not with something we can use (unexpected status, malformed metadata).
    #[error("Request to the model source failed: {0}")]
    SourceBadResponse(String),
    /// The local model cache itself failed (disk full, permissions).
    #[error("Model cache error: {0}")]
    Cache(String),
    /// The model would not fit in `MAX_MODEL_MEMORY` even after every evictable model was evicted.
    #[error("Not enough memory for model {model_id}: it needs about {needed_bytes} bytes, and {available_bytes} of MAX_MODEL_MEMORY={budget_bytes} are left with the models that cannot be evicted (pinned or in use by a load)")]
    InsufficientMemory { model_id: String, needed_bytes: u64, available_bytes: u64, budget_bytes: u64 },
    #[error("Internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// Caused by what the client sent (an id no source has, a bad image or parameter, a busy
    /// model), not by the server or its environment: logged as a warning, never an error.
    pub fn caused_by_client(&self) -> bool {
        matches!(
            self,
            CoreError::InvalidModelId(_)
                | CoreError::ModelNotFound(_)
                | CoreError::BadImage(_)
                | CoreError::InvalidParameter(_)
                | CoreError::InvalidInput(_)
                | CoreError::InvalidTensor(_)
                | CoreError::TaskMismatch { .. }
                | CoreError::Overloaded { .. }
        )
    }

    /// A short, stable name used as a metrics label and in logs.
    pub fn kind(&self) -> &'static str {
        match self {
            CoreError::InvalidModelId(_) => "invalid_model_id",
            CoreError::ModelNotFound(_) => "model_not_found",
            CoreError::BadImage(_) => "bad_image",
            CoreError::InvalidParameter(_) => "invalid_parameter",
            CoreError::InvalidInput(_) => "invalid_input",
            CoreError::InvalidTensor(_) => "invalid_tensor",
            CoreError::TaskMismatch { .. } => "task_mismatch",
            CoreError::BrokenModel { .. } => "broken_model",
            CoreError::UnsupportedModel(_) => "unsupported_model",
            CoreError::Overloaded { .. } => "overloaded",
            CoreError::Inference(_) => "inference",
            CoreError::SourceUnauthorized(_) => "source_unauthorized",
            CoreError::SourceForbidden(_) => "source_forbidden",
            CoreError::SourcePaymentRequired(_) => "source_payment_required",
            CoreError::SourceLocked(_) => "source_locked",
            CoreError::SourceUnavailable(_) => "source_unavailable",
            CoreError::SourceTimeout(_) => "source_timeout",
            CoreError::SourceBadResponse(_) => "source_bad_response",
            CoreError::Cache(_) => "cache",
            CoreError::InsufficientMemory { .. } => "insufficient_memory",
            CoreError::Internal(_) => "internal",
        }
    }

    /// Worth another attempt after a pause: the source may come back.
    pub fn is_transient(&self) -> bool {
        matches!(self, CoreError::SourceUnavailable(_) | CoreError::SourceTimeout(_))
    }
}
