//! `POST /infer/object_detection`, `/infer/instance_segmentation`, `/infer/keypoints_detection`,
//! `/infer/classification`, `/infer/ocr` and `/doctr/ocr` (Roboflow's HTTP API).

use actix_web::{web, HttpRequest, HttpResponse};
use sightline_core::Task;

use super::answers::{classifications, detections, doctr_texts, respond, texts};
use crate::body::{parse_json, read_limited};
use crate::error::ApiError;
use crate::state::AppState;
use crate::types::errors::InferErrors;
use crate::types::requests::{
    ClassificationRequest, DetectionRequest, DoctrRequest, KeypointsRequest, ModelQuery, SegmentationRequest,
};
use crate::types::responses::{ClassificationAnswer, DetectionResponse, DoctrResponse, OcrResponse, OneOrList};

type State = web::Data<AppState>;
type Reply = Result<HttpResponse, ApiError>;

pub(super) async fn parse_request<T: serde::de::DeserializeOwned>(
    state: &AppState,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let body = read_limited(payload, state.max_body_bytes).await?;
    parse_json(&body)
}

/// The three detection routes differ only in their body, their task and what they document.
macro_rules! detection_route {
    ($handler:ident, $path:tt, $request:ty, $task:expr, $summary:tt, $description:tt, $answer:tt) => {
        #[utoipa::path(post, path = $path, tag = "inference", request_body = $request, params(ModelQuery),
                    summary = $summary, description = $description,
                    responses((status = 200, description = $answer, body = OneOrList<DetectionResponse>), InferErrors))]
        pub async fn $handler(state: State, http: HttpRequest, payload: web::Payload) -> Reply {
            let mut request: $request = parse_request(&state, payload).await?;
            request.common.take_query_model_id(http.query_string())?;
            let (common, options) = request.into_parts()?;
            respond(detections(&state.service, common, $task, options).await?)
        }
    };
}

detection_route!(
    object_detection,
    "/infer/object_detection",
    DetectionRequest,
    Task::ObjectDetection,
    "Detect objects in images",
    "Runs the object-detection model `model_id` on one image or a list of them and answers each image's \
    boxes, in original-image pixels, with their class and confidence: those scored above `confidence`, \
    after non-maximum suppression and `class_filter`, at most `max_detections`. The model is loaded from \
    its source on its first use (`X-Model-Cold-Start: true`); the `X-Model-Id` and `X-Processing-Time` \
    headers say which model answered and how long it took. A model of another task is refused (400).",
    "Boxes in original-image pixels. One object for one image; a list for a list."
);
detection_route!(
    instance_segmentation,
    "/infer/instance_segmentation",
    SegmentationRequest,
    Task::InstanceSegmentation,
    "Segment object instances in images",
    "Runs the instance-segmentation model `model_id` on one image or a list of them and answers each \
    image's boxes, as `/infer/object_detection` does, each with its mask: a polygon in `points`, or COCO \
    run-length encoding in `rle` with `response_mask_format: rle`. `mask_decode_mode` trades the masks' \
    precision for speed. The model is loaded on its first use; a model of another task is refused (400).",
    "Boxes with `points` or `rle` masks. One object for one image; a list for a list."
);
detection_route!(
    keypoints_detection,
    "/infer/keypoints_detection",
    KeypointsRequest,
    Task::KeypointDetection,
    "Detect objects and their keypoints in images",
    "Runs the keypoint-detection (pose) model `model_id` on one image or a list of them and answers each \
    image's boxes, as `/infer/object_detection` does, each with its keypoints named as the model's \
    metadata names them; keypoints scored below `keypoint_confidence` are left out. The model is loaded \
    on its first use; a model of another task is refused (400).",
    "Boxes with named keypoints. One object for one image; a list for a list."
);

/// Classify images
///
/// Runs the classification model `model_id` on one image or a list of them. A single-label model
/// answers the classes scored at least `confidence`, best first, and the best one as `top`; a
/// multi-label model answers every class's score and the classes scored above `confidence` as
/// `predicted_classes`. The model is loaded on its first use; a model of another task is refused (400).
#[utoipa::path(post, path = "/infer/classification", tag = "inference", request_body = ClassificationRequest, params(ModelQuery), responses((status = 200, description = "Single- or multi-label scores. One object for one image; a list for a list.", body = OneOrList<ClassificationAnswer>), InferErrors))]
pub async fn classification(state: State, http: HttpRequest, payload: web::Payload) -> Reply {
    let mut request: ClassificationRequest = parse_request(&state, payload).await?;
    request.common.take_query_model_id(http.query_string())?;
    let (common, params) = request.into_parts()?;
    respond(classifications(&state.service, common, params).await?)
}

/// Read the text in images
///
/// Runs an OCR model on one image or a list of them and answers each image's lines of text, each
/// with its score, its box and its quadrilateral. `model_id` defaults to the server's OCR model
/// (`DEFAULT_OCR_MODEL`).
#[utoipa::path(post, path = "/infer/ocr", tag = "inference", request_body = DoctrRequest, params(ModelQuery), responses((status = 200, description = "Lines with text, score and quadrilateral. One object for one image; a list for a list.", body = OneOrList<OcrResponse>), InferErrors))]
pub async fn ocr(state: State, http: HttpRequest, payload: web::Payload) -> Reply {
    let mut request: DoctrRequest = parse_request(&state, payload).await?;
    request.common.take_query_model_id(http.query_string())?;
    let common = request.common.or_model(state.service.default_ocr_model());
    respond(texts(&state.service, common).await?)
}

/// Read the text in images, in Roboflow's DocTR shape
///
/// Roboflow's DocTR route, served by the server's OCR model (`DEFAULT_OCR_MODEL`; any
/// `doctr/<version>` id means it). `result` joins the lines read; with `generate_bounding_boxes`
/// the answer also has a box per line (the model reads lines, not words).
#[utoipa::path(post, path = "/doctr/ocr", tag = "inference", request_body = DoctrRequest, params(ModelQuery), responses((status = 200, description = "Roboflow DocTR shape. One object for one image; a list for a list.", body = OneOrList<DoctrResponse>), InferErrors))]
pub async fn doctr_ocr(state: State, http: HttpRequest, payload: web::Payload) -> Reply {
    let mut request: DoctrRequest = parse_request(&state, payload).await?;
    request.common.take_query_model_id(http.query_string())?;
    if request.common.model_id.as_deref().is_some_and(|id| id.starts_with("doctr/")) {
        request.common.model_id = None;
    }
    let boxes = request.generate_bounding_boxes.unwrap_or(false);
    let common = request.common.or_model(state.service.default_ocr_model());
    respond(doctr_texts(&state.service, common, boxes).await?)
}
