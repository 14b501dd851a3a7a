//! What every handler shares: the service, and what only HTTP needs.

use prometheus::Registry;
use sightline_engine::RuntimeInfo;

use crate::service::Service;

pub struct AppState {
    /// Models and the model cache: the only way handlers reach them.
    pub service: Service,
    /// Triton's model repository extension: explicit loads and unloads, and the index.
    pub repository: crate::repository::Repository,
    /// Every metric family, for `/metrics` and the statistics extension.
    pub registry: Registry,
    /// Pinned models loaded and not shutting down (`/readiness`).
    pub readiness: std::sync::Arc<crate::lifecycle::Readiness>,
    pub server_uuid: String,
    pub runtime: RuntimeInfo,
    pub max_body_bytes: usize,
    /// `CLIENT_BODY_TIMEOUT_SECS`: the time a request's whole body may take to arrive.
    pub client_body_timeout: std::time::Duration,
    /// `SIGHTLINE_API_KEY`: when set, requests must carry it (see `api_key.rs`).
    pub server_api_key: Option<String>,
    /// The OpenAPI document of the routes, built once at start-up (`/openapi.json` adds the
    /// model sources to it).
    pub api_document: serde_json::Value,
}
