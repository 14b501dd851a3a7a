//! `/models`: the on-disk model cache (pull without loading, list, delete), beside the in-memory
//! registry of `/model/*`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use sightline_core::artifacts::{CacheListing, NoProgress, VerifyLevel};
use sightline_core::{ModelId, RemovalReason};

use crate::body::{parse_json, read_limited};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct PullRequest {
    model_id: String,
    source: Option<String>,
}

#[derive(Debug, Serialize)]
struct PullResponse {
    model_id: String,
    /// `downloaded`, or `cached` when the verified entry was already there.
    status: &'static str,
    source: String,
    origin: String,
    bytes: u64,
    files: Vec<String>,
}

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

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// `size` (default) or `sha256`.
    verify: Option<String>,
}

#[derive(Debug, Serialize)]
struct Listed {
    #[serde(flatten)]
    entry: CacheListing,
    loaded: bool,
}

pub async fn list(state: web::Data<AppState>, query: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let level = match query.verify.as_deref() {
        None | Some("size") => VerifyLevel::Size,
        Some("sha256") => VerifyLevel::Sha256,
        Some(other) => return Err(ApiError::BadRequest(format!("verify must be size or sha256, not {other:?}"))),
    };
    let models: Vec<Listed> = state
        .artifacts
        .list(level)
        .await?
        .into_iter()
        .map(|entry| {
            let loaded = ModelId::parse(&entry.model_id).is_ok_and(|id| state.manager.contains(&id));
            Listed { entry, loaded }
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "models": models })))
}

/// Unloads the model and deletes its files; 404 when it was neither loaded nor cached.
pub async fn delete(state: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (dataset, version) = path.into_inner();
    let id = ModelId::parse(&format!("{dataset}/{version}"))?;
    let unloaded = state.manager.remove(&id, RemovalReason::Requested).await;
    let deleted = state.artifacts.remove(&id).await?;
    if !unloaded && !deleted {
        return Err(ApiError::NotFoundMessage(format!("{id} is neither loaded nor in the model cache")));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "model_id": id.to_string(), "unloaded": unloaded, "deleted_from_disk": deleted,
    })))
}
