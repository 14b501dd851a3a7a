//! The embedding routes' bodies and answers: Roboflow's `/clip/*` (its `Clip*Request` and
//! `Clip*Response` shapes) and the general `/embed/*`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use sightline_artifacts::catalogue::{self, Modality};
use sightline_core::ModelId;

use super::ids::{IdSegment, ModelIdText};
use crate::error::ApiError;
use crate::image_input::{ImageInput, OneOrMany};

/// Inputs one `/embed/*` request may carry.
pub const MAX_EMBED_INPUTS: usize = 1024;

/// What every `/clip/*` body shares.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClipCommon {
    /// `clip/<clip_version_id>` serves the request; `CLIP_VERSION_ID` when absent.
    #[schema(value_type = Option<IdSegment>, inline, example = "ViT-B-16")]
    pub clip_version_id: Option<String>,
    /// Accepted as Roboflow's server accepts it.
    pub api_key: Option<String>,
    /// Echoed as `inference_id`.
    pub id: Option<String>,
}

/// One item, or a list of at least one.
fn one_or_some(item: RefOr<Schema>) -> RefOr<Schema> {
    let list = ArrayBuilder::new().items(item.clone()).min_items(Some(1));
    OneOfBuilder::new().item(item).item(list).into()
}

/// `image` as the document describes it: one image, or a list of at least one (utoipa cannot
/// bound a list inside an untagged enum, so these schemas are written out).
pub struct ImagesDoc;

impl PartialSchema for ImagesDoc {
    fn schema() -> RefOr<Schema> {
        one_or_some(ImageInput::schema())
    }
}

impl ToSchema for ImagesDoc {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        ImageInput::schemas(schemas);
    }
}

/// `text`: one text, or a list of at least one.
pub struct TextsDoc;

impl PartialSchema for TextsDoc {
    fn schema() -> RefOr<Schema> {
        one_or_some(String::schema())
    }
}

impl ToSchema for TextsDoc {}

/// `prompt` as the document describes it: one, a list of at least one, or at least one named.
pub struct PromptsDoc;

impl PartialSchema for PromptsDoc {
    fn schema() -> RefOr<Schema> {
        let one = ImageOrText::schema();
        let list = ArrayBuilder::new().items(one.clone()).min_items(Some(1));
        let named = ObjectBuilder::new().additional_properties(Some(one.clone())).min_properties(Some(1));
        OneOfBuilder::new().item(list).item(one).item(named).into()
    }
}

impl ToSchema for PromptsDoc {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        ImageOrText::schemas(schemas);
    }
}

/// `POST /clip/embed_image`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClipImageRequest {
    #[serde(flatten)]
    pub common: ClipCommon,
    /// One image object, or a list of at most `CLIP_MAX_BATCH_SIZE`: one projection each, in order.
    #[schema(value_type = ImagesDoc)]
    pub image: OneOrMany<ImageInput>,
}

/// `POST /clip/embed_text`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClipTextRequest {
    #[serde(flatten)]
    pub common: ClipCommon,
    /// One text, or a list of at most 1024: one projection each, in order.
    #[schema(value_type = TextsDoc)]
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
    /// What each prompt is compared with: an image object, or a text, as `subject_type` says.
    pub subject: ImageOrText,
    /// Whether `subject` is an `image` or a `text`.
    #[serde(default)]
    #[schema(inline, default = "image")]
    pub subject_type: InputKind,
    /// One prompt, a list of at most `CLIP_MAX_BATCH_SIZE`, or an object of named prompts (the
    /// answer then names each similarity); images or texts, as `prompt_type` says.
    #[schema(value_type = PromptsDoc)]
    pub prompt: Prompts,
    /// Whether the prompts are `image`s or `text`s.
    #[serde(default = "text_kind")]
    #[schema(inline, default = "text")]
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
    #[schema(value_type = ModelIdText, inline, example = "clip/ViT-B-16")]
    pub model_id: String,
    /// The images (at most `MAX_IMAGES_PER_REQUEST`): one vector each, in order.
    #[schema(min_items = 1, max_items = 1024)]
    pub inputs: Vec<ImageInput>,
}

/// `POST /embed/text`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbedTextRequest {
    /// A catalogue name (`Qdrant/clip-ViT-B-32-text`), `clip/<version>`, or any embedding model id.
    #[schema(value_type = ModelIdText, inline, example = "clip/ViT-B-16")]
    pub model_id: String,
    /// The texts: one vector each, in order.
    #[schema(min_items = 1, max_items = 1024)]
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

/// The model a `/embed/*` request names: a catalogue name (refused at once when the catalogue says
/// it embeds the other kind, so nothing is loaded in vain) or any model id.
pub fn resolve_embedding_model(raw: &str, kind: Modality) -> Result<ModelId, ApiError> {
    let Some(entry) = catalogue::find(raw) else { return Ok(ModelId::parse(raw)?) };
    if entry.modality != kind {
        let (route, other) = match entry.modality {
            Modality::Image => ("/embed/image", "an image"),
            Modality::Text => ("/embed/text", "a text"),
        };
        return Err(ApiError::BadRequest(format!("{} is {other} embedding model: use {route}", entry.model)));
    }
    Ok(ModelId::parse(&entry.model_id)?)
}

/// Scaled to unit length (a zero vector stays zero), as fastembed's `normalize` does.
pub fn normalized(vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt().max(1e-12);
    vector.into_iter().map(|x| (f64::from(x) / norm) as f32).collect()
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

/// Where a catalogue model's files are, as fastembed names its `sources`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelSources {
    /// The Hugging Face repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hf: Option<String>,
    /// The archive, for a custom model published as one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One model of `GET /embed/models`, in the fields of fastembed's `list_supported_models()`, with
/// the id Sightline loads it under and whether Sightline serves it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogueModel {
    pub model: String,
    /// The id Sightline loads it under: the name, or, for a name that is no valid id (a dot in
    /// it), its own. Either names the model in `/embed/*`.
    pub sightline_id: String,
    /// `image` or `text`.
    pub modality: String,
    pub dim: usize,
    pub description: String,
    pub license: String,
    #[serde(rename = "size_in_GB")]
    pub size_in_gb: f64,
    pub sources: ModelSources,
    pub model_file: String,
    pub served: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl CatalogueModel {
    pub fn of(entry: &sightline_artifacts::catalogue::CatalogueEntry) -> CatalogueModel {
        CatalogueModel {
            model: entry.model.clone(),
            sightline_id: entry.model_id.clone(),
            modality: match entry.modality {
                sightline_artifacts::catalogue::Modality::Image => "image".into(),
                sightline_artifacts::catalogue::Modality::Text => "text".into(),
            },
            dim: entry.dim,
            description: entry.description.clone(),
            license: entry.license.clone(),
            size_in_gb: entry.size_in_gb,
            sources: ModelSources {
                hf: Some(entry.repository.clone()).filter(|r| !r.is_empty()),
                url: entry.archive.as_ref().map(|a| a.url.clone()),
            },
            model_file: entry.model_file.clone(),
            served: entry.served,
            note: entry.note.clone(),
        }
    }
}

/// A custom model's description for `POST /embed/models` (and `EMBEDDING_MODELS_FILE`): fastembed's
/// `add_custom_model` arguments, with `task`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct EmbeddingModelDescription {
    /// `owner/name`; a dot becomes `_` in the model id.
    #[schema(
        pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,95}$",
        example = "acme/tiny-clip-vision"
    )]
    pub model: String,
    /// What the model embeds: `image` (served by `/embed/image`) or `text` (by `/embed/text`).
    pub task: InputKind,
    /// The length of the model's vectors.
    #[schema(minimum = 1, maximum = 65536)]
    pub dim: u32,
    /// How token-level outputs become one vector (`disabled`: the output is pooled already).
    #[schema(value_type = Option<PoolingName>, inline, default = "disabled")]
    pub pooling: Option<String>,
    /// Accepted as fastembed takes it; `/embed/*` answers unit vectors whatever it says.
    pub normalization: Option<bool>,
    /// Where the model's files are: a Hugging Face repository (`hf`) or an archive (`url`).
    pub sources: DescribedSource,
    /// The ONNX file in the repository or archive (default `model.onnx`).
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,95})*$")]
    pub model_file: Option<String>,
    /// Free text, shown in `GET /embed/models`.
    pub description: Option<String>,
    /// The model's licence, shown in `GET /embed/models`.
    pub license: Option<String>,
    /// The model's download size, shown in `GET /embed/models`.
    #[serde(rename = "size_in_GB")]
    #[schema(minimum = 0, default = 0.0)]
    pub size_in_gb: Option<f64>,
}

/// fastembed's pooling types: `disabled` (the output is one vector per input already), `mean`
/// (over the attended tokens), `cls` (the first token).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum PoolingName {
    Disabled,
    Mean,
    Cls,
}

/// Exactly one of a Hugging Face repository or an archive URL.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum DescribedSource {
    Hub(HubSource),
    Archive(ArchiveSource),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct HubSource {
    /// The Hugging Face repository, `owner/name`, read at `HF_REVISION` from `HF_ENDPOINT`.
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,95}$")]
    pub hf: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ArchiveSource {
    /// An https URL of a `.tar.gz`.
    #[schema(
        pattern = "^https?://([A-Za-z0-9-]{1,20}\\.){0,3}[A-Za-z][A-Za-z0-9-]{0,19}(:[0-9]{1,4})?(/[A-Za-z0-9._~-]{1,40}){0,4}/[A-Za-z0-9_~-]{1,40}\\.(tar\\.gz|tgz)$"
    )]
    pub url: String,
    /// The archive's SHA-256, in hex: a download that differs is refused. Unchecked when absent.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: Option<String>,
}
