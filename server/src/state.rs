//! What every handler shares.

use std::sync::Arc;

use prometheus::Registry;
use sightline_core::artifacts::ArtifactCache;
use sightline_core::{DevicePlacer, ModelManager};
use sightline_models::RuntimeInfo;

pub struct AppState {
    pub manager: Arc<dyn ModelManager>,
    /// The verified disk cache behind every load; `/models` manages it directly.
    pub artifacts: Arc<ArtifactCache>,
    pub registry: Registry,
    pub http_metrics: crate::http_metrics::HttpMetrics,
    /// Pinned models loaded and not shutting down (`/readiness`).
    pub readiness: Arc<crate::lifecycle::Readiness>,
    pub server_uuid: String,
    pub runtime: RuntimeInfo,
    /// The GPUs models may be placed on, where NVML sees any (registry memory fields).
    pub gpus: Option<Arc<DevicePlacer>>,
    pub max_body_bytes: usize,
    /// `MODEL_LOAD_WAIT_SECS`: how long an inference request waits for its model to load.
    pub load_wait: std::time::Duration,
    /// `SIGHTLINE_API_KEY`: when set, requests must carry it (see `api_key.rs`).
    pub server_api_key: Option<String>,
    /// Fetches `url` image inputs under the destination policy.
    pub url_fetcher: crate::url_fetch::UrlFetcher,
    /// Serves `/doctr/ocr` and `/infer/ocr` without a `model_id`.
    pub default_ocr_model: String,
}
