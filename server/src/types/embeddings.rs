//! The embedding routes' bodies and answers: Roboflow's `/clip/*` (its `Clip*Request` and
//! `Clip*Response` shapes) and the general `/embed/*`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::image_input::{ImageInput, OneOrMany};

/// Inputs one `/embed/*` request may carry.
pub const MAX_EMBED_INPUTS: usize = 1024;

/// What every `/clip/*` body shares.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClipCommon {
    /// `clip/<clip_version_id>` serves the request; `CLIP_VERSION_ID` when absent.
    #[schema(example = "ViT-B-16")]
    pub clip_version_id: Option<String>,
    /// Accepted as Roboflow's server accepts it.
    pub api_key: Option<String>,
    /// Echoed as `inference_id`.
    pub id: Option<String>,
}

/// `POST /clip/embed_image`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClipImageRequest {
    #[serde(flatten)]
    pub common: ClipCommon,
    pub image: OneOrMany<ImageInput>,
}

/// `POST /clip/embed_text`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClipTextRequest {
    #[serde(flatten)]
    pub common: ClipCommon,
    pub text: OneOrMany<String>,
}

/// An image, or a text, as `/clip/compare` takes its subject and prompts.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ImageOrText {
    Text(String),
    Image(ImageInput),
}

/// The prompts: one, a list, or named (the answer then names each similarity).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Prompts {
    List(Vec<ImageOrText>),
    One(ImageOrText),
    Named(BTreeMap<String, ImageOrText>),
}

/// `image` or `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    #[default]
    Image,
    Text,
}

/// `POST /clip/compare`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClipCompareRequest {
    #[serde(flatten)]
    pub common: ClipCommon,
    pub subject: ImageOrText,
    #[serde(default)]
    pub subject_type: InputKind,
    pub prompt: Prompts,
    #[serde(default = "text_kind")]
    #[schema(default = "text")]
    pub prompt_type: InputKind,
}

fn text_kind() -> InputKind {
    InputKind::Text
}

/// Roboflow's `ClipEmbeddingResponse`: the raw projections, one per input.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClipEmbeddingResponse {
    pub embeddings: Vec<Vec<f32>>,
    /// Seconds, preprocessing included.
    pub time: f64,
    pub inference_id: String,
    pub frame_id: Option<u64>,
}

/// Cosine similarities: a list for a list (or one) prompt, an object for named prompts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Similarity {
    List(Vec<f64>),
    Named(BTreeMap<String, f64>),
}

/// Roboflow's `ClipCompareResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClipCompareResponse {
    pub similarity: Similarity,
    pub time: f64,
    pub inference_id: String,
    pub frame_id: Option<u64>,
    pub parent_id: Option<String>,
}

/// `POST /embed/image`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbedImageRequest {
    /// A catalogue name (`Qdrant/clip-ViT-B-32-vision`), `clip/<version>`, or any embedding model id.
    #[schema(example = "clip/ViT-B-16")]
    pub model_id: String,
    pub inputs: Vec<ImageInput>,
}

/// `POST /embed/text`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbedTextRequest {
    #[schema(example = "clip/ViT-B-16")]
    pub model_id: String,
    pub inputs: Vec<String>,
}

/// Vectors in input order, each of unit length (L2), as fastembed returns them.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingsResponse {
    pub model_id: String,
    pub dim: usize,
    pub normalized: bool,
    pub embeddings: Vec<Vec<f32>>,
}

/// The number of inputs, refused when none or past `limit`.
pub fn checked_count(count: usize, limit: usize, what: &str) -> Result<usize, ApiError> {
    if count == 0 {
        return Err(ApiError::BadRequest(format!("{what} must not be empty")));
    }
    if count > limit {
        return Err(ApiError::BadRequest(format!(
            "The maximum number of {what} that can be embedded at once is {limit}; {count} were sent"
        )));
    }
    Ok(count)
}
