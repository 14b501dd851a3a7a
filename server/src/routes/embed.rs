//! The embedding routes: Roboflow's `/clip/embed_image`, `/clip/embed_text` and `/clip/compare`
//! (raw projections and cosine similarities, as its CLIP answers them), and the general
//! `/embed/image` and `/embed/text` (unit vectors, as fastembed gives them).

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use sightline_artifacts::catalogue::{self, Modality};
use sightline_core::{ModelId, PreprocessingFlags};

use super::answers::respond_json;
use super::infer::parse_request;
use crate::error::ApiError;
use crate::image_input::{ImageInput, OneOrMany};
use crate::service::{ImageJob, Served, Service};
use crate::state::AppState;
use crate::types::embeddings::{
    checked_count, normalized, resolve_embedding_model, CatalogueModel, ClipCommon, ClipCompareRequest,
    ClipCompareResponse, ClipEmbeddingResponse, ClipImageRequest, ClipTextRequest, EmbedImageRequest, EmbedTextRequest,
    EmbeddingModelDescription, EmbeddingsResponse, ImageOrText, InputKind, Prompts, Similarity, MAX_EMBED_INPUTS,
};
use crate::types::errors::InferErrors;

type State = web::Data<AppState>;
type Reply = Result<HttpResponse, ApiError>;

/// `clip/<clip_version_id>`, the server's `CLIP_VERSION_ID` when the request names none.
fn clip_model(service: &Service, common: &ClipCommon) -> Result<ModelId, ApiError> {
    let version = common.clip_version_id.as_deref().unwrap_or(service.clip_version_id());
    Ok(ModelId::parse(&format!("clip/{version}"))?)
}

fn listed<T>(items: OneOrMany<T>) -> Vec<T> {
    match items {
        OneOrMany::One(item) => vec![item],
        OneOrMany::Many(items) => items,
    }
}

fn inference_id(common: &ClipCommon) -> String {
    common.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The images' raw vectors, in order.
async fn image_vectors(
    service: &Service,
    id: &ModelId,
    images: Vec<ImageInput>,
) -> Result<(Vec<Vec<f32>>, Served), ApiError> {
    let job = ImageJob { images, preprocessing: PreprocessingFlags::default(), visualize: None, options: () };
    let answered = service.embed_images(id, job).await?;
    Ok((answered.outputs.into_iter().map(|(vector, _)| vector).collect(), answered.served))
}

/// Roboflow's `ClipEmbeddingResponse`, timed from the request's start.
fn clip_embeddings((embeddings, served): (Vec<Vec<f32>>, Served), common: &ClipCommon) -> HttpResponse {
    let time = served.started.elapsed().as_secs_f64();
    let body = ClipEmbeddingResponse { embeddings, time, inference_id: inference_id(common), frame_id: None };
    respond_json(&served, &body)
}

/// Embed images with CLIP
///
/// Roboflow's CLIP route: runs the image encoder of `clip/<clip_version_id>` (the server's
/// `CLIP_VERSION_ID` when absent) on one image or a list of at most `CLIP_MAX_BATCH_SIZE`, and
/// answers each image's projection as the model gives it, not normalised. An unknown CLIP version
/// is a 404.
#[utoipa::path(post, path = "/clip/embed_image", tag = "embeddings", request_body = ClipImageRequest,
    responses((status = 200, description = "The CLIP image projections, unnormalised, one per image.", body = ClipEmbeddingResponse), InferErrors))]
pub async fn clip_embed_image(state: State, payload: web::Payload) -> Reply {
    let request: ClipImageRequest = parse_request(&state, payload).await?;
    let id = clip_model(&state.service, &request.common)?;
    // The model first: an unknown CLIP version is a 404 whatever else the request holds.
    state.service.load(&id).await?;
    let images = listed(request.image);
    checked_count(images.len(), state.service.clip_max_batch_size(), "images")?;
    let answered = image_vectors(&state.service, &id, images).await?;
    Ok(clip_embeddings(answered, &request.common))
}

/// Embed texts with CLIP
///
/// Roboflow's CLIP route: runs the text encoder of `clip/<clip_version_id>` (the server's
/// `CLIP_VERSION_ID` when absent) on one text or a list, and answers each text's projection as the
/// model gives it, not normalised.
#[utoipa::path(post, path = "/clip/embed_text", tag = "embeddings", request_body = ClipTextRequest,
    responses((status = 200, description = "The CLIP text projections, unnormalised, one per text.", body = ClipEmbeddingResponse), InferErrors))]
pub async fn clip_embed_text(state: State, payload: web::Payload) -> Reply {
    let request: ClipTextRequest = parse_request(&state, payload).await?;
    let id = clip_model(&state.service, &request.common)?;
    let texts = listed(request.text);
    // Roboflow runs a long list in batches rather than refusing it; the body bound still holds.
    checked_count(texts.len(), MAX_EMBED_INPUTS, "texts")?;
    let answered = state.service.embed_texts(&id, texts).await?;
    Ok(clip_embeddings(answered, &request.common))
}

/// Vectors for inputs of one kind, checked to be of that kind.
async fn vectors_of(
    service: &Service,
    id: &ModelId,
    kind: InputKind,
    inputs: Vec<ImageOrText>,
    field: &str,
) -> Result<(Vec<Vec<f32>>, Served), ApiError> {
    match kind {
        InputKind::Text => {
            let texts = inputs
                .into_iter()
                .map(|input| match input {
                    ImageOrText::Text(text) => Ok(text),
                    ImageOrText::Image(_) => {
                        Err(ApiError::BadRequest(format!("{field}_type is text, but {field} holds an image")))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            service.embed_texts(id, texts).await
        }
        InputKind::Image => {
            let images = inputs
                .into_iter()
                .map(|input| match input {
                    ImageOrText::Image(image) => Ok(image),
                    ImageOrText::Text(_) => Err(ApiError::BadRequest(format!(
                        "{field}_type is image, but {field} is a string, not an image object"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            image_vectors(service, id, images).await
        }
    }
}

/// Roboflow's `cosine_similarity`: the dot product over the product of the norms.
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Compare a subject with prompts using CLIP
///
/// Roboflow's CLIP route: embeds the subject and each prompt (images or texts, as `subject_type` and
/// `prompt_type` say) with `clip/<clip_version_id>` and answers the cosine similarity of the
/// subject with each prompt: a list in the prompts' order, or an object keyed by the prompts' names
/// when they were named. A subject or prompt of the other kind than its `*_type` is a 400.
#[utoipa::path(post, path = "/clip/compare", tag = "embeddings", request_body = ClipCompareRequest,
    responses((status = 200, description = "The cosine similarity of the subject with each prompt: a list, or named as the prompts were.", body = ClipCompareResponse), InferErrors))]
pub async fn clip_compare(state: State, payload: web::Payload) -> Reply {
    let request: ClipCompareRequest = parse_request(&state, payload).await?;
    let id = clip_model(&state.service, &request.common)?;
    state.service.load(&id).await?;
    let (names, prompts) = match request.prompt {
        Prompts::One(prompt) => (None, vec![prompt]),
        Prompts::List(prompts) => (None, prompts),
        Prompts::Named(named) => {
            let (names, prompts): (Vec<String>, Vec<ImageOrText>) = named.into_iter().unzip();
            (Some(names), prompts)
        }
    };
    checked_count(prompts.len(), state.service.clip_max_batch_size(), "prompts")?;
    let (subject, served) =
        vectors_of(&state.service, &id, request.subject_type, vec![request.subject], "subject").await?;
    let (prompts, _) = vectors_of(&state.service, &id, request.prompt_type, prompts, "prompt").await?;
    let subject = subject.first().ok_or_else(|| ApiError::BadRequest("subject must not be empty".into()))?;
    let scores: Vec<f64> = prompts.iter().map(|p| cosine(subject, p)).collect();
    let similarity = match names {
        Some(names) => Similarity::Named(names.into_iter().zip(scores).collect::<BTreeMap<_, _>>()),
        None => Similarity::List(scores),
    };
    let body = ClipCompareResponse {
        similarity,
        time: served.started.elapsed().as_secs_f64(),
        inference_id: inference_id(&request.common),
        frame_id: None,
        parent_id: None,
    };
    Ok(respond_json(&served, &body))
}

fn embeddings_body(id: &ModelId, vectors: Vec<Vec<f32>>) -> EmbeddingsResponse {
    let embeddings: Vec<Vec<f32>> = vectors.into_iter().map(normalized).collect();
    EmbeddingsResponse {
        model_id: id.to_string(),
        dim: embeddings.first().map_or(0, Vec::len),
        normalized: true,
        embeddings,
    }
}

/// Embed images
///
/// Runs the image embedding model `model_id` (a name from `GET /embed/models`, `clip/<version>`,
/// or any embedding model id) on the images and answers one unit-length vector per image, in
/// input order. A catalogue model that embeds texts is refused (400) before anything is loaded.
#[utoipa::path(post, path = "/embed/image", tag = "embeddings", request_body = EmbedImageRequest,
    responses((status = 200, description = "One unit vector per image, in input order.", body = EmbeddingsResponse), InferErrors))]
pub async fn embed_image(state: State, payload: web::Payload) -> Reply {
    let request: EmbedImageRequest = parse_request(&state, payload).await?;
    let id = resolve_embedding_model(&request.model_id, Modality::Image)?;
    checked_count(request.inputs.len(), MAX_EMBED_INPUTS, "inputs")?;
    let (vectors, served) = image_vectors(&state.service, &id, request.inputs).await?;
    Ok(respond_json(&served, &embeddings_body(&id, vectors)))
}

/// Embed texts
///
/// Runs the text embedding model `model_id` (a name from `GET /embed/models`, `clip/<version>`,
/// or any embedding model id) on the texts and answers one unit-length vector per text, in input
/// order. A catalogue model that embeds images is refused (400) before anything is loaded.
#[utoipa::path(post, path = "/embed/text", tag = "embeddings", request_body = EmbedTextRequest,
    responses((status = 200, description = "One unit vector per text, in input order.", body = EmbeddingsResponse), InferErrors))]
pub async fn embed_text(state: State, payload: web::Payload) -> Reply {
    let request: EmbedTextRequest = parse_request(&state, payload).await?;
    let id = resolve_embedding_model(&request.model_id, Modality::Text)?;
    checked_count(request.inputs.len(), MAX_EMBED_INPUTS, "inputs")?;
    let (vectors, served) = state.service.embed_texts(&id, request.inputs).await?;
    Ok(respond_json(&served, &embeddings_body(&id, vectors)))
}

/// List the embedding models known by name
///
/// fastembed's catalogue, and the models registered with `POST /embed/models`, each with its
/// modality, vector length, licence and sources, the id Sightline loads it under, and whether
/// Sightline serves it. Any of these names can be the `model_id` of `/embed/image` or `/embed/text`.
#[utoipa::path(get, path = "/embed/models", tag = "embeddings",
    responses((status = 200, description = "The embedding models Sightline knows by name (fastembed's catalogue).", body = Vec<CatalogueModel>)))]
pub async fn embed_models() -> HttpResponse {
    let models: Vec<CatalogueModel> = catalogue::catalogue().iter().map(CatalogueModel::of).collect();
    HttpResponse::Ok().json(models)
}

/// Register a custom embedding model
///
/// Adds a model to the catalogue from its description (fastembed's `add_custom_model`
/// arguments). Its files are fetched on its first use, from its Hugging Face repository or its
/// `.tar.gz` archive, by the `hf` or `url` model source (which `MODEL_SOURCES` lists). The
/// registration lasts until the server stops (`EMBEDDING_MODELS_FILE` registers models at
/// start-up); a name already in the catalogue is a 409.
#[utoipa::path(post, path = "/embed/models", tag = "embeddings", request_body = EmbeddingModelDescription,
    responses((status = 201, description = "Registered: the catalogue entry, served from then on by the `hf` or `url` source.", body = CatalogueModel),
        (status = 400, description = "An invalid description: the message names the field.", body = crate::error::ErrorBody),
        (status = 409, description = "The name is in the catalogue already.", body = crate::error::ErrorBody),
        (status = 413, description = "Body larger than `MAX_BODY_BYTES`.", body = crate::error::ErrorBody),
        (status = 422, description = "The body is not JSON.", body = crate::error::ErrorBody)))]
pub async fn register_model(state: State, payload: web::Payload) -> Reply {
    let description: serde_json::Value = parse_request(&state, payload).await?;
    let entry = catalogue::describe(&description).map_err(ApiError::BadRequest)?;
    let body = CatalogueModel::of(&entry);
    catalogue::register(entry).map_err(ApiError::Conflict)?;
    Ok(HttpResponse::Created().json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_and_normalisation() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
        let v = normalized(vec![3.0, 4.0]);
        assert_eq!(v, vec![0.6, 0.8]);
        assert_eq!(normalized(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
