//! Roboflow's legacy routes: `POST|GET /{dataset_id}/{version_id}` with the options in the
//! query and the image as a bare base64 body (never parsed as JSON), plus `/clear_cache` and
//! `/start/{dataset_id}/{version_id}`.

use std::collections::HashMap;

use actix_multipart::Multipart;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use futures::TryStreamExt;
use sightline_core::{ClassificationParams, CoreError, DetectOptions, DetectionParams, ModelId, Task};

use super::answers::{classifications, detections, respond_with, texts, Replied};
use crate::body::read_limited;
use crate::error::ApiError;
use crate::image_input::ImageInput;
use crate::state::AppState;
use crate::types::errors::InferErrors;
use crate::types::ids::IdSegment;
use crate::types::models::{LegacyFormat, StartResponse};
use crate::types::requests::{mask_params, Common, MaskDecodeModeName, MaskFormatName};
use crate::types::responses::Answer;

/// Confidences below this are raised to it (Roboflow's `CONFIDENCE_LOWER_BOUND_OOM_PREVENTION`).
const CONFIDENCE_FLOOR: f32 = 0.01;

struct Query(HashMap<String, String>);

impl Query {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// `True/False/true/false/1/0` (and yes/no/on/off), as pydantic reads query booleans.
    fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        self.get(key)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ApiError::Validation(format!("{key} must be a boolean, got {v:?}"))),
            })
            .transpose()
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        self.get(key)
            .map(|v| v.parse::<T>().map_err(|_| ApiError::Validation(format!("{key} must be a number, got {v:?}"))))
            .transpose()
    }

    /// A threshold given as a fraction or a percentage (values of 1 and above are divided by 100).
    fn fraction(&self, key: &str, default: f32) -> Result<f32, ApiError> {
        let value = match self.get(key) {
            None | Some("default") | Some("best") => return Ok(default),
            Some(_) => self.number::<f32>(key)?.unwrap_or(default),
        };
        let value = if value >= 1.0 { value / 100.0 } else { value };
        if !(0.0..=1.0).contains(&value) {
            return Err(ApiError::Validation(format!("{key} must be a fraction or a percentage, got {value}")));
        }
        Ok(value)
    }
}

/// The image from the body, as a base64 image object.
async fn body_image(
    req: &HttpRequest,
    query: &Query,
    payload: web::Payload,
    limit: usize,
) -> Result<ImageInput, ApiError> {
    if let Some(url) = query.get("image") {
        return Ok(ImageInput::url(url.to_owned()));
    }
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .ok_or_else(|| ApiError::BadRequest("Content-Type header not provided with request.".into()))?
        .to_str()
        .map_err(|_| ApiError::BadRequest("Invalid Content-Type header provided with request.".into()))?;
    if content_type.starts_with("multipart/form-data") {
        return Ok(ImageInput::raw(multipart_file(req, payload, limit).await?));
    }
    let body = read_limited(payload, limit).await?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        CoreError::BadImage(
            "Invalid base64 input: the image payload contains raw bytes; send it base64-encoded.".into(),
        )
    })?;
    if text.trim().is_empty() {
        return Err(CoreError::BadImage("Image not found in request body.".into()).into());
    }
    Ok(ImageInput::base64(text.trim().trim_matches('"').to_owned()))
}

/// The raw image bytes of the multipart part named `file`, bounded like any body.
async fn multipart_file(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut form = Multipart::new(req.headers(), payload);
    let malformed = |e: actix_multipart::MultipartError| match e {
        actix_multipart::MultipartError::Payload(p) if crate::request_body::timed_out(&p) => ApiError::BodyTimeout,
        e => ApiError::BadRequest(format!("Malformed multipart/form-data body: {e}")),
    };
    while let Some(mut field) = form.try_next().await.map_err(malformed)? {
        if field.name() != Some("file") {
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.try_next().await.map_err(malformed)? {
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok(bytes);
    }
    Err(CoreError::BadImage("Expected image to be send in part named 'file' of multipart/form-data request".into())
        .into())
}

fn detection_params(query: &Query) -> Result<DetectionParams, ApiError> {
    let d = DetectionParams::default();
    Ok(DetectionParams {
        confidence: query.fraction("confidence", d.confidence)?.max(CONFIDENCE_FLOOR),
        iou_threshold: query.fraction("overlap", d.iou_threshold)?,
        max_detections: query.number("max_detections")?.unwrap_or(d.max_detections),
        ..d
    })
}

/// What the model's task is asked, from the query.
enum Asked {
    Detect(DetectOptions),
    Classify(ClassificationParams),
    ReadText,
}

fn asked_of(task: Task, query: &Query) -> Result<Asked, ApiError> {
    Ok(match task {
        Task::ObjectDetection => Asked::Detect(DetectOptions::boxes(detection_params(query)?)),
        Task::InstanceSegmentation => Asked::Detect(DetectOptions {
            detection: detection_params(query)?,
            mask: Some(mask_params(
                query.get("mask_decode_mode"),
                query.number("tradeoff_factor")?,
                query.get("response_mask_format"),
            )?),
            keypoint_confidence: 0.0,
        }),
        Task::KeypointDetection => Asked::Detect(DetectOptions {
            detection: detection_params(query)?,
            mask: None,
            keypoint_confidence: query.number("keypoint_confidence")?.unwrap_or(0.0),
        }),
        Task::Classification => Asked::Classify(ClassificationParams {
            confidence: query.fraction("confidence", ClassificationParams::default().confidence)?,
        }),
        Task::Ocr => Asked::ReadText,
        Task::Tensor => {
            return Err(ApiError::BadRequest(
                "this is a plain ONNX model: send it tensors at /v2/models/{name}/versions/{version}/infer".into(),
            ))
        }
        Task::Embedding => {
            return Err(ApiError::BadRequest(
                "this is an embedding model: use /embed/image or /embed/text (or /clip/* for CLIP)".into(),
            ))
        }
    })
}

/// Run a model on an image (Roboflow's v0 route)
///
/// Roboflow's legacy route: the model `dataset_id/version_id`, loaded on its first use, runs its
/// own task (object detection, instance segmentation, keypoints, classification or OCR) on one
/// image and answers as the matching `/infer/*` route does. The options are query parameters; the
/// image is the body, as bare base64 text under any content type or as the multipart/form-data
/// part `file`, or a URL in the `image` parameter. `format=image` answers the predictions drawn on
/// the image, as a JPEG; `format=image_and_json` adds that drawing to the JSON as
/// `visualization`. GET and POST are the same. An embedding or plain tensor model is refused (400).
#[utoipa::path(method(post, get), path = "/{dataset_id}/{version_id}", tag = "legacy",
    params(
        ("dataset_id" = inline(IdSegment), Path, description = "The model's dataset, e.g. `shapes` for `shapes/1`."),
        ("version_id" = inline(IdSegment), Path, description = "The model's version, e.g. `1` for `shapes/1`."),
        ("confidence" = Option<f64>, Query, minimum = 0, maximum = 100, description = "Keep the predictions scored above this: a fraction or a percentage (40 = 0.4); 0.4 when absent. A detection threshold below 0.01 is raised to 0.01."),
        ("overlap" = Option<f64>, Query, minimum = 0, maximum = 100, description = "NMS IoU threshold, fraction or percentage (30 = 0.3); 0.3 when absent."),
        ("format" = Option<LegacyFormat>, Query, description = "json (default), image (JPEG) or image_and_json"),
        ("image" = Option<String>, Query, description = "An image URL instead of a body"),
        ("api_key" = Option<String>, Query, description = "The server's API key, where `SIGHTLINE_API_KEY` sets one (an `Authorization: Bearer` header works too)."),
        ("labels" = Option<bool>, Query, description = "Draw labels (True/False/1/0), with format=image or image_and_json; false when absent."),
        ("stroke" = Option<u32>, Query, minimum = 1, maximum = 50, description = "Box stroke width in pixels, with format=image or image_and_json; 1 when absent."),
        ("keypoint_confidence" = Option<f64>, Query, minimum = 0, maximum = 1, description = "Keypoint models: leave out the keypoints scored below this; 0 when absent."),
        ("mask_decode_mode" = Option<MaskDecodeModeName>, Query, description = "Segmentation models: the resolution masks are traced at, `accurate` (the image's; default), `fast` (the mask prototypes') or `tradeoff` (between them by `tradeoff_factor`)."),
        ("tradeoff_factor" = Option<f64>, Query, minimum = 0, maximum = 1, description = "Segmentation models, with mask_decode_mode=tradeoff: from the prototypes' resolution (0, default) to the model input's (1)."),
        ("response_mask_format" = Option<MaskFormatName>, Query, description = "Segmentation models: each mask as a polygon (`polygon`, default) or as COCO run-length encoding (`rle`)."),
        ("max_detections" = Option<usize>, Query, description = "Detection models: the most predictions answered, the best-scoring; 300 when absent."),
        ("disable_preproc_auto_orient" = Option<bool>, Query, description = "Skip the EXIF orientation the model's preprocessing otherwise applies (True/False/1/0)."),
        ("disable_preproc_contrast" = Option<bool>, Query, description = "Skip the contrast adjustment of the model's preprocessing, where it has one (True/False/1/0)."),
        ("disable_preproc_grayscale" = Option<bool>, Query, description = "Skip the grayscale conversion of the model's preprocessing, where it has one (True/False/1/0)."),
        ("disable_preproc_static_crop" = Option<bool>, Query, description = "Skip the static crop of the model's preprocessing, where it has one (True/False/1/0)."),
    ),
    request_body(content = String, description = "The image: bare base64 under any content type, or multipart/form-data with the part `file`", content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The task's /infer answer, or a JPEG with format=image", body = Answer), InferErrors))]
pub async fn infer(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<HashMap<String, String>>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let query = Query(query.into_inner());
    let (dataset, version) = path.into_inner();
    let model_id = ModelId::parse(&format!("{dataset}/{version}"))?;
    let format = query.get("format").unwrap_or("json");
    if !matches!(format, "json" | "image" | "image_and_json") {
        return Err(ApiError::Validation(format!("format must be json, image or image_and_json, got {format:?}")));
    }
    // The model first: an unknown model is a 404 whatever the body holds.
    let task = state.service.load(&model_id).await?.task;
    let image = body_image(&req, &query, payload, state.max_body_bytes).await?;
    let asked = asked_of(task, &query)?;
    let mut common = Common::one(model_id.to_string(), image);
    common.disable_preproc_auto_orient = query.flag("disable_preproc_auto_orient")?;
    common.disable_preproc_contrast = query.flag("disable_preproc_contrast")?;
    common.disable_preproc_grayscale = query.flag("disable_preproc_grayscale")?;
    common.disable_preproc_static_crop = query.flag("disable_preproc_static_crop")?;
    if format != "json" {
        common.visualize_predictions = Some(true);
        common.visualization_labels = query.flag("labels")?;
        common.visualization_stroke_width = query.number("stroke")?;
    }
    let service = &state.service;
    let Replied { mut bodies, served, .. } = match asked {
        Asked::Detect(options) => detections(service, common, task, options).await?.map(Answer::Detection),
        Asked::Classify(params) => classifications(service, common, params).await?.map(Answer::Classification),
        Asked::ReadText => texts(service, common).await?.map(Answer::Ocr),
    };
    let body = bodies.pop().ok_or_else(|| ApiError::Validation("no image".into()))?;
    if format == "image" {
        let jpeg = body
            .visualization()
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .ok_or_else(|| CoreError::Internal("this model produced no visualization".into()))?;
        return Ok(respond_with(&served, "image/jpeg", jpeg));
    }
    Ok(respond_with(&served, "application/json", serde_json::to_vec(&body).unwrap_or_default()))
}

/// Unload every model (Roboflow's legacy route)
///
/// Unloads every loaded model, as `POST /model/clear` does (their files stay in the disk cache),
/// and answers `"Cache Cleared"`.
#[utoipa::path(get, path = "/clear_cache", tag = "legacy", responses((status = 200, body = String, content_type = "application/json")))]
pub async fn clear_cache(state: web::Data<AppState>) -> HttpResponse {
    state.service.clear().await;
    HttpResponse::Ok().json("Cache Cleared")
}

/// Load a model (Roboflow's legacy route)
///
/// Loads the model `dataset_id/version_id`, as `POST /model/add` does, and answers once it is
/// loaded.
#[utoipa::path(get, path = "/start/{dataset_id}/{version_id}", tag = "legacy",
    params(("dataset_id" = inline(IdSegment), Path, description = "The model's dataset, e.g. `shapes` for `shapes/1`."),
        ("version_id" = inline(IdSegment), Path, description = "The model's version, e.g. `1` for `shapes/1`.")),
    responses((status = 200, body = StartResponse), InferErrors))]
pub async fn start(state: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (dataset, version) = path.into_inner();
    state.service.add(&ModelId::parse(&format!("{dataset}/{version}"))?).await?;
    Ok(HttpResponse::Ok().json(StartResponse { status: 200, message: "inference session started from local memory." }))
}
