//! The Open Inference Protocol's metadata bodies and paths (its inference bodies are in
//! `crate::kserve_codec`, which the fuzzers reach too).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ids::IdSegment;

/// `GET /v2`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    pub name: &'static str,
    pub version: &'static str,
    pub extensions: Vec<&'static str>,
}

/// An input or output of a model; `-1` marks a symbolic axis.
#[derive(Debug, Serialize, ToSchema)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{name}[/versions/{version}]`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: &'static str,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// `GET /v2/models/{name}[/versions/{version}]/config`: the model's configuration in Triton's JSON
/// form (its model configuration extension), for the tools that read it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelConfig {
    pub name: String,
    pub platform: &'static str,
    pub backend: &'static str,
    /// The most inputs one run takes (`MAX_BATCH_SIZE`) where the model batches along a symbolic
    /// first axis, which `dims` then leaves out; 0 where it does not (`dims` are the whole shape).
    pub max_batch_size: usize,
    pub input: Vec<ConfigTensor>,
    pub output: Vec<ConfigTensor>,
    /// Present where the model batches: how long a batch that is not full waits (`BATCH_MAX_DELAY_US`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_batching: Option<DynamicBatching>,
    pub instance_group: Vec<InstanceGroup>,
}

/// An input or output: Triton's `TYPE_*` datatype and the dims past the batch axis (`-1` symbolic).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigTensor {
    pub name: String,
    pub data_type: String,
    pub dims: Vec<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DynamicBatching {
    pub max_queue_delay_microseconds: u64,
}

/// The model's sessions: `count` instances of `kind` (`KIND_CPU` or `KIND_GPU`, on `gpus`).
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceGroup {
    pub name: String,
    pub kind: &'static str,
    pub count: usize,
    pub gpus: Vec<u32>,
}

/// A model name, then optionally its version, as path segments.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModelPath {
    /// The model's dataset, e.g. `shapes` for `shapes/1`.
    #[param(value_type = IdSegment, inline)]
    pub name: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionedModelPath {
    /// The model's dataset, e.g. `shapes` for `shapes/1`.
    #[param(value_type = IdSegment, inline)]
    pub name: String,
    /// The model's version, e.g. `1` for `shapes/1`.
    #[param(value_type = IdSegment, inline)]
    pub version: String,
}

/// `GET /v2/models/stats`, `GET /v2/models/{name}[/versions/{version}]/stats`: Triton's
/// statistics extension, from the same metric families as `/metrics`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelStatsResponse {
    pub model_stats: Vec<ModelStatistics>,
}

/// One model's cumulative figures since the server started.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelStatistics {
    pub name: String,
    pub version: String,
    /// When the model's last run finished, in milliseconds since the Unix epoch (0: never).
    pub last_inference: u64,
    /// Requests inferred (an image, or one tensor request); a batch of n counts n.
    pub inference_count: u64,
    /// Session runs; a batch counts once.
    pub execution_count: u64,
    pub inference_stats: InferStatistics,
    /// One entry per batch size the model has run.
    pub batch_stats: Vec<BatchStatistics>,
    /// Triton's per-device memory; Sightline reports a model's memory in `/model/registry`.
    pub memory_usage: Vec<serde_json::Value>,
}

/// Per-request counts and cumulative durations of each stage.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct InferStatistics {
    /// Requests answered, and the time each took from the manager's call to its answer.
    pub success: StatisticDuration,
    /// Requests that failed, and the time until each failed.
    pub fail: StatisticDuration,
    /// Time waiting in the model's queue for an instance.
    pub queue: StatisticDuration,
    /// Decoding and preprocessing, plus each request's share of joining a batch's inputs.
    pub compute_input: StatisticDuration,
    /// The session runs each request was part of.
    pub compute_infer: StatisticDuration,
    /// Splitting a batch's outputs, plus post-processing (boxes, masks, ...).
    pub compute_output: StatisticDuration,
    /// Sightline keeps no response cache: always 0.
    pub cache_hit: StatisticDuration,
    pub cache_miss: StatisticDuration,
}

/// A count and the nanoseconds it took in all.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct StatisticDuration {
    pub count: u64,
    pub ns: u64,
}

/// The session runs of `batch_size` requests: joining their inputs, the run, splitting its outputs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchStatistics {
    pub batch_size: u64,
    pub compute_input: StatisticDuration,
    pub compute_infer: StatisticDuration,
    pub compute_output: StatisticDuration,
}

/// `POST /v2/repository/index`'s optional body.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RepositoryIndexRequest {
    /// Sightline has one repository; a name is accepted and ignored.
    #[serde(default)]
    pub repository_name: Option<String>,
    /// Only the models that are loaded.
    #[serde(default)]
    pub ready: bool,
}

/// A model version the server could serve, and its state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RepositoryModel {
    pub name: String,
    pub version: String,
    /// `READY` (loaded), `LOADING`, or `UNAVAILABLE` (not loaded; `reason` says why).
    pub state: &'static str,
    pub reason: String,
}

/// The optional body of a repository load or unload.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RepositoryRequest {
    /// Triton's `config` and `file:*` overrides are refused (models come from their sources);
    /// others, such as `unload_dependents`, are accepted and have no effect.
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
}
