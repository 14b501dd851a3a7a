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
    ($handler:ident, $path:tt, $request:ty, $task:expr, $answer:tt) => {
        #[utoipa::path(post, path = $path, tag = "inference", request_body = $request, params(ModelQuery),
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
    "Boxes in original-image pixels. One object for one image; a list for a list."
);
detection_route!(
    instance_segmentation,
    "/infer/instance_segmentation",
    SegmentationRequest,
    Task::InstanceSegmentation,
    "Boxes with `points` or `rle` masks. One object for one image; a list for a list."
);
detection_route!(
    keypoints_detection,
    "/infer/keypoints_detection",
    KeypointsRequest,
    Task::KeypointDetection,
    "Boxes with named keypoints. One object for one image; a list for a list."
);

#[utoipa::path(post, path = "/infer/classification", tag = "inference", request_body = ClassificationRequest, params(ModelQuery), responses((status = 200, description = "Single- or multi-label scores. One object for one image; a list for a list.", body = OneOrList<ClassificationAnswer>), InferErrors))]
pub async fn classification(state: State, http: HttpRequest, payload: web::Payload) -> Reply {
    let mut request: ClassificationRequest = parse_request(&state, payload).await?;
    request.common.take_query_model_id(http.query_string())?;
    let (common, params) = request.into_parts()?;
    respond(classifications(&state.service, common, params).await?)
}

/// `POST /infer/ocr`: lines with text, score and quadrilateral (`model_id` defaults to the server's OCR model).
#[utoipa::path(post, path = "/infer/ocr", tag = "inference", request_body = DoctrRequest, params(ModelQuery), responses((status = 200, description = "Lines with text, score and quadrilateral. One object for one image; a list for a list.", body = OneOrList<OcrResponse>), InferErrors))]
pub async fn ocr(state: State, http: HttpRequest, payload: web::Payload) -> Reply {
    let mut request: DoctrRequest = parse_request(&state, payload).await?;
    request.common.take_query_model_id(http.query_string())?;
    let common = request.common.or_model(state.service.default_ocr_model());
    respond(texts(&state.service, common).await?)
}

/// `POST /doctr/ocr`: Roboflow's DocTR route served by the default OCR model (any
/// `doctr/<version>` id means it). `result` joins the lines; boxes are per line (PP-OCR reads lines, not words).
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
