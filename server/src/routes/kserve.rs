//! The Open Inference Protocol's REST routes (KServe v2, Triton's `/v2`): server and model
//! metadata, health, and tensor inference through the same service as every other route. A model
//! `dataset/version` is model `dataset`, version `version`; without a version, the highest one
//! loaded or in the disk cache. Errors are `{"error": ...}`, as the protocol has them.

use actix_web::http::header::HeaderMap;
use actix_web::web::{Path, Payload};
use actix_web::{web, HttpRequest, HttpResponse};
use sightline_core::ModelId;

use crate::body::read_limited;
use crate::error::{ApiError, ProtocolError};
use crate::kserve_codec::{encode_response, parse_request, InferenceRequest, InferenceResponse};
use crate::state::AppState;
use crate::types::errors::{ProtocolErrorBody, ProtocolInferErrors};
use crate::types::protocol::{ModelConfig, ModelMetadata, ModelPath, ServerMetadata, VersionedModelPath};

type State = web::Data<AppState>;
/// The protocol's answer, or its error body.
type Answer = Result<HttpResponse, ProtocolError>;

async fn resolve(state: &AppState, name: &str, version: Option<&str>) -> Result<ModelId, ApiError> {
    state.service.protocol_model(name, version).await
}

/// Describe the server (Open Inference Protocol)
///
/// The server's name and version, and the protocol extensions it supports: binary tensor data,
/// model configuration, model repository and statistics.
#[utoipa::path(get, path = "/v2", tag = "inference protocol",
    responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(ServerMetadata {
        name: "sightline",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec!["binary_tensor_data", "model_configuration", "model_repository", "statistics"],
    })
}

/// Check that the server is alive (Open Inference Protocol)
///
/// 200, with no body, while the server answers: the protocol's liveness probe, as `/healthz`.
#[utoipa::path(get, path = "/v2/health/live", tag = "inference protocol",
    responses((status = 200, description = "The server is running")))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// Check that the server is ready (Open Inference Protocol)
///
/// 200, with no body, once every pinned model is loaded and until shutdown begins; 503 otherwise,
/// as `/readiness` (which says why).
#[utoipa::path(get, path = "/v2/health/ready", tag = "inference protocol",
    responses((status = 200, description = "Ready (as /readiness)"), (status = 503, description = "Pinned models loading or failing, or shutting down")))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.readiness.is_ready() {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::ServiceUnavailable().finish()
    }
}

async fn metadata(state: &AppState, name: &str, version: Option<&str>) -> Result<HttpResponse, ProtocolError> {
    let id = resolve(state, name, version).await?;
    Ok(HttpResponse::Ok().json(state.service.protocol_metadata(&id).await?))
}

/// Describe a model's newest version (Open Inference Protocol)
///
/// The model's versions, platform, and input and output tensors (name, datatype, shape; `-1` for
/// a symbolic axis). Without a version, the highest one loaded or in the disk cache. Loads the
/// model when it is not loaded.
#[utoipa::path(get, path = "/v2/models/{name}", tag = "inference protocol", params(ModelPath), responses((status = 200, body = ModelMetadata), (status = 400, body = ProtocolErrorBody), (status = 404, body = ProtocolErrorBody), (status = "5XX", body = ProtocolErrorBody)))]
pub async fn model_metadata(state: State, path: Path<ModelPath>) -> Answer {
    metadata(&state, &path.name, None).await
}

/// Describe a model version (Open Inference Protocol)
///
/// The model's versions, platform, and input and output tensors (name, datatype, shape; `-1` for
/// a symbolic axis). Loads the model when it is not loaded.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "inference protocol", params(VersionedModelPath), responses((status = 200, body = ModelMetadata), (status = 400, body = ProtocolErrorBody), (status = 404, body = ProtocolErrorBody), (status = "5XX", body = ProtocolErrorBody)))]
pub async fn version_metadata(state: State, path: Path<VersionedModelPath>) -> Answer {
    metadata(&state, &path.name, Some(&path.version)).await
}

async fn config(state: &AppState, name: &str, version: Option<&str>) -> Result<HttpResponse, ProtocolError> {
    let id = resolve(state, name, version).await?;
    Ok(HttpResponse::Ok().json(state.service.protocol_config(&id).await?))
}

/// Get a model's configuration (Triton)
///
/// Triton's model configuration extension, in its JSON form: the tensors, the batching and the
/// instances, for the newest version loaded or in the disk cache. Loads the model when it is not
/// loaded.
#[utoipa::path(get, path = "/v2/models/{name}/config", tag = "inference protocol", params(ModelPath), responses((status = 200, body = ModelConfig), (status = 400, body = ProtocolErrorBody), (status = 404, body = ProtocolErrorBody), (status = "5XX", body = ProtocolErrorBody)))]
pub async fn model_config(state: State, path: Path<ModelPath>) -> Answer {
    config(&state, &path.name, None).await
}

/// Get a model version's configuration (Triton)
///
/// Triton's model configuration extension, in its JSON form: the tensors, the batching and the
/// instances. Loads the model when it is not loaded.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/config", tag = "inference protocol", params(VersionedModelPath), responses((status = 200, body = ModelConfig), (status = 400, body = ProtocolErrorBody), (status = 404, body = ProtocolErrorBody), (status = "5XX", body = ProtocolErrorBody)))]
pub async fn version_config(state: State, path: Path<VersionedModelPath>) -> Answer {
    config(&state, &path.name, Some(&path.version)).await
}

async fn model_ready(state: &AppState, name: &str, version: Option<&str>) -> Result<HttpResponse, ProtocolError> {
    let id = resolve(state, name, version).await?;
    Ok(if state.service.is_loaded(&id) {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::NotFound().json(ProtocolErrorBody { error: format!("model {id} is not loaded") })
    })
}

/// Check that a model is ready (Open Inference Protocol)
///
/// 200 when the model's newest version (loaded or in the disk cache) is loaded; 404 otherwise.
/// This does not load it: metadata, inference, `/model/add` or a repository load do.
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "inference protocol", params(ModelPath), responses((status = 200, description = "Loaded"), (status = 400, description = "Invalid name", body = ProtocolErrorBody), (status = 404, description = "Not loaded, or no version known", body = ProtocolErrorBody)))]
pub async fn model_ready_route(state: State, path: Path<ModelPath>) -> Answer {
    model_ready(&state, &path.name, None).await
}

/// Check that a model version is ready (Open Inference Protocol)
///
/// 200 when that version of the model is loaded; 404 otherwise. This does not load it: metadata,
/// inference, `/model/add` or a repository load do.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "inference protocol", params(VersionedModelPath), responses((status = 200, description = "Loaded"), (status = 400, description = "Invalid name or version", body = ProtocolErrorBody), (status = 404, description = "Not loaded", body = ProtocolErrorBody)))]
pub async fn version_ready(state: State, path: Path<VersionedModelPath>) -> Answer {
    model_ready(&state, &path.name, Some(&path.version)).await
}

fn header_length(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    let Some(value) = headers.get("Inference-Header-Content-Length") else { return Ok(None) };
    let parsed = value.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok());
    parsed.map(Some).ok_or_else(|| ApiError::BadRequest("Inference-Header-Content-Length must be a byte count".into()))
}

async fn infer(
    state: &AppState,
    request: &HttpRequest,
    payload: web::Payload,
    name: &str,
    version: Option<&str>,
) -> Result<HttpResponse, ProtocolError> {
    let id = resolve(state, name, version).await?;
    // The model first: an unknown model is a 404 whatever the body holds.
    state.service.load(&id).await?;
    let header_length = header_length(request.headers())?;
    let body = read_limited(payload, state.max_body_bytes).await?;
    let mut parsed = parse_request(&body, header_length).map_err(|e| ApiError::BadRequest(e.0))?;
    drop(body);
    // The inputs go to the model; the rest of the request says how to encode the answer.
    let inputs = std::mem::take(&mut parsed.inputs);
    let outputs = state.service.run_tensors(&id, inputs).await?;
    let encoded =
        encode_response(id.dataset(), id.version(), &parsed, outputs).map_err(|e| ApiError::BadRequest(e.0))?;
    let mut response = HttpResponse::Ok();
    match encoded.header_length {
        Some(length) => {
            response.insert_header(("Inference-Header-Content-Length", length.to_string()));
            Ok(response.content_type("application/octet-stream").body(encoded.body))
        }
        None => Ok(response.content_type("application/json").body(encoded.body)),
    }
}

/// Run a model on tensors (Open Inference Protocol)
///
/// Runs the model's newest version (loaded or in the disk cache) on the input tensors and answers
/// its output tensors. The body is JSON tensors, or with the binary tensor data extension a JSON
/// header of `Inference-Header-Content-Length` bytes followed by the inputs' bytes; outputs asked
/// for in binary come the same way, in an `application/octet-stream` answer. Loads the model when
/// it is not loaded; an unknown model is a 404 whatever the body holds.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "inference protocol", params(ModelPath), request_body(content = InferenceRequest, content_type = "application/json", description = "JSON tensors. With the binary tensor data extension, the JSON is followed by the inputs' bytes and its length is in `Inference-Header-Content-Length`."), responses((status = 200, content((InferenceResponse = "application/json"), (Vec<u8> = "application/octet-stream"))), ProtocolInferErrors))]
pub async fn model_infer(state: State, http: HttpRequest, body: Payload, path: Path<ModelPath>) -> Answer {
    infer(&state, &http, body, &path.name, None).await
}

/// Run a model version on tensors (Open Inference Protocol)
///
/// Runs that version of the model on the input tensors and answers its output tensors. The body
/// is JSON tensors, or with the binary tensor data extension a JSON header of
/// `Inference-Header-Content-Length` bytes followed by the inputs' bytes; outputs asked for in
/// binary come the same way, in an `application/octet-stream` answer. Loads the model when it is
/// not loaded; an unknown model is a 404 whatever the body holds.
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "inference protocol", params(VersionedModelPath), request_body(content = InferenceRequest, content_type = "application/json", description = "JSON tensors. With the binary tensor data extension, the JSON is followed by the inputs' bytes and its length is in `Inference-Header-Content-Length`."), responses((status = 200, content((InferenceResponse = "application/json"), (Vec<u8> = "application/octet-stream"))), ProtocolInferErrors))]
pub async fn version_infer(state: State, http: HttpRequest, body: Payload, path: Path<VersionedModelPath>) -> Answer {
    infer(&state, &http, body, &path.name, Some(&path.version)).await
}
