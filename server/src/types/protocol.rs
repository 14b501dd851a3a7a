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
