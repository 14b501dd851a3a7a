//! `/model/add|remove|clear|registry` (Roboflow spec §10): all answer the registry document.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use sightline_core::{ModelId, RemovalReason};
use utoipa::ToSchema;

use crate::body::{parse_json, read_limited};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct ModelRequest {
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,128}/[A-Za-z0-9_-]{1,128}$")]
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
    /// Ours: the ONNX Runtime provider the model's sessions really run on, after any fallback.
    execution_provider: Option<String>,
    /// Ours: `cpu`, `cuda:<id>`, `openvino:<device>`.
    device: Option<String>,
    /// GPU memory the load took on its device (NVML); null off GPU.
    vram_bytes: Option<u64>,
    request_aliases: Vec<String>,
    request_paths: Vec<String>,
}

/// Roboflow's `ModelsDescriptions`; the GPU fields are null where NVML sees no GPU.
#[derive(Debug, Serialize, ToSchema)]
struct Registry {
    models: Vec<ModelEntry>,
    total_vram_bytes: Option<u64>,
    gpu_memory_used: Option<u64>,
    gpu_memory_total: Option<u64>,
}

fn registry_document(state: &AppState) -> HttpResponse {
    let manager = state.manager.as_ref();
    let loading = manager.loading().into_iter().map(|id| ModelEntry {
        model_id: id.to_string(),
        task_type: None,
        state: "loading",
        resident_bytes: None,
        batch_size: None,
        input_height: None,
        input_width: None,
        execution_provider: None,
        device: None,
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
            execution_provider: Some(d.execution_provider),
            device: Some(d.device),
            vram_bytes: d.vram_bytes,
            request_aliases: vec![],
            request_paths: vec![],
        })
        .chain(loading)
        .collect::<Vec<ModelEntry>>();
    let gpus = state.gpus.as_ref().map(|g| g.snapshots()).filter(|s| !s.is_empty());
    let total_vram_bytes = gpus.as_ref().map(|_| models.iter().filter_map(|m| m.vram_bytes).sum());
    HttpResponse::Ok().json(Registry {
        models,
        total_vram_bytes,
        gpu_memory_used: gpus.as_ref().map(|g| g.iter().map(|s| s.used_bytes).sum()),
        gpu_memory_total: gpus.as_ref().map(|g| g.iter().map(|s| s.total_bytes).sum()),
    })
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
    Ok(registry_document(&state))
}

#[utoipa::path(post, path = "/model/remove", tag = "models", request_body = ModelRequest,
    responses((status = 200, description = "The registry document (spec §10)", body = Registry), crate::routes::openapi::InferErrors))]
pub async fn remove(state: web::Data<AppState>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let id = model_id_from(&state, payload).await?;
    state.manager.remove(&id, RemovalReason::Requested).await;
    Ok(registry_document(&state))
}

#[utoipa::path(post, path = "/model/clear", tag = "models",
    responses((status = 200, description = "The registry document (spec §10)", body = Registry), crate::routes::openapi::InferErrors))]
pub async fn clear(state: web::Data<AppState>) -> HttpResponse {
    state.manager.clear().await;
    registry_document(&state)
}

#[utoipa::path(get, path = "/model/registry", tag = "models",
    responses((status = 200, description = "The registry document (spec §10)", body = Registry), crate::routes::openapi::InferErrors))]
pub async fn registry(state: web::Data<AppState>) -> HttpResponse {
    registry_document(&state)
}
