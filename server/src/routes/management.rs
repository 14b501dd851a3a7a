//! `/model/add|remove|clear|registry` (Roboflow spec §10): all answer the registry document.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use sightline_core::{ModelId, ModelManager, RemovalReason};
use utoipa::ToSchema;

use crate::body::{parse_json, read_limited};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct ModelRequest {
    model_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct ModelEntry {
    model_id: String,
    /// Null while the model is loading.
    task_type: Option<&'static str>,
    /// Ours: `loading` or `ready`.
    state: &'static str,
    /// Ours: bytes of the model's ONNX files (see `ModelDescription::resident_bytes`).
    resident_bytes: Option<u64>,
    batch_size: Option<usize>,
    input_height: Option<u32>,
    input_width: Option<u32>,
    vram_bytes: Option<u64>,
    request_aliases: Vec<String>,
    request_paths: Vec<String>,
}

/// Roboflow's `ModelsDescriptions`; the GPU fields stay null on this CPU build.
#[derive(Debug, Serialize, ToSchema)]
struct Registry {
    models: Vec<ModelEntry>,
    total_vram_bytes: Option<u64>,
    gpu_memory_used: Option<u64>,
    gpu_memory_total: Option<u64>,
}

fn registry_document(manager: &dyn ModelManager) -> HttpResponse {
    let loading = manager.loading().into_iter().map(|id| ModelEntry {
        model_id: id.to_string(),
        task_type: None,
        state: "loading",
        resident_bytes: None,
        batch_size: None,
        input_height: None,
        input_width: None,
        vram_bytes: None,
        request_aliases: vec![],
        request_paths: vec![],
    });
    let models = manager
        .describe()
        .into_iter()
        .map(|d| ModelEntry {
            model_id: d.model_id,
            task_type: Some(d.task.as_str()),
            state: "ready",
            resident_bytes: d.resident_bytes,
            batch_size: d.batch_size,
            input_height: d.input_height,
            input_width: d.input_width,
            vram_bytes: None,
            request_aliases: vec![],
            request_paths: vec![],
        })
        .chain(loading)
        .collect();
    HttpResponse::Ok().json(Registry { models, total_vram_bytes: None, gpu_memory_used: None, gpu_memory_total: None })
}

async fn model_id_from(state: &AppState, payload: web::Payload) -> Result<ModelId, ApiError> {
    let body = read_limited(payload, state.max_body_bytes).await?;
    let request: ModelRequest = parse_json(&body)?;
    Ok(ModelId::parse(&request.model_id)?)
}

#[utoipa::path(post, path = "/model/add", tag = "models", request_body = ModelRequest,
    responses((status = 200, description = "The registry document (spec §10)", body = Registry), crate::routes::openapi::InferErrors))]
pub async fn add(state: web::Data<AppState>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let id = model_id_from(&state, payload).await?;
    state.manager.add(&id).await?;
    Ok(registry_document(state.manager.as_ref()))
}

#[utoipa::path(post, path = "/model/remove", tag = "models", request_body = ModelRequest,
    responses((status = 200, description = "The registry document (spec §10)", body = Registry), crate::routes::openapi::InferErrors))]
pub async fn remove(state: web::Data<AppState>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let id = model_id_from(&state, payload).await?;
    state.manager.remove(&id, RemovalReason::Requested).await;
    Ok(registry_document(state.manager.as_ref()))
}

#[utoipa::path(post, path = "/model/clear", tag = "models",
    responses((status = 200, description = "The registry document (spec §10)", body = Registry), crate::routes::openapi::InferErrors))]
pub async fn clear(state: web::Data<AppState>) -> HttpResponse {
    state.manager.clear().await;
    registry_document(state.manager.as_ref())
}

#[utoipa::path(get, path = "/model/registry", tag = "models",
    responses((status = 200, description = "The registry document (spec §10)", body = Registry), crate::routes::openapi::InferErrors))]
pub async fn registry(state: web::Data<AppState>) -> HttpResponse {
    registry_document(state.manager.as_ref())
}
