//! The failures the routes document, with their bodies (the statuses themselves are decided in
//! `crate::error`).

use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

use crate::error::ErrorBody;

/// The failures every inference route can answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum InferErrors {
    /// Undecodable or refused image, invalid model id, bad mask arguments.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// `SIGHTLINE_API_KEY` is set and the request did not carry it (or the model API refused the key).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No model source has this model.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Body larger than `MAX_BODY_BYTES`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Malformed JSON, missing fields, out-of-range parameters (with FastAPI's `detail`).
    #[response(status = 422)]
    Invalid(ErrorBody),
    /// The model's queue is full; retry after `Retry-After`.
    #[response(status = 429)]
    Busy(ErrorBody),
    /// Broken model package or internal error.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// A model source is unavailable; retry after `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The protocol's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProtocolErrorBody {
    pub error: String,
}

/// What a protocol inference can fail with, in the protocol's body.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ProtocolInferErrors {
    /// Malformed body, or tensors that do not fit the model.
    #[response(status = 400)]
    BadRequest(ProtocolErrorBody),
    /// No source has the model.
    #[response(status = 404)]
    NotFound(ProtocolErrorBody),
    /// Body larger than `MAX_BODY_BYTES`.
    #[response(status = 413)]
    TooLarge(ProtocolErrorBody),
    /// The model's queue is full; retry after `Retry-After`.
    #[response(status = 429)]
    Busy(ProtocolErrorBody),
    /// Broken model or internal error.
    #[response(status = 500)]
    Internal(ProtocolErrorBody),
    /// A model source is unavailable, or the load takes longer than `MODEL_LOAD_WAIT_SECS`.
    #[response(status = 503)]
    Unavailable(ProtocolErrorBody),
}
