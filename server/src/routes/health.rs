//! `/info`, `/healthz`, `/readiness`, `/metrics` (Roboflow's HTTP API).

use actix_web::{web, HttpResponse};
use prometheus::{Encoder, TextEncoder};

use crate::error::ApiError;
use crate::lifecycle::ReadinessReport;
use crate::state::AppState;
use crate::types::models::{InfoResponse, StatusResponse};

/// Describe the server
///
/// The server's name, version and instance `uuid`, as Roboflow's server answers them, and the ONNX
/// Runtime it runs: its library, the execution providers it can use (and those it cannot, with
/// why) and its threads. Open without the API key.
#[utoipa::path(get, path = "/info", tag = "operations", responses((status = 200, body = InfoResponse)))]
pub async fn info(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(InfoResponse {
        name: "Sightline",
        version: env!("CARGO_PKG_VERSION"),
        uuid: state.server_uuid.clone(),
        onnxruntime: state.runtime.clone(),
    })
}

/// Check that the server is alive
///
/// Always `{"status": "healthy"}` while the server answers: a liveness probe. Open without the
/// API key; `/readiness` says whether it should get traffic.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = StatusResponse)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(StatusResponse { status: "healthy" })
}

/// Check that the server is ready for traffic
///
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

/// Prometheus metrics
///
/// The server's metrics in Prometheus' text format: requests, latencies, queues, batches, model
/// loads and evictions, memory, and the GPUs where NVML sees any. Open without the API key.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&state.registry.gather(), &mut buffer)
        .map_err(|e| ApiError::Core(sightline_core::CoreError::Internal(format!("encoding metrics: {e}"))))?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(buffer))
}
