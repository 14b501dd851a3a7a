//! `/models`: the on-disk model cache (pull without loading, list, delete), beside the in-memory
//! registry of `/model/*`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use sightline_core::artifacts::{CacheListing, NoProgress, VerifyLevel};
use sightline_core::{ModelId, RemovalReason};
use utoipa::{IntoParams, ToSchema};

use crate::body::{parse_json, read_limited};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct PullRequest {
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,128}/[A-Za-z0-9_-]{1,128}$")]
    model_id: String,
    source: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct PullResponse {
    model_id: String,
    /// `downloaded`, or `cached` when the verified entry was already there.
    status: &'static str,
    source: String,
    origin: String,
    bytes: u64,
    files: Vec<String>,
}

#[utoipa::path(post, path = "/models/pull", tag = "models", request_body = PullRequest,
    responses((status = 200, description = "In the disk cache (downloaded or already there)", body = PullResponse), crate::routes::openapi::InferErrors))]
pub async fn pull(state: web::Data<AppState>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, state.max_body_bytes).await?;
    let request: PullRequest = parse_json(&body)?;
    let id = ModelId::parse(&request.model_id)?;
    let entry = state.artifacts.pull(&id, request.source.as_deref(), std::sync::Arc::new(NoProgress)).await?;
    Ok(HttpResponse::Ok().json(PullResponse {
        model_id: id.to_string(),
        status: if entry.downloaded { "downloaded" } else { "cached" },
        bytes: entry.manifest.total_bytes(),
        files: entry.manifest.files.keys().cloned().collect(),
        source: entry.manifest.source,
        origin: entry.manifest.origin,
    }))
}

/// `verify` (documentation: read as text).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum VerifyName {
    Size,
    Sha256,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `size` (default) or `sha256`.
    #[param(value_type = Option<VerifyName>)]
    verify: Option<String>,
}

/// One model in the disk cache.
#[derive(Debug, Serialize, ToSchema)]
struct ListedModel {
    model_id: String,
    /// `ok`, `corrupt` or `incomplete` (no manifest: a fill that never finished).
    integrity: &'static str,
    /// What `integrity` checked: `size` or `sha256`.
    checked: &'static str,
    problem: Option<String>,
    /// `local`, `s3` or `api`.
    source: Option<String>,
    /// Where exactly, without credentials.
    origin: Option<String>,
    /// Seconds since the Unix epoch.
    fetched_at: Option<u64>,
    bytes: u64,
    files: Vec<String>,
    /// Whether the model is in memory now.
    loaded: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct CacheDocument {
    models: Vec<ListedModel>,
}

#[utoipa::path(get, path = "/models", tag = "models", params(ListQuery),
    responses((status = 200, description = "Every model in the disk cache", body = CacheDocument), crate::routes::openapi::InferErrors))]
pub async fn list(state: web::Data<AppState>, query: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let level = match query.verify.as_deref() {
        None | Some("size") => VerifyLevel::Size,
        Some("sha256") => VerifyLevel::Sha256,
        Some(other) => return Err(ApiError::BadRequest(format!("verify must be size or sha256, not {other:?}"))),
    };
    let models = state
        .artifacts
        .list(level)
        .await?
        .into_iter()
        .map(|e: CacheListing| ListedModel {
            loaded: ModelId::parse(&e.model_id).is_ok_and(|id| state.manager.contains(&id)),
            model_id: e.model_id,
            integrity: e.integrity,
            checked: e.checked,
            problem: e.problem,
            source: e.source,
            origin: e.origin,
            fetched_at: e.fetched_at,
            bytes: e.bytes,
            files: e.files,
        })
        .collect();
    Ok(HttpResponse::Ok().json(CacheDocument { models }))
}

#[derive(Debug, Serialize, ToSchema)]
struct DeleteResponse {
    model_id: String,
    /// It was in memory and was unloaded.
    unloaded: bool,
    /// Its files were in the cache and were deleted.
    deleted_from_disk: bool,
}

/// Unloads the model and deletes its files; 404 when it was neither loaded nor cached.
#[utoipa::path(delete, path = "/models/{dataset_id}/{version_id}", tag = "models",
    params(("dataset_id" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,128}$"), ("version_id" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses((status = 200, description = "Unloaded and deleted", body = DeleteResponse), crate::routes::openapi::InferErrors))]
pub async fn delete(state: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (dataset, version) = path.into_inner();
    let id = ModelId::parse(&format!("{dataset}/{version}"))?;
    let unloaded = state.manager.remove(&id, RemovalReason::Requested).await;
    let deleted = state.artifacts.remove(&id).await?;
    if !unloaded && !deleted {
        return Err(ApiError::NotFoundMessage(format!("{id} is neither loaded nor in the model cache")));
    }
    Ok(HttpResponse::Ok().json(DeleteResponse { model_id: id.to_string(), unloaded, deleted_from_disk: deleted }))
}
