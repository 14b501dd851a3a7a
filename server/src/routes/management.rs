//! `/model/add|remove|clear|registry` (Roboflow's HTTP API): all answer the registry document.

use actix_web::{web, HttpResponse};
use sightline_core::ModelId;

use crate::body::{parse_json, read_limited};
use crate::error::ApiError;
use crate::state::AppState;
use crate::types::errors::InferErrors;
use crate::types::models::{ModelEntry, ModelRequest, Registry};

fn registry_document(state: &AppState) -> HttpResponse {
    let service = &state.service;
    let loaded = service.loaded().into_iter().map(ModelEntry::ready);
    let models = loaded.chain(service.loading().iter().map(ModelEntry::loading)).collect();
    HttpResponse::Ok().json(Registry::new(models, service.gpus()))
}

async fn model_id_from(state: &AppState, payload: web::Payload) -> Result<ModelId, ApiError> {
    let body = read_limited(payload, state.max_body_bytes).await?;
    let request: ModelRequest = parse_json(&body)?;
    Ok(ModelId::parse(&request.model_id)?)
}

/// Load a model into memory
///
/// Loads the model, from the disk cache or else from the first model source that has it, and
/// answers once it is loaded (or failed), with the registry document. A model already loaded is
/// left as it is. Loading past `MAX_ACTIVE_MODELS` (or `MAX_MODEL_MEMORY`) evicts the least
/// recently used models first.
#[utoipa::path(post, path = "/model/add", tag = "models", request_body = ModelRequest,
    responses((status = 200, description = "The registry document: the loaded and loading models, and the GPUs", body = Registry), InferErrors))]
pub async fn add(state: web::Data<AppState>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let id = model_id_from(&state, payload).await?;
    state.service.add(&id).await?;
    Ok(registry_document(&state))
}

/// Unload a model from memory
///
/// Unloads the model (its files stay in the disk cache) and answers the registry document. A
/// model that is not loaded is no error.
#[utoipa::path(post, path = "/model/remove", tag = "models", request_body = ModelRequest,
    responses((status = 200, description = "The registry document: the loaded and loading models, and the GPUs", body = Registry), InferErrors))]
pub async fn remove(state: web::Data<AppState>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let id = model_id_from(&state, payload).await?;
    state.service.remove(&id).await;
    Ok(registry_document(&state))
}

/// Unload every model from memory
///
/// Unloads every loaded model (their files stay in the disk cache) and answers the registry
/// document, then empty of loaded models.
#[utoipa::path(post, path = "/model/clear", tag = "models",
    responses((status = 200, description = "The registry document: the loaded and loading models, and the GPUs", body = Registry), InferErrors))]
pub async fn clear(state: web::Data<AppState>) -> HttpResponse {
    state.service.clear().await;
    registry_document(&state)
}

/// List the models in memory
///
/// The registry document: each loaded model with its task, input size, batch size, execution
/// provider, device and memory, the models whose load is in progress, and the GPUs' memory where
/// NVML sees any.
#[utoipa::path(get, path = "/model/registry", tag = "models",
    responses((status = 200, description = "The registry document: the loaded and loading models, and the GPUs", body = Registry), InferErrors))]
pub async fn registry(state: web::Data<AppState>) -> HttpResponse {
    registry_document(&state)
}
