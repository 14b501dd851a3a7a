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
