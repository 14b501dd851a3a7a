//! YOLO detection-like models: object detection (v5/v7/v8 heads) and keypoints (v8-pose).
//! decode → letterbox/stretch → ONNX Runtime → head decode → NMS → keypoints → original frame.

use async_trait::async_trait;
use ndarray::{Array4, ArrayView1, ArrayView2, Axis, Ix3};
use sightline_core::{
    CoreError, Detection, DetectionOutput, DetectionParams, InferRequest, InferResponse, Keypoint, Model,
    ModelDescription, ModelId, Task, TaskParams,
};

use crate::letterbox::Placement;
use crate::model_config::{Architecture, ModelConfig};
use crate::nms::{non_max_suppression, Candidate};
use crate::onnx_worker::{build_session, run_session, OnnxWorker, Outputs};
use crate::preprocess::{prepare, InputSpec};
use crate::registry::RegistryOptions;
use crate::yolo_output::{decode_candidates, YoloLayout};
use crate::ModelError;

pub struct YoloModel {
    description: ModelDescription,
    layout: YoloLayout,
    input: InputSpec,
    /// Keypoints per anchor (0 unless pose).
    num_keypoints: usize,
    keypoint_names: Vec<Vec<String>>,
    worker: OnnxWorker,
}

impl YoloModel {
    /// Blocking: builds the session, checks its shapes, runs a test inference on a blank image, and
    /// only then starts the worker. Every error names the weights file.
    pub fn load(id: &ModelId, config: ModelConfig, options: &RegistryOptions) -> Result<Self, ModelError> {
        let file = config.weights.clone();
        let broken = |reason: String| ModelError::BrokenModel { file: file.clone(), reason };
        let layout = match config.architecture {
            Architecture::YoloV5 => YoloLayout::V5,
            _ => YoloLayout::V8,
        };
        let (mut session, shape) = build_session(&file, options.intra_threads)?;
        let (width, height) = shape.fixed_input_size(&file)?;
        let blank = Array4::<f32>::from_elem((1, 3, height as usize, width as usize), 114.0 / 255.0);
        let outputs = run_session(&mut session, &blank).map_err(|e| broken(format!("test inference failed: {e}")))?;
        let head_output = head_view(&outputs).map_err(|e| broken(e.to_string()))?;
        let values = layout.values_per_anchor(head_output).ncols();
        let num_classes = config.class_names.len();
        let head = layout.head_len(num_classes);
        let extras = values.checked_sub(head).ok_or_else(|| {
            broken(format!(
                "output has {} class scores per anchor, but the model has {num_classes} class names",
                values.saturating_sub(head - num_classes)
            ))
        })?;
        let num_keypoints = match config.task {
            Task::KeypointDetection if extras > 0 && extras % 3 == 0 => extras / 3,
            Task::KeypointDetection => {
                return Err(broken(format!(
                    "{extras} values per anchor after the class scores are not (x, y, confidence) keypoints"
                )))
            }
            _ if extras == 0 => 0,
            _ => {
                return Err(broken(format!(
                    "output has {} class scores per anchor, but the model has {num_classes} class names",
                    values - (head - num_classes)
                )))
            }
        };
        if let Some((class_id, names)) = config.keypoint_names.iter().enumerate().find(|(_, n)| n.len() > num_keypoints)
        {
            return Err(broken(format!(
                "class {class_id} names {} keypoints; the model predicts {num_keypoints}",
                names.len()
            )));
        }
        let description = ModelDescription {
            model_id: id.to_string(),
            task: config.task,
            architecture: config.model_type.clone(),
            batch_size: shape.batch_size(),
            input_width: Some(width),
            input_height: Some(height),
            class_names: config.class_names,
        };
        let worker = OnnxWorker::start(session, &description.model_id, options.queue_capacity)?;
        Ok(YoloModel {
            description,
            layout,
            input: InputSpec { mode: config.resize, width, height, decode_limits: options.decode_limits },
            num_keypoints,
            keypoint_names: config.keypoint_names,
            worker,
        })
    }

    fn postprocess(
        &self,
        outputs: &Outputs,
        placement: &Placement,
        params: &DetectionParams,
        keypoint_confidence: f32,
    ) -> Result<Vec<Detection>, ModelError> {
        let head = head_view(outputs)?;
        let names = &self.description.class_names;
        let candidates = decode_candidates(self.layout, head, names.len(), params.confidence);
        let kept = non_max_suppression(
            candidates,
            params.iou_threshold,
            params.class_agnostic_nms,
            params.max_candidates,
            params.max_detections,
        );
        let anchors = self.layout.values_per_anchor(head);
        let keypoints_from = self.layout.head_len(names.len());
        Ok(kept
            .into_iter()
            .filter_map(|c: Candidate| {
                let class_name = names.get(c.class_id)?.clone();
                if params.class_filter.as_ref().is_some_and(|f| !f.contains(&class_name)) {
                    return None;
                }
                let keypoints =
                    self.keypoints(anchors.row(c.anchor), keypoints_from, c.class_id, placement, keypoint_confidence);
                let [x1, y1, x2, y2] = placement.box_to_original(c.bbox);
                Some(Detection { x1, y1, x2, y2, confidence: c.score, class_id: c.class_id, class_name, keypoints })
            })
            .collect())
    }

    /// The keypoints named for `class_id`, in metadata order, mapped back and clipped to the image.
    fn keypoints(
        &self,
        values: ArrayView1<'_, f32>,
        from: usize,
        class_id: usize,
        placement: &Placement,
        min_confidence: f32,
    ) -> Vec<Keypoint> {
        let Some(names) = self.keypoint_names.get(class_id) else { return Vec::new() };
        names
            .iter()
            .take(self.num_keypoints)
            .enumerate()
            .filter_map(|(k, name)| {
                let [x, y, confidence] = [values[from + 3 * k], values[from + 3 * k + 1], values[from + 3 * k + 2]];
                if confidence < min_confidence {
                    return None;
                }
                let (x, y) = placement.to_original(x, y);
                let (x, y) = (x.clamp(0.0, placement.orig_w as f32), y.clamp(0.0, placement.orig_h as f32));
                Some(Keypoint { x, y, confidence, class_id: k, class_name: name.clone() })
            })
            .collect()
    }
}

/// The first output's first batch item as a 2-D view in the layout's own orientation.
fn head_view(outputs: &Outputs) -> Result<ArrayView2<'_, f32>, ModelError> {
    let output = outputs.first().ok_or_else(|| ModelError::Inference("model returned no output".into()))?;
    let output = output
        .view()
        .into_dimensionality::<Ix3>()
        .map_err(|_| ModelError::Inference(format!("expected a 3-D detection output, got {:?}", output.shape())))?;
    if output.shape()[0] != 1 {
        return Err(ModelError::Inference(format!("expected batch 1, got {:?}", output.shape())));
    }
    Ok(output.index_axis_move(Axis(0), 0))
}

#[async_trait]
impl Model for YoloModel {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    async fn infer(&self, request: InferRequest) -> Result<InferResponse, CoreError> {
        let task = self.description.task;
        let (params, keypoint_confidence) = match (&request.params, task) {
            (TaskParams::ObjectDetection(p), Task::ObjectDetection) => (p.clone(), 0.0),
            (TaskParams::KeypointDetection { detection, keypoint_confidence }, Task::KeypointDetection) => {
                (detection.clone(), *keypoint_confidence)
            }
            (other, _) => {
                return Err(CoreError::TaskMismatch {
                    model_id: self.description.model_id.clone(),
                    actual: task.to_string(),
                    requested: other.task().to_string(),
                })
            }
        };
        let (tensor, placement) = prepare(request.image, request.auto_orient, self.input).await?;
        let outputs = self.worker.run(tensor).await?;
        let predictions = self.postprocess(&outputs, &placement, &params, keypoint_confidence)?;
        let output = DetectionOutput { image_width: placement.orig_w, image_height: placement.orig_h, predictions };
        Ok(match task {
            Task::KeypointDetection => InferResponse::KeypointDetection(output),
            _ => InferResponse::ObjectDetection(output),
        })
    }
}
