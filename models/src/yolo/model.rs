//! YOLO detection-like models: object detection (v5/v7/v8 heads), instance segmentation
//! (v5/v8-seg, prototypes in a 4-D output) and keypoints (v8-pose).
//! decode → letterbox/stretch → ONNX Runtime → head decode → NMS → masks / keypoints → original frame.

use std::sync::Arc;

use async_trait::async_trait;
use ndarray::{s, ArrayView1, ArrayView2, ArrayView3, Axis, Ix3, Ix4};
use sightline_core::{
    CoreError, Detection, DetectionOutput, DetectionParams, ImageRequest, InferRequest, InferResponse, Keypoint,
    MaskParams, Model, ModelDescription, ModelId, Task, TaskParams,
};

use crate::engine::tensors::signature_of;
use crate::engine::{FixedSizeSession, ModelSessions, OnnxWorker, Outputs};
use crate::image::drawing::{class_colors, draw_detections, encode_jpeg};
use crate::image::letterbox::Placement;
use crate::image::preprocess::{prepare, InputSpec};
use crate::load_options::LoadOptions;
use crate::model_config::{Architecture, ModelConfig};
use crate::pipeline::{run_blocking, StageTimers};
use crate::tensor_model::infer_tensors;
use crate::yolo::mask::{decode_mask, MaskInputs};
use crate::yolo::nms::{non_max_suppression, Candidate};
use crate::yolo::output::{decode_candidates, YoloLayout};
use crate::ModelError;

/// What a task asks of the decoder beyond boxes.
enum Extras {
    None,
    Keypoints {
        count: usize,
        names: Vec<Vec<String>>,
    },
    /// Mask coefficients per anchor, prototypes in output `prototypes`.
    Masks {
        prototypes: usize,
    },
}

/// Everything needed to turn raw outputs into detections; shared with the blocking pool.
struct Decoder {
    layout: YoloLayout,
    class_names: Vec<String>,
    extras: Extras,
    input: InputSpec,
    colors: Vec<image::Rgb<u8>>,
}

pub struct YoloModel {
    description: ModelDescription,
    decoder: Arc<Decoder>,
    worker: OnnxWorker,
    timers: StageTimers,
}

/// Per-request options of the decoder.
struct DecodeOptions {
    detection: DetectionParams,
    keypoint_confidence: f32,
    mask: Option<MaskParams>,
}

impl YoloModel {
    /// Blocking: builds the session, checks its shapes, runs a test inference on a blank image, and
    /// only then starts the worker. Every error names the weights file.
    pub fn load(
        id: &ModelId,
        config: ModelConfig,
        options: &LoadOptions,
        sessions: &mut ModelSessions<'_>,
    ) -> Result<Self, ModelError> {
        let file = config.weights.clone();
        let broken = |reason: String| ModelError::BrokenModel { file: file.clone(), reason };
        let layout = if config.architecture == Architecture::YoloV5 { YoloLayout::V5 } else { YoloLayout::V8 };
        let FixedSizeSession { session, shape, size: (width, height), outputs, batch_limit } =
            sessions.fixed_size(&file)?;
        let values = layout.values_per_anchor(head_view(&outputs).map_err(|e| broken(e.to_string()))?).ncols();
        let num_classes = config.class_names.len();
        let head = layout.head_len(num_classes);
        let class_mismatch = || {
            broken(format!(
                "output has {} class scores per anchor, but the model has {num_classes} class names",
                values.saturating_sub(head - num_classes)
            ))
        };
        let extra_values = values.checked_sub(head).ok_or_else(class_mismatch)?;
        let extras = match config.task {
            Task::KeypointDetection if extra_values > 0 && extra_values % 3 == 0 => {
                let count = extra_values / 3;
                if let Some((class_id, n)) = config.keypoint_names.iter().enumerate().find(|(_, n)| n.len() > count) {
                    return Err(broken(format!(
                        "class {class_id} names {} keypoints; the model predicts {count}",
                        n.len()
                    )));
                }
                Extras::Keypoints { count, names: config.keypoint_names.clone() }
            }
            Task::KeypointDetection => {
                return Err(broken(format!(
                    "{extra_values} values per anchor after the class scores are not (x, y, confidence) keypoints"
                )))
            }
            Task::InstanceSegmentation => {
                let prototypes = outputs
                    .iter()
                    .position(|o| o.ndim() == 4)
                    .ok_or_else(|| broken("no 4-D prototype output".into()))?;
                let channels = outputs[prototypes].shape()[1];
                if channels != extra_values {
                    return Err(broken(format!(
                        "{extra_values} mask coefficients per anchor but {channels} prototypes"
                    )));
                }
                Extras::Masks { prototypes }
            }
            _ if extra_values == 0 => Extras::None,
            _ => return Err(class_mismatch()),
        };
        let mut description = config.description(id, shape.batch_size(), width, height);
        description.tensors = signature_of(&session).ok();
        let input = InputSpec {
            mode: config.resize,
            width,
            height,
            decode_limits: options.decode_limits,
            adjustments: config.adjustments,
        };
        let colors = class_colors(&config.class_names, &config.colors);
        let decoder = Arc::new(Decoder { layout, class_names: config.class_names, extras, input, colors });
        let instances = sessions.instances(&file, session, false)?;
        let worker_options = options.worker(&description.model_id, batch_limit, false);
        let timers = worker_options.timers.clone();
        let worker = OnnxWorker::start(instances, &description.model_id, worker_options)?;
        Ok(YoloModel { description, decoder, worker, timers })
    }
}

impl Decoder {
    fn decode(
        &self,
        outputs: &Outputs,
        placement: &Placement,
        options: &DecodeOptions,
    ) -> Result<Vec<Detection>, ModelError> {
        let head = head_view(outputs)?;
        let params = &options.detection;
        let candidates = decode_candidates(self.layout, head, self.class_names.len(), params.confidence);
        let kept = non_max_suppression(
            candidates,
            params.iou_threshold,
            params.class_agnostic_nms,
            params.max_candidates,
            params.max_detections,
        );
        let anchors = self.layout.values_per_anchor(head);
        let extras_from = self.layout.head_len(self.class_names.len());
        let prototypes = match self.extras {
            Extras::Masks { prototypes } => Some(prototype_view(outputs, prototypes)?),
            _ => None,
        };
        Ok(kept
            .into_iter()
            .filter_map(|c: Candidate| {
                let class_name = self.class_names.get(c.class_id)?.clone();
                if params.class_filter.as_ref().is_some_and(|f| !f.contains(&class_name)) {
                    return None;
                }
                let bbox = placement.box_to_original(c.bbox);
                let values = anchors.row(c.anchor);
                let keypoints = self.keypoints(values, extras_from, c.class_id, placement, options.keypoint_confidence);
                let mask = match (&prototypes, &options.mask) {
                    (Some(prototypes), Some(mask)) => {
                        let inputs = MaskInputs {
                            coefficients: values.slice(s![extras_from..]),
                            prototypes: prototypes.view(),
                            bbox,
                            placement,
                            input_w: self.input.width as usize,
                            input_h: self.input.height as usize,
                        };
                        Some(decode_mask(&inputs, mask.decode_mode, mask.rle))
                    }
                    _ => None,
                };
                let [x1, y1, x2, y2] = bbox;
                Some(Detection {
                    x1,
                    y1,
                    x2,
                    y2,
                    confidence: c.score,
                    class_id: c.class_id,
                    class_name,
                    keypoints,
                    mask,
                })
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
        let Extras::Keypoints { count, names } = &self.extras else { return Vec::new() };
        let Some(names) = names.get(class_id) else { return Vec::new() };
        names
            .iter()
            .take(*count)
            .enumerate()
            .filter_map(|(k, name)| {
                let [x, y, confidence] = [values[from + 3 * k], values[from + 3 * k + 1], values[from + 3 * k + 2]];
                if confidence < min_confidence {
                    return None;
                }
                let (x, y) = placement.to_original(x, y);
                let (x, y) = placement.clip(x, y);
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

/// `(channels, h, w)` prototypes of the first batch item.
fn prototype_view(outputs: &Outputs, index: usize) -> Result<ArrayView3<'_, f32>, ModelError> {
    let output = outputs.get(index).ok_or_else(|| ModelError::Inference("prototype output missing".into()))?;
    let output = output
        .view()
        .into_dimensionality::<Ix4>()
        .map_err(|_| ModelError::Inference(format!("expected 4-D prototypes, got {:?}", output.shape())))?;
    Ok(output.index_axis_move(Axis(0), 0))
}

#[async_trait]
impl Model for YoloModel {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    async fn infer(&self, request: InferRequest) -> Result<InferResponse, CoreError> {
        let request: ImageRequest = match request {
            InferRequest::Image(request) => request,
            InferRequest::Tensors(inputs) => return infer_tensors(&self.worker, &self.description, inputs).await,
        };
        let task = self.description.task;
        let options = match (request.params, task) {
            (TaskParams::ObjectDetection(detection), Task::ObjectDetection) => {
                DecodeOptions { detection, keypoint_confidence: 0.0, mask: None }
            }
            (TaskParams::InstanceSegmentation { detection, mask }, Task::InstanceSegmentation) => {
                DecodeOptions { detection, keypoint_confidence: 0.0, mask: Some(mask) }
            }
            (TaskParams::KeypointDetection { detection, keypoint_confidence }, Task::KeypointDetection) => {
                DecodeOptions { detection, keypoint_confidence, mask: None }
            }
            (other, _) => {
                return Err(CoreError::TaskMismatch {
                    model_id: self.description.model_id.clone(),
                    actual: task.to_string(),
                    requested: other.task().to_string(),
                })
            }
        };
        let _admitted = self.worker.admit()?;
        let visualize = request.visualize;
        let prepared = prepare(request.image, request.preprocessing, self.decoder.input, visualize.is_some()).await?;
        prepared.observe(&self.timers);
        let outputs = self.worker.run(prepared.tensor).await?;
        let (placement, frame) = (prepared.placement, prepared.frame);
        // Masks and drawing cost real CPU on large images: both run on the bounded pool.
        let decoder = self.decoder.clone();
        let postprocess = self.timers.postprocess.clone();
        let (predictions, visualization) = run_blocking("post-processing", move || -> Result<_, ModelError> {
            let started = std::time::Instant::now();
            let predictions = decoder.decode(&outputs, &placement, &options)?;
            let visualization = match (frame, visualize) {
                (Some(mut frame), Some(params)) => {
                    draw_detections(&mut frame, &predictions, &decoder.colors, &params);
                    Some(encode_jpeg(&frame)?)
                }
                _ => None,
            };
            postprocess.observe(started.elapsed().as_secs_f64());
            Ok((predictions, visualization))
        })
        .await??;
        let output = DetectionOutput {
            image_width: placement.frame_w,
            image_height: placement.frame_h,
            predictions,
            visualization,
        };
        Ok(match task {
            Task::KeypointDetection => InferResponse::KeypointDetection(output),
            Task::InstanceSegmentation => InferResponse::InstanceSegmentation(output),
            _ => InferResponse::ObjectDetection(output),
        })
    }
}
