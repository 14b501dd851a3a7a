//! Object detection: decode → letterbox/stretch → ONNX Runtime → YOLOv8 decode → NMS → original frame.

use async_trait::async_trait;
use image::RgbImage;
use ndarray::{Array4, Axis, Ix3};
use sightline_core::{
    CoreError, Detection, DetectionParams, InferRequest, InferResponse, Model, ModelDescription, ModelId,
    ObjectDetectionOutput, TaskParams,
};

use crate::image_decode::{decode_image, DecodeLimits};
use crate::letterbox::{Placement, ResizeMode};
use crate::model_config::ModelConfig;
use crate::nms::non_max_suppression;
use crate::onnx_worker::{build_session, run_session, OnnxWorker, Outputs};
use crate::preprocess::to_input_tensor;
use crate::registry::RegistryOptions;
use crate::yolov8_output::decode_candidates;
use crate::ModelError;

pub struct ObjectDetectionModel {
    description: ModelDescription,
    resize: ResizeMode,
    input_w: u32,
    input_h: u32,
    decode_limits: DecodeLimits,
    worker: OnnxWorker,
}

/// Reads a static, positive dimension.
fn static_dim(d: i64) -> Option<u32> {
    u32::try_from(d).ok().filter(|&d| d > 0)
}

impl ObjectDetectionModel {
    /// Blocking: builds the session, checks its shapes, runs a test inference on a blank image, and
    /// only then starts the worker. Every error names the weights file.
    pub fn load(id: &ModelId, config: ModelConfig, options: &RegistryOptions) -> Result<Self, ModelError> {
        let file = config.weights.clone();
        let broken = |reason: String| ModelError::BrokenModel { file: file.clone(), reason };
        let (mut session, shape) = build_session(&file, options.intra_threads)?;
        let (input_w, input_h) = match shape.input_dims.as_slice() {
            [_, 3, h, w] => match (static_dim(*w), static_dim(*h)) {
                (Some(w), Some(h)) => (w, h),
                _ => return Err(broken(format!("input {:?} must have a fixed height and width", shape.input_dims))),
            },
            dims => return Err(broken(format!("input must be (batch, 3, height, width), found {dims:?}"))),
        };
        let num_classes = config.class_names.len();
        let blank = Array4::<f32>::from_elem((1, 3, input_h as usize, input_w as usize), 114.0 / 255.0);
        let outputs = run_session(&mut session, &blank).map_err(|e| broken(format!("test inference failed: {e}")))?;
        let rows = detection_rows(&outputs).map_err(|e| broken(e.to_string()))?;
        if rows != 4 + num_classes {
            return Err(broken(format!(
                "output has {} class scores per anchor, but the model has {num_classes} class names",
                rows.saturating_sub(4)
            )));
        }
        let description = ModelDescription {
            model_id: id.to_string(),
            task: config.task,
            architecture: config.model_type.clone(),
            batch_size: shape.input_dims.first().and_then(|&b| static_dim(b)).map(|b| b as usize),
            input_width: Some(input_w),
            input_height: Some(input_h),
            class_names: config.class_names,
        };
        let worker = OnnxWorker::start(session, &description.model_id, options.queue_capacity)?;
        Ok(ObjectDetectionModel {
            description,
            resize: config.resize,
            input_w,
            input_h,
            decode_limits: options.decode_limits,
            worker,
        })
    }

    fn postprocess(
        &self,
        outputs: &Outputs,
        placement: &Placement,
        params: &DetectionParams,
    ) -> Result<Vec<Detection>, ModelError> {
        let output = first_output(outputs)?;
        let candidates = decode_candidates(output.index_axis(Axis(0), 0), params.confidence);
        let kept = non_max_suppression(
            candidates,
            params.iou_threshold,
            params.class_agnostic_nms,
            params.max_candidates,
            params.max_detections,
        );
        let names = &self.description.class_names;
        Ok(kept
            .into_iter()
            .filter_map(|c| {
                let class_name = names.get(c.class_id)?.clone();
                if params.class_filter.as_ref().is_some_and(|f| !f.contains(&class_name)) {
                    return None;
                }
                let [x1, y1, x2, y2] = placement.box_to_original(c.bbox);
                Some(Detection { x1, y1, x2, y2, confidence: c.score, class_id: c.class_id, class_name })
            })
            .collect())
    }
}

fn first_output(outputs: &Outputs) -> Result<ndarray::ArrayView3<'_, f32>, ModelError> {
    let output = outputs.first().ok_or_else(|| ModelError::Inference("model returned no output".into()))?;
    output.view().into_dimensionality::<Ix3>().map_err(|_| {
        ModelError::Inference(format!("expected a (batch, 4+classes, anchors) output, got {:?}", output.shape()))
    })
}

/// The `4+C` of a `(batch, 4+C, anchors)` output.
fn detection_rows(outputs: &Outputs) -> Result<usize, ModelError> {
    let output = first_output(outputs)?;
    if output.shape()[0] != 1 {
        return Err(ModelError::Inference(format!("expected batch 1, got {:?}", output.shape())));
    }
    Ok(output.shape()[1])
}

#[async_trait]
impl Model for ObjectDetectionModel {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    async fn infer(&self, request: InferRequest) -> Result<InferResponse, CoreError> {
        let TaskParams::ObjectDetection(params) = &request.params;
        let (mode, w, h, limits) = (self.resize, self.input_w, self.input_h, self.decode_limits);
        let auto_orient = request.auto_orient;
        let image = request.image;
        let prepared = tokio::task::spawn_blocking(move || -> Result<_, ModelError> {
            let decoded: RgbImage = decode_image(&image, auto_orient, limits)?;
            let (tensor, placement) = to_input_tensor(&decoded, mode, w, h);
            Ok((tensor, placement))
        })
        .await
        .map_err(|e| CoreError::Internal(format!("preprocessing task failed: {e}")))?;
        let (tensor, placement) = prepared?;
        let outputs = self.worker.run(tensor).await?;
        let predictions = self.postprocess(&outputs, &placement, params)?;
        Ok(InferResponse::ObjectDetection(ObjectDetectionOutput {
            image_width: placement.orig_w,
            image_height: placement.orig_h,
            predictions,
        }))
    }
}
