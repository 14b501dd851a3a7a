//! `POST /infer/object_detection` (Roboflow spec §2).

use std::time::Instant;

use actix_web::{web, HttpResponse};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sightline_core::{
    CoreError, DetectionParams, InferRequest, InferResponse, ModelId, ObjectDetectionOutput, TaskParams,
};

use crate::body::{parse_json, read_limited};
use crate::error::ApiError;
use crate::image_input::{ImageInput, OneOrMany};
use crate::state::AppState;

/// `confidence` may be a number or the strings `"default"` / `"best"` (which mean the model default here).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Confidence {
    Value(f32),
    Named(String),
}

#[derive(Debug, Deserialize)]
pub struct ObjectDetectionRequest {
    model_id: String,
    image: OneOrMany<ImageInput>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    disable_preproc_auto_orient: Option<bool>,
    #[serde(default)]
    confidence: Option<Confidence>,
    #[serde(default)]
    iou_threshold: Option<f32>,
    #[serde(default)]
    class_agnostic_nms: Option<bool>,
    #[serde(default)]
    class_filter: Option<Vec<String>>,
    #[serde(default)]
    max_detections: Option<usize>,
    #[serde(default)]
    max_candidates: Option<usize>,
}

fn fraction(name: &str, v: f32) -> Result<f32, CoreError> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(CoreError::InvalidParameter(format!("{name} must be in [0, 1], got {v}")))
    }
}

impl ObjectDetectionRequest {
    fn params(&self) -> Result<DetectionParams, CoreError> {
        let defaults = DetectionParams::default();
        let confidence = match &self.confidence {
            Some(Confidence::Value(v)) => fraction("confidence", *v)?,
            Some(Confidence::Named(s)) if s == "default" || s == "best" => defaults.confidence,
            Some(Confidence::Named(s)) => {
                return Err(CoreError::InvalidParameter(format!(
                    "confidence must be a number, \"default\" or \"best\", got {s:?}"
                )))
            }
            None => defaults.confidence,
        };
        Ok(DetectionParams {
            confidence,
            iou_threshold: self
                .iou_threshold
                .map(|v| fraction("iou_threshold", v))
                .transpose()?
                .unwrap_or(defaults.iou_threshold),
            class_agnostic_nms: self.class_agnostic_nms.unwrap_or(defaults.class_agnostic_nms),
            max_candidates: self.max_candidates.unwrap_or(defaults.max_candidates),
            max_detections: self.max_detections.unwrap_or(defaults.max_detections),
            class_filter: self.class_filter.clone(),
        })
    }
}

/// Images of one request in the model's queue at once.
const IMAGES_IN_FLIGHT: usize = 4;

#[derive(Debug, Serialize)]
struct ImageSize {
    width: u32,
    height: u32,
}

/// A detection as Roboflow returns it: centre, size, unrounded (Roboflow's legacy backend rounds corners to whole pixels).
#[derive(Debug, Serialize)]
struct DetectionJson {
    x: f32,
    y: f32,
    width: f32,
    height: f32,
    confidence: f32,
    class: String,
    class_id: usize,
    detection_id: String,
}

#[derive(Debug, Serialize)]
struct DetectionResponse {
    inference_id: String,
    time: f64,
    image: ImageSize,
    predictions: Vec<DetectionJson>,
}

fn to_json(output: ObjectDetectionOutput, inference_id: &str, time: f64) -> DetectionResponse {
    DetectionResponse {
        inference_id: inference_id.to_owned(),
        time,
        image: ImageSize { width: output.image_width, height: output.image_height },
        predictions: output
            .predictions
            .into_iter()
            .map(|d| DetectionJson {
                x: (d.x1 + d.x2) / 2.0,
                y: (d.y1 + d.y2) / 2.0,
                width: d.x2 - d.x1,
                height: d.y2 - d.y1,
                confidence: d.confidence,
                class: d.class_name,
                class_id: d.class_id,
                detection_id: uuid::Uuid::new_v4().to_string(),
            })
            .collect(),
    }
}

pub async fn object_detection(state: web::Data<AppState>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, state.max_body_bytes).await?;
    let request: ObjectDetectionRequest = parse_json(&body)?;
    let model_id = ModelId::parse(&request.model_id)?;
    let params = request.params()?;
    let inference_id = request.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let auto_orient = !request.disable_preproc_auto_orient.unwrap_or(false);
    let (images, many) = match request.image {
        OneOrMany::One(image) => (vec![image], false),
        OneOrMany::Many(images) => (images, true),
    };
    let images = images.into_iter().map(ImageInput::into_bytes).collect::<Result<Vec<_>, _>>()?;
    // Load (if needed) before the clock starts: `time` is the model pipeline, as in Roboflow's server.
    state.manager.add(&model_id).await?;
    let runs = images.into_iter().map(|image| {
        let request = InferRequest { image, auto_orient, params: TaskParams::ObjectDetection(params.clone()) };
        let (manager, model_id, inference_id) = (state.manager.clone(), &model_id, &inference_id);
        async move {
            let started = Instant::now();
            let InferResponse::ObjectDetection(output) = manager.infer(model_id, request).await?;
            Ok::<_, ApiError>(to_json(output, inference_id, started.elapsed().as_secs_f64()))
        }
    });
    // A few images of one request at a time: a long list must not flood the model's queue.
    let mut responses: Vec<DetectionResponse> = stream::iter(runs).buffered(IMAGES_IN_FLIGHT).try_collect().await?;
    if many {
        Ok(HttpResponse::Ok().json(responses))
    } else {
        let single = responses.pop().ok_or_else(|| ApiError::Validation("image must not be empty".into()))?;
        Ok(HttpResponse::Ok().json(single))
    }
}
