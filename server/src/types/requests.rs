//! The inference routes' request bodies (Roboflow's HTTP API): parsed and checked here,
//! before any model runs, and turned into what the service is asked.

use serde::Deserialize;
use sightline_core::{
    ClassificationParams, CoreError, DetectOptions, DetectionParams, MaskDecodeMode, MaskParams, ModelId,
    PreprocessingFlags, VisualizeParams,
};
use utoipa::{IntoParams, ToSchema};

use super::ids::{BodyModelId, ModelIdText};
use crate::body::parse_json;
use crate::error::ApiError;
use crate::image_input::{ImageInput, OneOrMany};
use crate::service::{ImageJob, IMAGES_IN_FLIGHT};

/// Fields every inference route shares.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Common {
    #[serde(default)]
    #[schema(required = true, value_type = BodyModelId, inline)]
    pub model_id: Option<String>,
    /// One image object, or a list of them (at most `MAX_IMAGES_PER_REQUEST`): the answer is then a
    /// list too, in the same order.
    pub image: OneOrMany<ImageInput>,
    /// Echoed as the answer's `inference_id`; a new UUID when absent.
    id: Option<String>,
    /// Skip the EXIF orientation that the model's preprocessing otherwise applies.
    #[schema(default = false)]
    pub disable_preproc_auto_orient: Option<bool>,
    /// Skip the contrast adjustment of the model's preprocessing, where it has one.
    #[schema(default = false)]
    pub disable_preproc_contrast: Option<bool>,
    /// Skip the grayscale conversion of the model's preprocessing, where it has one.
    #[schema(default = false)]
    pub disable_preproc_grayscale: Option<bool>,
    /// Skip the static crop of the model's preprocessing, where it has one: coordinates are then
    /// in the whole image.
    #[schema(default = false)]
    pub disable_preproc_static_crop: Option<bool>,
    /// Also answer the predictions drawn on the image, as a base64 JPEG in `visualization`.
    #[schema(default = false)]
    pub visualize_predictions: Option<bool>,
    /// Write each prediction's class name on the drawing (with `visualize_predictions`).
    #[schema(default = false)]
    pub visualization_labels: Option<bool>,
    /// Pixels, when `visualize_predictions` is set.
    #[serde(default, deserialize_with = "integral")]
    #[schema(minimum = 1, maximum = 50, default = 1)]
    pub visualization_stroke_width: Option<u32>,
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
    pub fn one(model_id: String, image: ImageInput) -> Common {
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

    /// The model this request names: the body's, or the query's when the body has none; the
    /// body's wins (the query's is still checked), and `X-Model-Id` says which answered.
    pub fn take_query_model_id(&mut self, query: &str) -> Result<(), ApiError> {
        let query = actix_web::web::Query::<ModelQuery>::from_query(query)
            .map_err(|e| ApiError::Validation(format!("Invalid query string: {e}")))?;
        match (&self.model_id, query.into_inner().model_id) {
            (_, None) => Ok(()),
            (None, Some(id)) => {
                self.model_id = Some(id);
                Ok(())
            }
            (Some(_), Some(id)) => ModelId::parse(&id).map(|_| ()).map_err(ApiError::from),
        }
    }

    /// With `model_id` set to `default` where the request names none.
    pub fn or_model(mut self, default: &str) -> Common {
        self.model_id.get_or_insert_with(|| default.to_owned());
        self
    }

    /// The body's `model_id`, validated; a missing one is the schema's 422.
    pub fn required_model_id(&self) -> Result<ModelId, ApiError> {
        let raw = self
            .model_id
            .as_deref()
            .ok_or_else(|| ApiError::Validation("Invalid request body: missing field `model_id`".into()))?;
        Ok(ModelId::parse(raw)?)
    }

    /// What the service is asked for these images, whether they came as a list, and the
    /// request's `inference_id`.
    pub fn into_job<P>(self, options: P) -> Result<(ImageJob<P>, bool, String), ApiError> {
        let (preprocessing, visualize) = (self.preprocessing(), self.visualize()?);
        let inference_id = self.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let (images, many) = match self.image {
            OneOrMany::One(image) => (vec![image], false),
            OneOrMany::Many(images) => (images, true),
        };
        Ok((ImageJob { images, preprocessing, visualize, options }, many, inference_id))
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
pub enum Confidence {
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

// Documentation only: `mask_decode_mode` is read as text, for Roboflow's exact 400.
/// The resolution instance masks are traced at: `accurate`, `fast` or `tradeoff`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum MaskDecodeModeName {
    Accurate,
    Fast,
    Tradeoff,
}

// Documentation only: `response_mask_format` is read as text.
/// How instance masks are answered: a polygon (`polygon`) or COCO run-length encoding (`rle`).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum MaskFormatName {
    Polygon,
    Rle,
}

pub fn fraction(name: &str, v: f32) -> Result<f32, CoreError> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(CoreError::InvalidParameter(format!("{name} must be in [0, 1], got {v}")))
    }
}

/// `"best"` (per-class optimal thresholds from Roboflow's evaluation, which local models lack) and
/// `"default"` both mean the default threshold; `allow_best` is false where Roboflow rejects it.
pub fn confidence(value: &Option<Confidence>, default: f32, allow_best: bool) -> Result<f32, CoreError> {
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

/// The post-processing of the detection routes (boxes, masks, keypoints): thresholds, NMS, limits.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DetectionFields {
    /// Keep the predictions scored above this: a number in [0, 1], or `"default"` (0.4).
    #[serde(default)]
    #[schema(value_type = Option<DetectionConfidence>, inline, default = 0.4)]
    confidence: Option<Confidence>,
    /// Non-maximum suppression drops a box whose IoU with a better box of its class is above this.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1, default = 0.3)]
    iou_threshold: Option<f32>,
    /// Suppress overlapping boxes whatever their classes, not only within a class.
    #[serde(default)]
    #[schema(default = false)]
    class_agnostic_nms: Option<bool>,
    /// Keep only the predictions of these class names; every class when absent.
    #[serde(default)]
    class_filter: Option<Vec<String>>,
    /// The most predictions answered per image, the best-scoring ones.
    #[serde(default, deserialize_with = "integral")]
    #[schema(minimum = 0, maximum = 1000000, default = 300)]
    max_detections: Option<usize>,
    /// The most candidates, best-scoring first, that non-maximum suppression considers.
    #[serde(default, deserialize_with = "integral")]
    #[schema(minimum = 0, maximum = 1000000, default = 3000)]
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

/// `POST /infer/object_detection`: the images, the model and its post-processing.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "model_id": "shapes/1",
    "image": {"type": "base64", "value": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4//8/AAX+Av4zEpUUAAAAAElFTkSuQmCC"},
    "confidence": 0.5,
    "iou_threshold": 0.3,
    "max_detections": 100
}))]
pub struct DetectionRequest {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    detection: DetectionFields,
}

/// `POST /infer/keypoints_detection`: a detection request, with the keypoints' own threshold.
#[derive(Debug, Deserialize, ToSchema)]
pub struct KeypointsRequest {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    detection: DetectionFields,
    /// Drop the keypoints whose confidence is below this (0 keeps every keypoint).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1, default = 0.0)]
    keypoint_confidence: Option<f32>,
}

/// `POST /infer/instance_segmentation`: a detection request, with how the masks are decoded and
/// answered.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SegmentationRequest {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    detection: DetectionFields,
    /// The resolution masks are traced at: `accurate`, the original image's; `fast`, the model's
    /// mask prototypes' (coarser, quicker); `tradeoff`, between the two by `tradeoff_factor`.
    #[serde(default)]
    #[schema(value_type = Option<MaskDecodeModeName>, inline, default = "accurate")]
    mask_decode_mode: Option<String>,
    /// With `mask_decode_mode: tradeoff`: from the prototypes' resolution (0) to the model input's (1).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1, default = 0.0)]
    tradeoff_factor: Option<f32>,
    /// Each mask as a polygon (`points`), or as COCO run-length encoding (`rle`).
    #[serde(default)]
    #[schema(value_type = Option<MaskFormatName>, inline, default = "polygon")]
    response_mask_format: Option<String>,
}

impl DetectionRequest {
    pub fn into_parts(self) -> Result<(Common, DetectOptions), ApiError> {
        let options = DetectOptions::boxes(self.detection.params(true)?);
        Ok((self.common, options))
    }
}

impl KeypointsRequest {
    pub fn into_parts(self) -> Result<(Common, DetectOptions), ApiError> {
        let keypoint_confidence = self.keypoint_confidence.map(|v| fraction("keypoint_confidence", v)).transpose()?;
        let options = DetectOptions {
            detection: self.detection.params(false)?,
            mask: None,
            keypoint_confidence: keypoint_confidence.unwrap_or(0.0),
        };
        Ok((self.common, options))
    }
}

impl SegmentationRequest {
    pub fn into_parts(self) -> Result<(Common, DetectOptions), ApiError> {
        let options = DetectOptions {
            detection: self.detection.params(true)?,
            mask: Some(self.mask_params()?),
            keypoint_confidence: 0.0,
        };
        Ok((self.common, options))
    }

    fn mask_params(&self) -> Result<MaskParams, ApiError> {
        mask_params(self.mask_decode_mode.as_deref(), self.tradeoff_factor, self.response_mask_format.as_deref())
    }
}

/// An unknown mode or a factor outside [0, 1] is a 400 with Roboflow's exact message.
pub fn mask_params(mode: Option<&str>, factor: Option<f32>, format: Option<&str>) -> Result<MaskParams, ApiError> {
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

/// `POST /infer/classification`: the images, the model and the threshold.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClassificationRequest {
    #[serde(flatten)]
    pub common: Common,
    /// A single-label model answers the classes scored at least this (`top` is empty when none
    /// is); a multi-label model predicts the classes scored above it. A number in [0, 1], or
    /// `"default"` or `"best"` (both 0.4).
    #[serde(default)]
    #[schema(inline, default = 0.4)]
    confidence: Option<Confidence>,
}

impl ClassificationRequest {
    pub fn into_parts(self) -> Result<(Common, ClassificationParams), ApiError> {
        let default = ClassificationParams::default().confidence;
        let params = ClassificationParams { confidence: confidence(&self.confidence, default, true)? };
        Ok((self.common, params))
    }
}

/// `?model_id=` on an `/infer/*` route: lets a consistent-hash ingress see which model a request
/// is for (deploy/kubernetes/base/ingress.yaml). It fills a body without `model_id`; a body's own
/// `model_id` wins (the query is still validated).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelQuery {
    /// The model, for routing by model id; fills a body without `model_id`; a body's own `model_id` wins.
    #[param(value_type = Option<ModelIdText>, inline)]
    pub model_id: Option<String>,
}

/// `POST /infer/ocr` and `POST /doctr/ocr`: the images, and the OCR model (`DEFAULT_OCR_MODEL`
/// when `model_id` is absent).
#[derive(Debug, Deserialize, ToSchema)]
pub struct DoctrRequest {
    #[serde(flatten)]
    pub common: Common,
    /// Accepted for Roboflow's clients and ignored: the server's OCR model reads the text.
    #[serde(default)]
    pub doctr_version_id: Option<String>,
    /// `/doctr/ocr`: also answer the image's size and each line's box in `predictions` (`/infer/ocr`
    /// always answers them).
    #[serde(default)]
    #[schema(default = false)]
    pub generate_bounding_boxes: Option<bool>,
}

/// What a handler does to a body before any model runs, on every inference route's request type:
/// parse, check each parameter, and turn `base64` images into bytes (URLs are not fetched).
/// Returns the image bytes of each route's parse that succeeded; for the fuzz target.
pub fn check_body(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
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
