//! The bodies of the model-management, cache and operations routes (Roboflow's, and ours).

use serde::{Deserialize, Serialize};
use sightline_artifacts::CacheListing;
use sightline_core::{ModelDescription, ModelId};
use sightline_engine::{GpuSnapshot, RuntimeInfo};
use utoipa::{IntoParams, ToSchema};

use super::ids::ModelIdText;

/// The body of `/model/add` and `/model/remove`: which model.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"model_id": "shapes/1"}))]
pub struct ModelRequest {
    /// The model, `dataset/version`.
    #[schema(value_type = ModelIdText, inline)]
    pub model_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelEntry {
    model_id: String,
    /// Null while the model is loading.
    task_type: Option<&'static str>,
    /// Ours: `loading` or `ready`.
    state: &'static str,
    /// Ours: bytes of the model's ONNX files (see `ModelDescription::resident_bytes`).
    resident_bytes: Option<u64>,
    batch_size: Option<usize>,
    input_height: Option<u32>,
    input_width: Option<u32>,
    /// Ours: the ONNX Runtime provider the model's sessions really run on, after any fallback.
    execution_provider: Option<String>,
    /// Ours: `cpu`, `cuda:<id>`, `openvino:<device>`.
    device: Option<String>,
    /// GPU memory the load took on its device (NVML); null off GPU.
    vram_bytes: Option<u64>,
    request_aliases: Vec<String>,
    request_paths: Vec<String>,
}

/// Roboflow's `ModelsDescriptions`; the GPU fields are null where NVML sees no GPU.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registry {
    models: Vec<ModelEntry>,
    total_vram_bytes: Option<u64>,
    gpu_memory_used: Option<u64>,
    gpu_memory_total: Option<u64>,
}

impl ModelEntry {
    /// A model whose load is in progress: only its id is known.
    pub fn loading(id: &ModelId) -> ModelEntry {
        ModelEntry {
            model_id: id.to_string(),
            task_type: None,
            state: "loading",
            resident_bytes: None,
            batch_size: None,
            input_height: None,
            input_width: None,
            execution_provider: None,
            device: None,
            vram_bytes: None,
            request_aliases: vec![],
            request_paths: vec![],
        }
    }

    pub fn ready(d: ModelDescription) -> ModelEntry {
        ModelEntry {
            model_id: d.model_id.to_string(),
            task_type: Some(d.task.as_str()),
            state: "ready",
            resident_bytes: d.resident_bytes,
            batch_size: d.batch_size,
            input_height: d.input_height,
            input_width: d.input_width,
            execution_provider: Some(d.execution_provider),
            device: Some(d.device),
            vram_bytes: d.vram_bytes,
            ..ModelEntry::loading(&d.model_id)
        }
    }
}

impl Registry {
    /// The models, with the GPUs' memory where NVML sees any.
    pub fn new(models: Vec<ModelEntry>, gpus: Option<Vec<GpuSnapshot>>) -> Registry {
        let total_vram_bytes = gpus.as_ref().map(|_| models.iter().filter_map(|m| m.vram_bytes).sum());
        Registry {
            models,
            total_vram_bytes,
            gpu_memory_used: gpus.as_ref().map(|g| g.iter().map(|s| s.used_bytes).sum()),
            gpu_memory_total: gpus.as_ref().map(|g| g.iter().map(|s| s.total_bytes).sum()),
        }
    }
}

/// The body of `/models/pull`: which model, and optionally from which source.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"model_id": "shapes/1"}))]
pub struct PullRequest {
    /// The model to bring into the disk cache, `dataset/version`.
    #[schema(value_type = ModelIdText, inline)]
    pub model_id: String,
    /// Fetch from this one of the server's `MODEL_SOURCES`, even when the cache holds the model
    /// from another; when absent, a verified entry in the cache is kept, else the first source
    /// that has the model fills it.
    pub source: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PullResponse {
    pub model_id: String,
    /// `downloaded`, or `cached` when the verified entry was already there.
    pub status: &'static str,
    pub source: String,
    pub origin: String,
    pub bytes: u64,
    pub files: Vec<String>,
}

// Documentation only: `verify` is read as text.
/// How `GET /models` checks each cached file against its manifest: by `size`, or by `sha256`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum VerifyName {
    Size,
    Sha256,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `size` (default) or `sha256`.
    #[param(value_type = Option<VerifyName>)]
    pub verify: Option<String>,
}

/// One model in the disk cache.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedModel {
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

impl ListedModel {
    pub fn new(e: CacheListing, loaded: bool) -> ListedModel {
        ListedModel {
            loaded,
            model_id: e.model_id,
            integrity: e.integrity,
            checked: e.checked,
            problem: e.problem,
            source: e.source,
            origin: e.origin,
            fetched_at: e.fetched_at,
            bytes: e.bytes,
            files: e.files,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CacheDocument {
    pub models: Vec<ListedModel>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteResponse {
    pub model_id: String,
    /// It was in memory and was unloaded.
    pub unloaded: bool,
    /// Its files were in the cache and were deleted.
    pub deleted_from_disk: bool,
}

// Documentation only: `format` is read as text.
/// What the legacy route answers: `json`, the predictions drawn on the image (`image`, a JPEG), or
/// both (`image_and_json`, the drawing in `visualization`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_camel_case_types)]
pub enum LegacyFormat {
    json,
    image,
    image_and_json,
}

/// Roboflow's answer to `/start`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StartResponse {
    pub status: u16,
    pub message: &'static str,
}

/// `/info`, as Roboflow's server answers it, plus the ONNX Runtime this server runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct InfoResponse {
    pub name: &'static str,
    pub version: &'static str,
    pub uuid: String,
    #[schema(value_type = Object)]
    pub onnxruntime: RuntimeInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    pub status: &'static str,
}
