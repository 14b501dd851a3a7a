//! `POST /infer/object_detection`, `/infer/keypoints_detection`, `/infer/classification`
//! (Roboflow spec §2, §4, §5): request and response shapes.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sightline_core::{
    ClassificationParams, CoreError, DetectionParams, ImageRequest, InferRequest, InferResponse, MaskDecodeMode,
    MaskParams, ModelDescription, ModelId, PreprocessingFlags, TaskParams, VisualizeParams,
};
use utoipa::{IntoParams, ToSchema};

use super::responses::{
    Answer, ClassificationAnswer, DetectionResponse, DoctrResponse, OcrResponse, OneOrList, Timing,
};
use crate::body::{parse_json, read_limited};
use crate::error::ApiError;
use crate::image_input::{ImageInput, OneOrMany};
use crate::state::AppState;

/// Images of one request in the model's queue at once.
const IMAGES_IN_FLIGHT: usize = 4;

/// Fields every inference route shares (spec §1.6).
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct Common {
    #[serde(default)]
    /// `dataset/version`; may come from the `model_id` query parameter instead.
    #[schema(required = true, value_type = String, pattern = r"^[A-Za-z0-9_-]{1,128}/[A-Za-z0-9_-]{1,128}$")]
    pub(super) model_id: Option<String>,
    pub(super) image: OneOrMany<ImageInput>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    pub(super) disable_preproc_auto_orient: Option<bool>,
    #[serde(default)]
    pub(super) disable_preproc_contrast: Option<bool>,
    #[serde(default)]
    pub(super) disable_preproc_grayscale: Option<bool>,
    #[serde(default)]
    pub(super) disable_preproc_static_crop: Option<bool>,
    #[serde(default)]
    pub(super) visualize_predictions: Option<bool>,
    #[serde(default)]
    pub(super) visualization_labels: Option<bool>,
    /// Pixels, when `visualize_predictions` is set.
    #[serde(default, deserialize_with = "integral")]
    #[schema(minimum = 1, maximum = 50)]
    pub(super) visualization_stroke_width: Option<u32>,
}

/// A whole number, also when written `15.0` (JSON Schema's `integer` admits it, and so do
/// Python clients that computed it as a float).
fn integral<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else { return Ok(None) };
    let whole = number
        .as_u64()
        .or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e19).map(|f| f as u64));
    let invalid = || serde::de::Error::custom(format!("expected a non-negative whole number, got {number}"));
    T::try_from(whole.ok_or_else(invalid)?).map(Some).map_err(|_| invalid())
}

/// Thicker strokes than this are a mistake, not a style.
const MAX_STROKE_WIDTH: u32 = 50;

impl Common {
    /// One image for `model_id`, every option at its default.
    pub(super) fn one(model_id: String, image: ImageInput) -> Common {
        Common {
            model_id: Some(model_id),
            image: OneOrMany::One(image),
            id: None,
            disable_preproc_auto_orient: None,
            disable_preproc_contrast: None,
            disable_preproc_grayscale: None,
            disable_preproc_static_crop: None,
            visualize_predictions: None,
            visualization_labels: None,
            visualization_stroke_width: None,
        }
    }

    fn visualize(&self) -> Result<Option<VisualizeParams>, CoreError> {
        if !self.visualize_predictions.unwrap_or(false) {
            return Ok(None);
        }
        let stroke_width = self.visualization_stroke_width.unwrap_or(1);
        if !(1..=MAX_STROKE_WIDTH).contains(&stroke_width) {
            return Err(CoreError::InvalidParameter(format!(
                "visualization_stroke_width must be in [1, {MAX_STROKE_WIDTH}], got {stroke_width}"
            )));
        }
        Ok(Some(VisualizeParams { stroke_width, labels: self.visualization_labels.unwrap_or(false) }))
    }

    fn preprocessing(&self) -> PreprocessingFlags {
        let keep = |disable: Option<bool>| !disable.unwrap_or(false);
        PreprocessingFlags {
            auto_orient: keep(self.disable_preproc_auto_orient),
            contrast: keep(self.disable_preproc_contrast),
            grayscale: keep(self.disable_preproc_grayscale),
            static_crop: keep(self.disable_preproc_static_crop),
        }
    }
}

/// `confidence` may be a number in [0, 1] or the strings `"default"` / `"best"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Confidence {
    Value(f32),
    Named(String),
}

/// A number in [0, 1] or one of `names`.
fn confidence_schema(names: &[&str]) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Number).minimum(Some(0.0)).maximum(Some(1.0)))
        .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names.iter().copied())))
        .into()
}

impl utoipa::PartialSchema for Confidence {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        confidence_schema(&["default", "best"])
    }
}

impl ToSchema for Confidence {}

/// The detection routes' `confidence`: a number in [0, 1] or `"default"` (Roboflow refuses `"best"` there).
struct DetectionConfidence;

impl utoipa::PartialSchema for DetectionConfidence {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        confidence_schema(&["default"])
    }
}

impl ToSchema for DetectionConfidence {}

/// `mask_decode_mode` (documentation: read as text, for Roboflow's exact 400).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum MaskDecodeModeName {
    Accurate,
    Fast,
    Tradeoff,
}

/// `response_mask_format` (documentation: read as text).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum MaskFormatName {
    Polygon,
    Rle,
}

fn fraction(name: &str, v: f32) -> Result<f32, CoreError> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(CoreError::InvalidParameter(format!("{name} must be in [0, 1], got {v}")))
    }
}

/// `"best"` (per-class optimal thresholds from Roboflow's evaluation, which local models lack) and
/// `"default"` both mean the default threshold; `allow_best` is false where Roboflow rejects it.
fn confidence(value: &Option<Confidence>, default: f32, allow_best: bool) -> Result<f32, CoreError> {
    match value {
        None => Ok(default),
        Some(Confidence::Value(v)) => fraction("confidence", *v),
        Some(Confidence::Named(s)) if s == "default" || (allow_best && s == "best") => Ok(default),
        Some(Confidence::Named(s)) => Err(CoreError::InvalidParameter(format!(
            "confidence must be a number{}, got {s:?}",
            if allow_best { ", \"default\" or \"best\"" } else { " or \"default\"" }
        ))),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
struct DetectionFields {
    #[serde(default)]
    #[schema(value_type = Option<DetectionConfidence>)]
    confidence: Option<Confidence>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1)]
    iou_threshold: Option<f32>,
    #[serde(default)]
    class_agnostic_nms: Option<bool>,
    #[serde(default)]
    class_filter: Option<Vec<String>>,
    #[serde(default, deserialize_with = "integral")]
    #[schema(minimum = 0, maximum = 1000000)]
    max_detections: Option<usize>,
    #[serde(default, deserialize_with = "integral")]
    #[schema(minimum = 0, maximum = 1000000)]
    max_candidates: Option<usize>,
}

impl DetectionFields {
    fn params(&self, allow_best: bool) -> Result<DetectionParams, CoreError> {
        let d = DetectionParams::default();
        Ok(DetectionParams {
            confidence: confidence(&self.confidence, d.confidence, allow_best)?,
            iou_threshold: self
                .iou_threshold
                .map(|v| fraction("iou_threshold", v))
                .transpose()?
                .unwrap_or(d.iou_threshold),
            class_agnostic_nms: self.class_agnostic_nms.unwrap_or(d.class_agnostic_nms),
            max_candidates: self.max_candidates.unwrap_or(d.max_candidates),
            max_detections: self.max_detections.unwrap_or(d.max_detections),
            class_filter: self.class_filter.clone(),
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
struct DetectionRequest {
    #[serde(flatten)]
    common: Common,
    #[serde(flatten)]
    detection: DetectionFields,
}

#[derive(Debug, Deserialize, ToSchema)]
struct KeypointsRequest {
    #[serde(flatten)]
    common: Common,
    #[serde(flatten)]
    detection: DetectionFields,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1)]
    keypoint_confidence: Option<f32>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct SegmentationRequest {
    #[serde(flatten)]
    common: Common,
    #[serde(flatten)]
    detection: DetectionFields,
    #[serde(default)]
    #[schema(value_type = Option<MaskDecodeModeName>)]
    mask_decode_mode: Option<String>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1)]
    tradeoff_factor: Option<f32>,
    #[serde(default)]
    #[schema(value_type = Option<MaskFormatName>)]
    response_mask_format: Option<String>,
}

impl SegmentationRequest {
    fn mask_params(&self) -> Result<MaskParams, ApiError> {
        mask_params(self.mask_decode_mode.as_deref(), self.tradeoff_factor, self.response_mask_format.as_deref())
    }
}

/// Spec §3: an unknown mode or a factor outside [0, 1] is a 400 with this exact message.
pub(super) fn mask_params(
    mode: Option<&str>,
    factor: Option<f32>,
    format: Option<&str>,
) -> Result<MaskParams, ApiError> {
    let invalid = || {
        ApiError::BadRequest(
            "Invalid mask decode argument sent. tradeoff_factor must be in [0.0, 1.0], mask_decode_mode: must be one of ['accurate', 'fast', 'tradeoff']".into(),
        )
    };
    let factor = factor.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&factor) {
        return Err(invalid());
    }
    let decode_mode = match mode.unwrap_or("accurate") {
        "accurate" => MaskDecodeMode::Accurate,
        "fast" => MaskDecodeMode::Fast,
        "tradeoff" => MaskDecodeMode::Tradeoff(factor),
        _ => return Err(invalid()),
    };
    let rle = match format.unwrap_or("polygon") {
        "polygon" => false,
        "rle" => true,
        other => {
            return Err(ApiError::Validation(format!(
                "response_mask_format must be \"polygon\" or \"rle\", got {other:?}"
            )))
        }
    };
    Ok(MaskParams { decode_mode, rle })
}

#[derive(Debug, Deserialize, ToSchema)]
struct ClassificationRequest {
    #[serde(flatten)]
    common: Common,
    #[serde(default)]
    confidence: Option<Confidence>,
}

async fn parse_request<T: DeserializeOwned>(state: &AppState, payload: web::Payload) -> Result<T, ApiError> {
    let body = read_limited(payload, state.max_body_bytes).await?;
    parse_json(&body)
}

/// What answering a request involved, for Roboflow's response headers (spec §1.3).
pub(super) struct Served {
    model_id: ModelId,
    /// Seconds spent loading the model when this request had to load it.
    cold_load: Option<f64>,
    started: Instant,
}

impl Served {
    fn headers(&self, response: &mut actix_web::HttpResponseBuilder) {
        response.insert_header(("X-Model-Id", self.model_id.to_string()));
        response.insert_header(("X-Model-Cold-Start", if self.cold_load.is_some() { "true" } else { "false" }));
        if let Some(seconds) = self.cold_load {
            response.insert_header(("X-Model-Load-Time", format!("{seconds:.6}")));
        }
        response.insert_header(("X-Processing-Time", format!("{:.6}", self.started.elapsed().as_secs_f64())));
    }
}

/// Runs every image of a request through `model_id`; each answer with its pipeline time.
async fn infer_images(
    state: &AppState,
    model_id: &ModelId,
    common: Common,
    params: &TaskParams,
) -> Result<(Vec<(InferResponse, f64)>, bool, Served), ApiError> {
    let started = Instant::now();
    let preprocessing = common.preprocessing();
    let visualize = common.visualize()?;
    let (images, many) = match common.image {
        OneOrMany::One(image) => (vec![image], false),
        OneOrMany::Many(images) => (images, true),
    };
    // Load (if needed) before the clock starts: `time` is the model pipeline, as in Roboflow's
    // server. The model comes first, so an unknown model is a 404 whatever the images hold.
    let cold = !state.manager.contains(model_id);
    let load_started = Instant::now();
    load_bounded(state, model_id).await?;
    let served =
        Served { model_id: model_id.clone(), cold_load: cold.then(|| load_started.elapsed().as_secs_f64()), started };
    let images: Vec<Vec<u8>> = stream::iter(images.into_iter().map(|image| image.into_bytes(&state.url_fetcher)))
        .buffered(IMAGES_IN_FLIGHT)
        .try_collect()
        .await?;
    let runs = images.into_iter().map(|image| {
        let request = InferRequest::Image(ImageRequest { image, preprocessing, params: params.clone(), visualize });
        let manager = state.manager.clone();
        async move {
            let started = Instant::now();
            let response = manager.infer(model_id, request).await?;
            Ok::<_, ApiError>((response, started.elapsed().as_secs_f64()))
        }
    });
    // A few images of one request at a time: a long list must not flood the model's queue.
    let responses = stream::iter(runs).buffered(IMAGES_IN_FLIGHT).try_collect().await?;
    Ok((responses, many, served))
}

/// Loads the model if needed, waiting at most `MODEL_LOAD_WAIT_SECS`. Loads run on their own
/// task, so giving up here does not cancel the load.
pub(super) async fn load_bounded(state: &AppState, model_id: &ModelId) -> Result<ModelDescription, ApiError> {
    match tokio::time::timeout(state.load_wait, state.manager.add(model_id)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ApiError::ModelNotReady(model_id.to_string())),
    }
}

/// An object for one image, a list for a list, with the response headers.
fn respond<T: Serialize>(mut bodies: Vec<T>, many: bool, served: &Served) -> Result<HttpResponse, ApiError> {
    let mut response = HttpResponse::Ok();
    served.headers(&mut response);
    if many {
        return Ok(response.json(bodies));
    }
    let single = bodies.pop().ok_or_else(|| ApiError::Validation("image must not be empty".into()))?;
    Ok(response.json(single))
}

/// A non-JSON body (legacy `format=image`) with the response headers.
pub(super) fn respond_with(served: &Served, content_type: &str, body: Vec<u8>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    served.headers(&mut response);
    response.content_type(content_type).body(body)
}

/// `?model_id=` on an `/infer/*` route: lets a consistent-hash ingress see which model a request
/// is for (deploy/kubernetes/base/ingress.yaml). It fills a body without `model_id`; a body's own
/// `model_id` wins (the query is still validated).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ModelQuery {
    /// The model, for routing by model id; fills a body without `model_id`; a body's own `model_id` wins.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,128}/[A-Za-z0-9_-]{1,128}$")]
    model_id: Option<String>,
}

fn apply_query_model_id(common: &mut Common, request: &HttpRequest) -> Result<(), ApiError> {
    let query = web::Query::<ModelQuery>::from_query(request.query_string())
        .map_err(|e| ApiError::Validation(format!("Invalid query string: {e}")))?;
    match (&common.model_id, query.into_inner().model_id) {
        (_, None) => Ok(()),
        (None, Some(id)) => {
            common.model_id = Some(id);
            Ok(())
        }
        // The body's id is what the client asked for; a different one in the query only cost
        // the ingress its cache locality. `X-Model-Id` says which model answered.
        (Some(_), Some(id)) => ModelId::parse(&id).map(|_| ()).map_err(ApiError::from),
    }
}

fn required_model_id(common: &Common) -> Result<ModelId, ApiError> {
    let raw = common
        .model_id
        .as_deref()
        .ok_or_else(|| ApiError::Validation("Invalid request body: missing field `model_id`".into()))?;
    Ok(ModelId::parse(raw)?)
}

/// Runs every image of a request through one model and answers in the `/infer/*` shapes.
async fn run(state: &AppState, common: Common, params: TaskParams) -> Result<HttpResponse, ApiError> {
    let (bodies, many, served) = run_bodies(state, common, params).await?;
    respond(bodies, many, &served)
}

/// The `/infer/*` answer of every image, and whether the request sent a list.
pub(super) async fn run_bodies(
    state: &AppState,
    common: Common,
    params: TaskParams,
) -> Result<(Vec<Answer>, bool, Served), ApiError> {
    let model_id = required_model_id(&common)?;
    let inference_id = common.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let (responses, many, served) = infer_images(state, &model_id, common, &params).await?;
    let answers = responses
        .into_iter()
        .map(|(response, time)| -> Result<Answer, ApiError> {
            let timing = |visualization: Option<&Vec<u8>>| Timing {
                time,
                inference_id: inference_id.clone(),
                visualization: visualization.map(|jpeg| base64::engine::general_purpose::STANDARD.encode(jpeg)),
            };
            Ok(match &response {
                InferResponse::ObjectDetection(o) | InferResponse::InstanceSegmentation(o) => {
                    Answer::Detection(DetectionResponse::new(o, false, timing(o.visualization.as_ref())))
                }
                InferResponse::KeypointDetection(o) => {
                    Answer::Detection(DetectionResponse::new(o, true, timing(o.visualization.as_ref())))
                }
                InferResponse::Classification(o) => {
                    let threshold = match &params {
                        TaskParams::Classification(p) => p.confidence,
                        _ => ClassificationParams::default().confidence,
                    };
                    Answer::Classification(ClassificationAnswer::new(o, threshold, timing(o.visualization.as_ref())))
                }
                InferResponse::Ocr(o) => Answer::Ocr(OcrResponse::new(o, timing(None))),
                InferResponse::Tensors(_) => {
                    return Err(ApiError::Core(CoreError::Internal(
                        "an image request was answered with tensors".into(),
                    )))
                }
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((answers, many, served))
}

#[utoipa::path(post, path = "/infer/object_detection", tag = "inference", request_body = DetectionRequest,
    responses((status = 200, description = "Boxes in original-image pixels. One object for one image; a list for a list.", body = OneOrList<DetectionResponse>), crate::routes::openapi::InferErrors),
    params(ModelQuery))]
pub async fn object_detection(
    state: web::Data<AppState>,
    http: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut request: DetectionRequest = parse_request(&state, payload).await?;
    apply_query_model_id(&mut request.common, &http)?;
    let params = TaskParams::ObjectDetection(request.detection.params(true)?);
    run(&state, request.common, params).await
}

#[utoipa::path(post, path = "/infer/instance_segmentation", tag = "inference", request_body = SegmentationRequest,
    responses((status = 200, description = "Boxes with `points` or `rle` masks. One object for one image; a list for a list.", body = OneOrList<DetectionResponse>), crate::routes::openapi::InferErrors),
    params(ModelQuery))]
pub async fn instance_segmentation(
    state: web::Data<AppState>,
    http: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut request: SegmentationRequest = parse_request(&state, payload).await?;
    apply_query_model_id(&mut request.common, &http)?;
    let params =
        TaskParams::InstanceSegmentation { detection: request.detection.params(true)?, mask: request.mask_params()? };
    run(&state, request.common, params).await
}

#[utoipa::path(post, path = "/infer/keypoints_detection", tag = "inference", request_body = KeypointsRequest,
    responses((status = 200, description = "Boxes with named keypoints. One object for one image; a list for a list.", body = OneOrList<DetectionResponse>), crate::routes::openapi::InferErrors),
    params(ModelQuery))]
pub async fn keypoints_detection(
    state: web::Data<AppState>,
    http: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut request: KeypointsRequest = parse_request(&state, payload).await?;
    apply_query_model_id(&mut request.common, &http)?;
    let keypoint_confidence = request.keypoint_confidence.map(|v| fraction("keypoint_confidence", v)).transpose()?;
    let params = TaskParams::KeypointDetection {
        detection: request.detection.params(false)?,
        keypoint_confidence: keypoint_confidence.unwrap_or(0.0),
    };
    run(&state, request.common, params).await
}

#[utoipa::path(post, path = "/infer/classification", tag = "inference", request_body = ClassificationRequest,
    responses((status = 200, description = "Single- or multi-label scores. One object for one image; a list for a list.", body = OneOrList<ClassificationAnswer>), crate::routes::openapi::InferErrors),
    params(ModelQuery))]
pub async fn classification(
    state: web::Data<AppState>,
    http: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut request: ClassificationRequest = parse_request(&state, payload).await?;
    apply_query_model_id(&mut request.common, &http)?;
    let default = ClassificationParams::default().confidence;
    let params = TaskParams::Classification(ClassificationParams {
        confidence: confidence(&request.confidence, default, true)?,
    });
    run(&state, request.common, params).await
}

#[derive(Debug, Deserialize, ToSchema)]
struct DoctrRequest {
    #[serde(flatten)]
    common: Common,
    #[serde(default)]
    doctr_version_id: Option<String>,
    #[serde(default)]
    generate_bounding_boxes: Option<bool>,
}

/// `POST /infer/ocr`: lines with text, score and quadrilateral (`model_id` defaults to the server's OCR model).
#[utoipa::path(post, path = "/infer/ocr", tag = "inference", request_body = DoctrRequest,
    responses((status = 200, description = "Lines with text, score and quadrilateral. One object for one image; a list for a list.", body = OneOrList<OcrResponse>), crate::routes::openapi::InferErrors),
    params(ModelQuery))]
pub async fn ocr(
    state: web::Data<AppState>,
    http: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut request: DoctrRequest = parse_request(&state, payload).await?;
    apply_query_model_id(&mut request.common, &http)?;
    if request.common.model_id.is_none() {
        request.common.model_id = Some(state.default_ocr_model.clone());
    }
    run(&state, request.common, TaskParams::Ocr).await
}

/// `POST /doctr/ocr` (spec §6): Roboflow's DocTR route served by the default OCR model (any
/// `doctr/<version>` id means it). `result` joins the lines; boxes are per line (PP-OCR reads lines, not words).
#[utoipa::path(post, path = "/doctr/ocr", tag = "inference", request_body = DoctrRequest,
    responses((status = 200, description = "Roboflow DocTR shape. One object for one image; a list for a list.", body = OneOrList<DoctrResponse>), crate::routes::openapi::InferErrors),
    params(ModelQuery))]
pub async fn doctr_ocr(
    state: web::Data<AppState>,
    http: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut request: DoctrRequest = parse_request(&state, payload).await?;
    apply_query_model_id(&mut request.common, &http)?;
    let requested = request.common.model_id.take();
    let model = match requested {
        Some(id) if !id.starts_with("doctr/") => id,
        _ => {
            let _ = request.doctr_version_id.take();
            state.default_ocr_model.clone()
        }
    };
    let model_id = ModelId::parse(&model)?;
    let boxes = request.generate_bounding_boxes.unwrap_or(false);
    let (responses, many, served) = infer_images(&state, &model_id, request.common, &TaskParams::Ocr).await?;
    let bodies = responses
        .into_iter()
        .map(|(response, time)| match response {
            InferResponse::Ocr(o) => Ok(DoctrResponse::new(&o, time, boxes)),
            _ => Err(ApiError::Core(CoreError::TaskMismatch {
                model_id: model.clone(),
                actual: "not ocr".into(),
                requested: "ocr".into(),
            })),
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    respond(bodies, many, &served)
}

/// What a handler does to a body before any model runs, on every inference route's request type:
/// parse, check each parameter, and turn `base64` images into bytes (URLs are not fetched).
/// Returns the image bytes of each route's parse that succeeded; for the fuzz target.
pub(crate) fn check_body(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut images = Vec::new();
    if let Ok(r) = parse_json::<SegmentationRequest>(data) {
        let _ = (r.detection.params(true), r.mask_params());
        images.push(local_images(r.common));
    }
    if let Ok(r) = parse_json::<KeypointsRequest>(data) {
        let _ = (r.detection.params(false), r.keypoint_confidence.map(|v| fraction("keypoint_confidence", v)));
    }
    if let Ok(r) = parse_json::<ClassificationRequest>(data) {
        let _ = confidence(&r.confidence, ClassificationParams::default().confidence, true);
    }
    if let Ok(r) = parse_json::<DoctrRequest>(data) {
        let _ = (r.doctr_version_id, r.generate_bounding_boxes);
    }
    images
}

fn local_images(common: Common) -> Vec<Vec<u8>> {
    let _ = (common.visualize(), common.preprocessing(), common.model_id.as_deref().map(ModelId::parse));
    let list = match common.image {
        OneOrMany::One(image) => vec![image],
        OneOrMany::Many(images) => images,
    };
    list.into_iter().take(IMAGES_IN_FLIGHT).filter_map(|i| i.into_local_bytes().ok()).collect()
}
