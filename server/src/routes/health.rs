//! `/info`, `/healthz`, `/readiness`, `/metrics` (Roboflow spec §11).

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use prometheus::{Encoder, TextEncoder};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn info(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "Sightline",
        "version": env!("CARGO_PKG_VERSION"),
        "uuid": state.server_uuid,
        "onnxruntime": state.runtime,
    }))
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "healthy"}))
}

/// Ready once the pinned models have been loaded (or failed to).
pub async fn readiness(state: web::Data<AppState>) -> HttpResponse {
    if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "not ready"}))
    }
}

pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&state.registry.gather(), &mut buffer)
        .map_err(|e| ApiError::Core(sightline_core::CoreError::Internal(format!("encoding metrics: {e}"))))?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(buffer))
}
