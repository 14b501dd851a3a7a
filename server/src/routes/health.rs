//! `/info`, `/healthz`, `/readiness`, `/metrics` (Roboflow's HTTP API).

use actix_web::{web, HttpResponse};
use prometheus::{Encoder, TextEncoder};

use crate::error::ApiError;
use crate::lifecycle::ReadinessReport;
use crate::state::AppState;
use crate::types::models::{InfoResponse, StatusResponse};

#[utoipa::path(get, path = "/info", tag = "operations", responses((status = 200, body = InfoResponse)))]
pub async fn info(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(InfoResponse {
        name: "Sightline",
        version: env!("CARGO_PKG_VERSION"),
        uuid: state.server_uuid.clone(),
        onnxruntime: state.runtime.clone(),
    })
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = StatusResponse)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(StatusResponse { status: "healthy" })
}

/// Ready once every pinned model is loaded, until shutdown begins; otherwise 503 naming the pinned
/// models that failed to load (they are retried).
#[utoipa::path(get, path = "/readiness", tag = "operations",
    responses((status = 200, body = ReadinessReport), (status = 503, description = "Pinned models loading or failing, or shutting down", body = ReadinessReport)))]
pub async fn readiness(state: web::Data<AppState>) -> HttpResponse {
    let report = state.readiness.report();
    if state.readiness.is_ready() {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&state.registry.gather(), &mut buffer)
        .map_err(|e| ApiError::Core(sightline_core::CoreError::Internal(format!("encoding metrics: {e}"))))?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(buffer))
}
