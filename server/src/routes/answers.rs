//! The image routes' answers: what the service gave, in Roboflow's shapes, with the headers that
//! say how it was served. The `/infer/*` routes and the legacy route both answer here.

use actix_web::{HttpResponse, HttpResponseBuilder};
use base64::Engine;
use serde::Serialize;
use sightline_core::{ClassificationParams, DetectOptions, OcrOutput, Task};

use crate::error::ApiError;
use crate::service::{Answered, Served, Service};
use crate::types::requests::Common;
use crate::types::responses::{ClassificationAnswer, DetectionResponse, DoctrResponse, OcrResponse, Timing};

/// Each image's body, whether the request sent a list, and how it was served.
pub struct Replied<T> {
    pub bodies: Vec<T>,
    pub many: bool,
    pub served: Served,
}

impl<T> Replied<T> {
    fn of<O>(answered: Answered<O>, many: bool, body: impl Fn(O, f64) -> T) -> Replied<T> {
        let bodies = answered.outputs.into_iter().map(|(output, time)| body(output, time)).collect();
        Replied { bodies, many, served: answered.served }
    }

    pub fn map<U>(self, f: impl Fn(T) -> U) -> Replied<U> {
        Replied { bodies: self.bodies.into_iter().map(f).collect(), many: self.many, served: self.served }
    }
}

fn timing(time: f64, inference_id: &str, visualization: Option<&Vec<u8>>) -> Timing {
    Timing {
        time,
        inference_id: inference_id.to_owned(),
        visualization: visualization.map(|jpeg| base64::engine::general_purpose::STANDARD.encode(jpeg)),
    }
}

/// Boxes, with masks or keypoints as `task` has them.
pub async fn detections(
    service: &Service,
    common: Common,
    task: Task,
    options: DetectOptions,
) -> Result<Replied<DetectionResponse>, ApiError> {
    let id = common.required_model_id()?;
    let (job, many, inference_id) = common.into_job(options)?;
    let answered = service.detect(&id, task, job).await?;
    let keypoints = task == Task::KeypointDetection;
    Ok(Replied::of(answered, many, |o, time| {
        DetectionResponse::new(&o, keypoints, timing(time, &inference_id, o.visualization.as_ref()))
    }))
}

pub async fn classifications(
    service: &Service,
    common: Common,
    params: ClassificationParams,
) -> Result<Replied<ClassificationAnswer>, ApiError> {
    let id = common.required_model_id()?;
    let threshold = params.confidence;
    let (job, many, inference_id) = common.into_job(params)?;
    let answered = service.classify(&id, job).await?;
    Ok(Replied::of(answered, many, |o, time| {
        ClassificationAnswer::new(&o, threshold, timing(time, &inference_id, o.visualization.as_ref()))
    }))
}

/// Lines of text, in `/infer/ocr`'s shape.
pub async fn texts(service: &Service, common: Common) -> Result<Replied<OcrResponse>, ApiError> {
    let (answered, many, inference_id) = read(service, common).await?;
    Ok(Replied::of(answered, many, |o, time| OcrResponse::new(&o, timing(time, &inference_id, None))))
}

/// Lines of text, in DocTR's shape (`/doctr/ocr`).
pub async fn doctr_texts(service: &Service, common: Common, boxes: bool) -> Result<Replied<DoctrResponse>, ApiError> {
    let (answered, many, _) = read(service, common).await?;
    Ok(Replied::of(answered, many, |o, time| DoctrResponse::new(&o, time, boxes)))
}

async fn read(service: &Service, common: Common) -> Result<(Answered<OcrOutput>, bool, String), ApiError> {
    let id = common.required_model_id()?;
    let (job, many, inference_id) = common.into_job(())?;
    Ok((service.read_text(&id, job).await?, many, inference_id))
}

/// An object for one image, a list for a list, with the response headers.
pub fn respond<T: Serialize>(mut replied: Replied<T>) -> Result<HttpResponse, ApiError> {
    let mut response = HttpResponse::Ok();
    headers(&replied.served, &mut response);
    if replied.many {
        return Ok(response.json(replied.bodies));
    }
    let single = replied.bodies.pop().ok_or_else(|| ApiError::Validation("image must not be empty".into()))?;
    Ok(response.json(single))
}

/// A body of another type (the legacy route's JPEG or JSON text), with the response headers.
pub fn respond_with(served: &Served, content_type: &str, body: Vec<u8>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    headers(served, &mut response);
    response.content_type(content_type).body(body)
}

/// A JSON body with the response headers.
pub fn respond_json<T: Serialize>(served: &Served, body: &T) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    headers(served, &mut response);
    response.json(body)
}

fn headers(served: &Served, response: &mut HttpResponseBuilder) {
    response.insert_header(("X-Model-Id", served.model_id.to_string()));
    response.insert_header(("X-Model-Cold-Start", if served.cold_load.is_some() { "true" } else { "false" }));
    if let Some(seconds) = served.cold_load {
        response.insert_header(("X-Model-Load-Time", format!("{seconds:.6}")));
    }
    response.insert_header(("X-Processing-Time", format!("{:.6}", served.started.elapsed().as_secs_f64())));
}
