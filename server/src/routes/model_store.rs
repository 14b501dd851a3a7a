//! `/models`: the on-disk model cache (pull without loading, list, delete), beside the in-memory
//! registry of `/model/*`.

use actix_web::{web, HttpResponse};
use sightline_artifacts::VerifyLevel;
use sightline_core::ModelId;

use crate::body::{parse_json, read_limited};
use crate::error::ApiError;
use crate::state::AppState;
use crate::types::errors::InferErrors;
use crate::types::ids::IdSegment;
use crate::types::models::{CacheDocument, DeleteResponse, ListQuery, ListedModel, PullRequest, PullResponse};

/// Download a model into the disk cache
///
/// Fetches the model's files into the disk cache (`MODEL_CACHE_DIR`) without loading it, so that
/// a later load needs no download; answers `cached` when a verified copy was already there.
/// `source` names one of the server's `MODEL_SOURCES` to fetch from.
#[utoipa::path(post, path = "/models/pull", tag = "models", request_body = PullRequest,
    responses((status = 200, description = "In the disk cache (downloaded or already there)", body = PullResponse), InferErrors))]
pub async fn pull(state: web::Data<AppState>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, state.max_body_bytes).await?;
    let request: PullRequest = parse_json(&body)?;
    let id = ModelId::parse(&request.model_id)?;
    let entry = state.service.pull(&id, request.source.as_deref()).await?;
    Ok(HttpResponse::Ok().json(PullResponse {
        model_id: id.to_string(),
        status: if entry.downloaded { "downloaded" } else { "cached" },
        bytes: entry.manifest.total_bytes(),
        files: entry.manifest.files.keys().cloned().collect(),
        source: entry.manifest.source,
        origin: entry.manifest.origin,
    }))
}

/// List the models in the disk cache
///
/// Every model in the disk cache, with its files, size, source and when it was fetched, checked
/// against its manifest by size (or, with `verify=sha256`, by hashing every file), and whether it
/// is loaded now.
#[utoipa::path(get, path = "/models", tag = "models", params(ListQuery),
    responses((status = 200, description = "Every model in the disk cache", body = CacheDocument), InferErrors))]
pub async fn list(state: web::Data<AppState>, query: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let level = match query.verify.as_deref() {
        None | Some("size") => VerifyLevel::Size,
        Some("sha256") => VerifyLevel::Sha256,
        Some(other) => return Err(ApiError::BadRequest(format!("verify must be size or sha256, not {other:?}"))),
    };
    let models = state
        .service
        .cached(level)
        .await?
        .into_iter()
        .map(|(listing, loaded)| ListedModel::new(listing, loaded))
        .collect();
    Ok(HttpResponse::Ok().json(CacheDocument { models }))
}

/// Delete a model from memory and the disk cache
///
/// Unloads the model and deletes its files; 404 when it was neither loaded nor cached.
#[utoipa::path(delete, path = "/models/{dataset_id}/{version_id}", tag = "models",
    params(("dataset_id" = inline(IdSegment), Path, description = "The model's dataset, e.g. `shapes` for `shapes/1`."),
        ("version_id" = inline(IdSegment), Path, description = "The model's version, e.g. `1` for `shapes/1`.")),
    responses((status = 200, description = "Unloaded and deleted", body = DeleteResponse), InferErrors))]
pub async fn delete(state: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (dataset, version) = path.into_inner();
    let id = ModelId::parse(&format!("{dataset}/{version}"))?;
    let (unloaded, deleted) = state.service.delete(&id).await?;
    if !unloaded && !deleted {
        return Err(ApiError::NotFoundMessage(format!("{id} is neither loaded nor in the model cache")));
    }
    Ok(HttpResponse::Ok().json(DeleteResponse { model_id: id.to_string(), unloaded, deleted_from_disk: deleted }))
}
