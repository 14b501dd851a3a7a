//! Triton's extensions of the protocol over REST: the model repository (index, load, unload) and
//! statistics. A model named `dataset` is every version of it (load takes the newest known);
//! `dataset/version`, as tritonclient sends a name with a slash, is that version.

use actix_web::web::{Path, Payload};
use actix_web::{web, HttpResponse};
use serde::de::DeserializeOwned;

use crate::body::{parse_json, read_limited};
use crate::error::{ApiError, ProtocolError};
use crate::repository::check_parameters;
use crate::state::AppState;
use crate::types::errors::{ProtocolErrorBody, ProtocolInferErrors};
use crate::types::protocol::{
    ModelPath, ModelStatsResponse, RepositoryIndexRequest, RepositoryModel, RepositoryRequest, VersionedModelPath,
};

type State = web::Data<AppState>;
type Answer = Result<HttpResponse, ProtocolError>;

/// The protocol's bodies here are small and optional: empty (or `null`) means every field's default.
const MAX_EXTENSION_BODY: usize = 64 * 1024;

async fn optional_body<T: DeserializeOwned + Default>(payload: Payload) -> Result<T, ApiError> {
    let body = read_limited(payload, MAX_EXTENSION_BODY).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    // The protocol's errors are 400s, never the Roboflow routes' 422.
    parse_json::<Option<T>>(&body).map(Option::unwrap_or_default).map_err(|e| match e {
        ApiError::Validation(message) => ApiError::BadRequest(message),
        other => other,
    })
}

/// List the models that could be served (Triton)
///
/// Triton's model repository extension: every model version that could be served, loaded
/// (`READY`), loading, in the disk cache, or in a source that lists its models (`MODEL_DIR`, S3),
/// with why it is not loaded.
#[utoipa::path(post, path = "/v2/repository/index", tag = "inference protocol",
    request_body(content = Option<RepositoryIndexRequest>, description = "Optional; `{\"ready\": true}` lists only loaded models."),
    responses((status = 200, body = Vec<RepositoryModel>), ProtocolInferErrors))]
pub async fn repository_index(state: State, payload: Payload) -> Answer {
    let request: RepositoryIndexRequest = optional_body(payload).await?;
    Ok(HttpResponse::Ok().json(state.repository.index(&state.service, request.ready).await?))
}

async fn load(state: &AppState, payload: Payload, name: &str) -> Answer {
    let request: RepositoryRequest = optional_body(payload).await?;
    check_parameters(request.parameters.keys().map(String::as_str))?;
    state.repository.load(&state.service, name).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Load a model and keep it loaded (Triton)
///
/// Loads the model (its newest version known) and keeps it loaded, never evicted, until it is
/// unloaded; answers once it is loaded. A failed load leaves the loaded models as they were.
#[utoipa::path(post, path = "/v2/repository/models/{name}/load", tag = "inference protocol", params(ModelPath),
    request_body(content = Option<RepositoryRequest>, description = "Optional."),
    responses((status = 200, description = "Loaded"), ProtocolInferErrors))]
pub async fn repository_load(state: State, payload: Payload, path: Path<ModelPath>) -> Answer {
    load(&state, payload, &path.name).await
}

/// Load a model version and keep it loaded (Triton)
///
/// Loads that version of the model and keeps it loaded, never evicted, until it is unloaded;
/// answers once it is loaded. A failed load leaves the loaded models as they were.
#[utoipa::path(post, path = "/v2/repository/models/{name}/{version}/load", tag = "inference protocol",
    params(VersionedModelPath), request_body(content = Option<RepositoryRequest>, description = "Optional."),
    responses((status = 200, description = "Loaded"), ProtocolInferErrors))]
pub async fn repository_version_load(state: State, payload: Payload, path: Path<VersionedModelPath>) -> Answer {
    load(&state, payload, &format!("{}/{}", path.name, path.version)).await
}

async fn unload(state: &AppState, payload: Payload, name: &str) -> Answer {
    let _: RepositoryRequest = optional_body(payload).await?;
    state.repository.unload(&state.service, name).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Unload a model (Triton)
///
/// Unloads every loaded version of the model (and lets it be evicted again); a model that is not
/// loaded is already in the state asked for.
#[utoipa::path(post, path = "/v2/repository/models/{name}/unload", tag = "inference protocol", params(ModelPath),
    request_body(content = Option<RepositoryRequest>, description = "Optional; `unload_dependents` has no effect."),
    responses((status = 200, description = "Unloaded"), ProtocolInferErrors))]
pub async fn repository_unload(state: State, payload: Payload, path: Path<ModelPath>) -> Answer {
    unload(&state, payload, &path.name).await
}

/// Unload a model version (Triton)
///
/// Unloads that version of the model; a version that is not loaded is already in the state asked
/// for.
#[utoipa::path(post, path = "/v2/repository/models/{name}/{version}/unload", tag = "inference protocol",
    params(VersionedModelPath), request_body(content = Option<RepositoryRequest>, description = "Optional."),
    responses((status = 200, description = "Unloaded"), ProtocolInferErrors))]
pub async fn repository_version_unload(state: State, payload: Payload, path: Path<VersionedModelPath>) -> Answer {
    unload(&state, payload, &format!("{}/{}", path.name, path.version)).await
}

fn stats(state: &AppState, name: Option<&str>, version: Option<&str>) -> Answer {
    Ok(HttpResponse::Ok().json(crate::statistics::report(&state.service, &state.registry, name, version)?))
}

/// Get every loaded model's statistics (Triton)
///
/// Every loaded model's cumulative counts and durations (Triton's statistics extension), from the
/// same metric families as `/metrics`.
#[utoipa::path(get, path = "/v2/models/stats", tag = "inference protocol",
    responses((status = 200, body = ModelStatsResponse)))]
pub async fn all_stats(state: State) -> Answer {
    stats(&state, None, None)
}

/// Get a model's statistics (Triton)
///
/// The cumulative counts and durations of every loaded version of the model (Triton's statistics
/// extension), from the same metric families as `/metrics`.
#[utoipa::path(get, path = "/v2/models/{name}/stats", tag = "inference protocol", params(ModelPath),
    responses((status = 200, body = ModelStatsResponse), (status = 400, body = ProtocolErrorBody), (status = 404, body = ProtocolErrorBody)))]
pub async fn model_stats(state: State, path: Path<ModelPath>) -> Answer {
    stats(&state, Some(&path.name), None)
}

/// Get a model version's statistics (Triton)
///
/// The cumulative counts and durations of that version of the model (Triton's statistics
/// extension), from the same metric families as `/metrics`.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/stats", tag = "inference protocol",
    params(VersionedModelPath),
    responses((status = 200, body = ModelStatsResponse), (status = 400, body = ProtocolErrorBody), (status = 404, body = ProtocolErrorBody)))]
pub async fn version_stats(state: State, path: Path<VersionedModelPath>) -> Answer {
    stats(&state, Some(&path.name), Some(&path.version))
}
