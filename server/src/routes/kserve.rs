//! The Open Inference Protocol's REST routes (KServe v2, Triton's `/v2`): server and model
//! metadata, health, and tensor inference through the same manager as every other route. A model
//! `dataset/version` is model `dataset`, version `version`; without a version, the highest one
//! loaded or in the disk cache. Errors are `{"error": ...}`, as the protocol has them.

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sightline_core::{InferRequest, InferResponse, ModelId, TensorSpec};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use super::infer::load_bounded;
use crate::body::read_limited;
use crate::error::{ApiError, ProtocolError};
use crate::kserve_codec::{encode_response, parse_request, InferenceRequest, InferenceResponse};
use crate::state::AppState;

/// `GET /v2`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    name: &'static str,
    version: &'static str,
    extensions: Vec<&'static str>,
}

/// An input or output of a model; `-1` marks a symbolic axis.
#[derive(Debug, Serialize, ToSchema)]
pub struct TensorMetadata {
    name: String,
    datatype: &'static str,
    shape: Vec<i64>,
}

/// `GET /v2/models/{name}[/versions/{version}]`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMetadata {
    name: String,
    versions: Vec<String>,
    platform: &'static str,
    inputs: Vec<TensorMetadata>,
    outputs: Vec<TensorMetadata>,
}

/// What an inference can fail with, in the protocol's body.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum InferErrors {
    /// Malformed body, or tensors that do not fit the model.
    #[response(status = 400)]
    BadRequest(ProtocolErrorBody),
    /// No source has the model.
    #[response(status = 404)]
    NotFound(ProtocolErrorBody),
    /// Body larger than `MAX_BODY_BYTES`.
    #[response(status = 413)]
    TooLarge(ProtocolErrorBody),
    /// The model's queue is full; retry after `Retry-After`.
    #[response(status = 429)]
    Busy(ProtocolErrorBody),
    /// Broken model or internal error.
    #[response(status = 500)]
    Internal(ProtocolErrorBody),
    /// A model source is unavailable, or the load takes longer than `MODEL_LOAD_WAIT_SECS`.
    #[response(status = 503)]
    Unavailable(ProtocolErrorBody),
}

/// The protocol's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProtocolErrorBody {
    error: String,
}

/// A model name, then optionally its version, as path segments.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModelPath {
    /// The model's dataset, e.g. `shapes` for `shapes/1`.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,128}$")]
    name: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionedModelPath {
    /// The model's dataset, e.g. `shapes` for `shapes/1`.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,128}$")]
    name: String,
    /// The model's version, e.g. `1` for `shapes/1`.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,128}$")]
    version: String,
}

/// Numeric versions compare as numbers, others as text.
fn newest<'a>(versions: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    versions.max_by(|a, b| match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    })
}

async fn resolve(state: &AppState, name: &str, version: Option<&str>) -> Result<ModelId, ApiError> {
    if let Some(version) = version {
        return Ok(ModelId::parse(&format!("{name}/{version}"))?);
    }
    ModelId::parse(&format!("{name}/0"))?;
    let prefix = format!("{name}/");
    let loaded: Vec<String> = state
        .manager
        .describe()
        .into_iter()
        .filter_map(|d| d.model_id.strip_prefix(&prefix).map(str::to_owned))
        .collect();
    let cached = state.artifacts.versions(name).await;
    let version = newest(loaded.iter().chain(&cached).map(String::as_str)).ok_or_else(|| {
        ApiError::NotFoundMessage(format!(
            "no version of model {name:?} is loaded or cached; name one: /v2/models/{name}/versions/{{version}}"
        ))
    })?;
    Ok(ModelId::parse(&format!("{name}/{version}"))?)
}

fn specs(specs: &[TensorSpec]) -> Vec<TensorMetadata> {
    specs
        .iter()
        .map(|s| TensorMetadata { name: s.name.clone(), datatype: s.datatype.as_str(), shape: s.shape.clone() })
        .collect()
}

#[utoipa::path(get, path = "/v2", tag = "inference protocol",
    responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(ServerMetadata {
        name: "sightline",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec!["binary_tensor_data"],
    })
}

#[utoipa::path(get, path = "/v2/health/live", tag = "inference protocol",
    responses((status = 200, description = "The server is running")))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().finish()
}

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
    let description = load_bounded(state, &id).await?;
    let signature = description.tensors.ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{id} is a pipeline of several sessions ({}); it has no tensor interface",
            description.task
        ))
    })?;
    Ok(HttpResponse::Ok().json(ModelMetadata {
        name: id.dataset().to_owned(),
        versions: vec![id.version().to_owned()],
        platform: "onnxruntime_onnx",
        inputs: specs(&signature.inputs),
        outputs: specs(&signature.outputs),
    }))
}

/// Loads the model when it is not loaded.
#[utoipa::path(get, path = "/v2/models/{name}", tag = "inference protocol", params(ModelPath),
    responses((status = 200, body = ModelMetadata), (status = 400, body = ProtocolErrorBody), (status = 404, body = ProtocolErrorBody), (status = "5XX", body = ProtocolErrorBody)))]
pub async fn model_metadata(
    state: web::Data<AppState>,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ProtocolError> {
    metadata(&state, &path.name, None).await
}

/// Loads the model when it is not loaded.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "inference protocol", params(VersionedModelPath),
    responses((status = 200, body = ModelMetadata), (status = 400, body = ProtocolErrorBody), (status = 404, body = ProtocolErrorBody), (status = "5XX", body = ProtocolErrorBody)))]
pub async fn version_metadata(
    state: web::Data<AppState>,
    path: web::Path<VersionedModelPath>,
) -> Result<HttpResponse, ProtocolError> {
    metadata(&state, &path.name, Some(&path.version)).await
}

async fn model_ready(state: &AppState, name: &str, version: Option<&str>) -> Result<HttpResponse, ProtocolError> {
    let id = resolve(state, name, version).await?;
    Ok(if state.manager.contains(&id) {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::NotFound().json(ProtocolErrorBody { error: format!("model {id} is not loaded") })
    })
}

/// Ready when loaded (a load happens on metadata or inference, or through `/model/add`).
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "inference protocol", params(ModelPath),
    responses((status = 200, description = "Loaded"), (status = 400, description = "Invalid name", body = ProtocolErrorBody), (status = 404, description = "Not loaded, or no version known", body = ProtocolErrorBody)))]
pub async fn model_ready_route(
    state: web::Data<AppState>,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ProtocolError> {
    model_ready(&state, &path.name, None).await
}

#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "inference protocol", params(VersionedModelPath),
    responses((status = 200, description = "Loaded"), (status = 400, description = "Invalid name or version", body = ProtocolErrorBody), (status = 404, description = "Not loaded", body = ProtocolErrorBody)))]
pub async fn version_ready(
    state: web::Data<AppState>,
    path: web::Path<VersionedModelPath>,
) -> Result<HttpResponse, ProtocolError> {
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
    load_bounded(state, &id).await?;
    let header_length = header_length(request.headers())?;
    let body = read_limited(payload, state.max_body_bytes).await?;
    let mut parsed = parse_request(&body, header_length).map_err(|e| ApiError::BadRequest(e.0))?;
    drop(body);
    // The inputs go to the model; the rest of the request says how to encode the answer.
    let inputs = std::mem::take(&mut parsed.inputs);
    let outputs = match state.manager.infer(&id, InferRequest::Tensors(inputs)).await? {
        InferResponse::Tensors(outputs) => outputs,
        _ => {
            return Err(ApiError::Core(sightline_core::CoreError::Internal(
                "tensors were answered with an image result".into(),
            ))
            .into())
        }
    };
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

/// JSON tensors, or with the binary tensor data extension a JSON header of
/// `Inference-Header-Content-Length` bytes followed by the inputs' bytes.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "inference protocol", params(ModelPath),
    request_body(content = InferenceRequest, content_type = "application/json",
        description = "JSON tensors. With the binary tensor data extension, the JSON is followed by the inputs' bytes and its length is in `Inference-Header-Content-Length`."),
    responses(
        (status = 200, content((InferenceResponse = "application/json"), (Vec<u8> = "application/octet-stream"))),
        InferErrors))]
pub async fn model_infer(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ProtocolError> {
    infer(&state, &request, payload, &path.name, None).await
}

#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "inference protocol", params(VersionedModelPath),
    request_body(content = InferenceRequest, content_type = "application/json",
        description = "JSON tensors. With the binary tensor data extension, the JSON is followed by the inputs' bytes and its length is in `Inference-Header-Content-Length`."),
    responses(
        (status = 200, content((InferenceResponse = "application/json"), (Vec<u8> = "application/octet-stream"))),
        InferErrors))]
pub async fn version_infer(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
    path: web::Path<VersionedModelPath>,
) -> Result<HttpResponse, ProtocolError> {
    infer(&state, &request, payload, &path.name, Some(&path.version)).await
}

#[cfg(test)]
mod tests {
    use super::newest;

    #[test]
    fn the_newest_version_is_the_highest_number() {
        assert_eq!(newest(["2", "10", "9"].into_iter()), Some("10"));
        assert_eq!(newest(["a", "b"].into_iter()), Some("b"));
        assert_eq!(newest(std::iter::empty()), None);
    }
}
