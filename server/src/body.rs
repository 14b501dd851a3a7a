//! Reading request bodies with a hard size bound, and parsing JSON into a 422 on failure.

use actix_web::web;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub async fn read_limited(payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if crate::request_body::timed_out_error(&e) => Err(ApiError::BodyTimeout),
        Ok(Err(e)) => Err(ApiError::BadRequest(format!("Could not read the request body: {e}"))),
        Err(_) => Err(ApiError::PayloadTooLarge(limit)),
    }
}

/// Parses a JSON body; malformed JSON, missing fields and wrong types are all 422, as FastAPI does.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::Validation(format!("Invalid request body: {e}")))
}
