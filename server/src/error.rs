//! Every error the HTTP layer returns, and the one place where errors become status codes.

use std::sync::OnceLock;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use sightline_core::CoreError;
use utoipa::ToSchema;

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Human text; the SDK shows it.
    pub message: String,
    /// A stable name of the failure, e.g. `model_not_found` (core errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<&'static str>,
    /// FastAPI's validation detail, on 422 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Vec<ValidationDetail>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationDetail {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub loc: Vec<&'static str>,
    pub msg: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The request does not match the schema (FastAPI's 422).
    #[error("{0}")]
    Validation(String),
    #[error("Request body is larger than the limit of {0} bytes (MAX_BODY_BYTES).")]
    PayloadTooLarge(usize),
    /// The request target (path and query) is longer than the server takes.
    #[error("URI Too Long: the request's path and query are {length} bytes, more than {limit}; send large values (an image) in the body.")]
    UriTooLong { length: usize, limit: usize },
    /// A list of images longer than `MAX_IMAGES_PER_REQUEST`: no retry can pass it.
    #[error("The request has {got} images, more than MAX_IMAGES_PER_REQUEST={limit}; send them in requests of at most {limit}.")]
    TooManyImages { got: usize, limit: usize },
    #[error("{0}")]
    BadRequest(String),
    /// The body did not arrive within `CLIENT_BODY_TIMEOUT_SECS`.
    #[error("Request Timeout: the request body did not arrive within CLIENT_BODY_TIMEOUT_SECS.")]
    BodyTimeout,
    #[error("{}", .0.message())]
    Unauthorized(KeyProblem),
    /// An inference request waited longer than `MODEL_LOAD_WAIT_SECS` for its model's load.
    #[error("Model is temporarily not ready - retry request. ({0} is still loading.)")]
    ModelNotReady(String),
    #[error("Not Found")]
    NotFound,
    /// A known path asked with a method it does not have; the methods it has.
    #[error("Method Not Allowed: this path answers {0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    NotFoundMessage(String),
    /// What the request would create exists already.
    #[error("{0}")]
    Conflict(String),
}

/// Why a request's API key was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProblem {
    Missing,
    Wrong,
    /// A JSON body without the key in its first bytes (see `body_key`).
    NotEarlyInBody,
}

impl KeyProblem {
    fn message(self) -> &'static str {
        match self {
            KeyProblem::Wrong => "Unauthorized: the API key is not valid for this server.",
            KeyProblem::Missing => "Unauthorized: this server requires an API key (SIGHTLINE_API_KEY); send it as the api_key query parameter, an Authorization: Bearer header, or the api_key field of a JSON body.",
            KeyProblem::NotEarlyInBody => "Unauthorized: no api_key field in the first 64 KiB of the JSON body; put it before the image (as inference-sdk does), or send it as the api_key query parameter or an Authorization: Bearer header.",
        }
    }
}

/// The server's folders as error bodies name them: by their setting, never by their path.
static SERVER_PATHS: OnceLock<Vec<(String, &'static str)>> = OnceLock::new();

/// Names the folders (`MODEL_DIR`, `MODEL_CACHE_DIR`) whose paths error bodies must not show, once at
/// start-up; a path inside one is shown from its setting on (`MODEL_CACHE_DIR/coco/3/weights.onnx`).
pub fn name_server_paths(paths: &[(&std::path::Path, &'static str)]) {
    let mut named: Vec<(String, &'static str)> = Vec::new();
    for (path, setting) in paths {
        let canonical = std::fs::canonicalize(path).ok();
        for form in [Some(path.to_path_buf()), canonical].into_iter().flatten() {
            let text = form.display().to_string();
            if text.len() > 1 && !named.iter().any(|(t, _)| *t == text) {
                named.push((text.trim_end_matches('/').to_owned(), setting));
            }
        }
    }
    // Longest first, so that a folder inside another is named by its own setting.
    named.sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));
    let _ = SERVER_PATHS.set(named);
}

impl ApiError {
    /// The text of the error body: what `Display` says, with the server's folders named by setting.
    pub fn message(&self) -> String {
        let mut message = self.to_string();
        for (path, setting) in SERVER_PATHS.get().into_iter().flatten() {
            message = message.replace(path.as_str(), setting);
        }
        message
    }

    /// The status with the headers that go with it (the retry and authentication hints).
    fn response_builder(&self) -> actix_web::HttpResponseBuilder {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        if let ApiError::Core(CoreError::Overloaded { retry_after_secs, .. }) = self {
            response.insert_header(("Retry-After", retry_after_secs.to_string()));
        } else if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            response.insert_header(("Retry-After", "1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response
    }
}

/// The gRPC status of every error: the code that says what the HTTP status says (as Triton maps
/// them), the same message, and the retry hint of a full queue as `retry-after` metadata.
impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> tonic::Status {
        use tonic::Code;
        let code = match error.status_code().as_u16() {
            400 | 414 | 422 => Code::InvalidArgument,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::NotFound,
            405 => Code::Unimplemented,
            408 | 504 => Code::DeadlineExceeded,
            409 => Code::AlreadyExists,
            413 | 429 | 507 => Code::ResourceExhausted,
            402 | 423 => Code::FailedPrecondition,
            502 | 503 => Code::Unavailable,
            _ => Code::Internal,
        };
        let mut status = tonic::Status::new(code, error.message());
        if let ApiError::Core(CoreError::Overloaded { retry_after_secs, .. }) = &error {
            if let Ok(value) = retry_after_secs.to_string().parse() {
                status.metadata_mut().insert("retry-after", value);
            }
        }
        status
    }
}

/// An error of the Open Inference Protocol's routes: the same statuses as every other route, in
/// the protocol's body, `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ProtocolError(#[from] pub ApiError);

impl From<CoreError> for ProtocolError {
    fn from(e: CoreError) -> Self {
        ProtocolError(ApiError::Core(e))
    }
}

impl ResponseError for ProtocolError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.response_builder().json(serde_json::json!({ "error": self.0.message() }))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) | ApiError::TooManyImages { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotFound | ApiError::NotFoundMessage(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::ModelNotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Core(e) => match e {
                CoreError::InvalidModelId(_)
                | CoreError::BadImage(_)
                | CoreError::TaskMismatch { .. }
                | CoreError::InvalidInput(_)
                | CoreError::InvalidTensor(_) => StatusCode::BAD_REQUEST,
                CoreError::InvalidParameter(_) => StatusCode::UNPROCESSABLE_ENTITY,
                CoreError::ModelNotFound(_) => StatusCode::NOT_FOUND,
                // A full queue is the client's signal to slow down; the SDK retries 429 as it does 503.
                CoreError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
                CoreError::SourceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                CoreError::SourceUnauthorized(_) => StatusCode::UNAUTHORIZED,
                CoreError::SourcePaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
                CoreError::SourceForbidden(_) => StatusCode::FORBIDDEN,
                CoreError::SourceLocked(_) => StatusCode::LOCKED,
                CoreError::SourceBadResponse(_) => StatusCode::BAD_GATEWAY,
                CoreError::SourceTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
                // Not the client's fault and not cured by retrying until models are unloaded.
                CoreError::InsufficientMemory { .. } => StatusCode::INSUFFICIENT_STORAGE,
                CoreError::BrokenModel { .. }
                | CoreError::Cache(_)
                | CoreError::UnsupportedModel(_)
                | CoreError::Inference(_)
                | CoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = self.message();
        let mut response = self.response_builder();
        let (error_type, detail) = match self {
            // FastAPI's shape too, so clients that read `detail` on 422 still find text.
            ApiError::Validation(_) | ApiError::Core(CoreError::InvalidParameter(_)) => {
                (None, Some(vec![ValidationDetail { kind: "value_error", loc: vec!["body"], msg: message.clone() }]))
            }
            ApiError::Core(e) => (Some(e.kind()), None),
            _ => (None, None),
        };
        let body = ErrorBody { message, error_type, detail };
        response.json(body)
    }
}
