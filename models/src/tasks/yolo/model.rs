//! YOLO detection-like models: object detection (v5/v7/v8/11 heads, YOLO26's one-to-one and
//! one-to-many heads), instance segmentation (v5/v8/YOLO26-seg, prototypes in a 4-D output) and
//! keypoints (v8-pose).
//! decode → letterbox/stretch → ONNX Runtime → head decode → NMS → masks / keypoints → original frame.

use std::sync::Arc;

use async_trait::async_trait;
use sightline_core::{
    CoreError, Detect, DetectOptions, DetectionOutput, ImageRequest, Model, ModelDescription, ModelId, RunTensors,
};
use sightline_engine::{FixedSizeSession, ModelSessions};

use super::decoder::{head_view, Decoder, Extras};
use super::output::YoloLayout;
use crate::image::drawing::class_colors;
use crate::image::preprocess::InputSpec;
use crate::image::tensor::InputConvention;
use crate::load_options::LoadOptions;
use crate::model_config::{Architecture, ModelConfig};
use crate::tasks::instances::Instances;
use crate::ModelError;

pub struct YoloModel {
    description: ModelDescription,
    decoder: Arc<Decoder>,
    instances: Instances,
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
        let FixedSizeSession { session, shape, size: (width, height), outputs, batch_limit } =
            sessions.fixed_size(&file)?;
        let head = head_view(&outputs).map_err(|e| broken(e.to_string()))?;
        let layout = match config.architecture {
            Architecture::YoloV5 => YoloLayout::V5,
            Architecture::YoloEndToEnd => YoloLayout::of_end_to_end_family(head.nrows(), head.ncols()),
            _ => YoloLayout::V8,
        };
        let values = layout.values_per_anchor(head).ncols();
        let num_classes = config.class_names.len();
        let head = layout.head_len(num_classes);
        let class_mismatch = || {
            broken(match layout {
                YoloLayout::EndToEnd => {
                    format!("{values} values per prediction do not fit x1, y1, x2, y2, score, class")
                }
                _ => format!(
                    "output has {} class scores per anchor, but the model has {num_classes} class names",
                    values.saturating_sub(head - num_classes)
                ),
            })
        };
        let extra_values = values.checked_sub(head).ok_or_else(class_mismatch)?;
        let extras =
            Extras::of(config.task, extra_values, &config.keypoint_names, &outputs).map_err(|reason| match reason {
                Some(reason) => broken(reason),
                None => class_mismatch(),
            })?;
        let mut description = config.description(id, shape.batch_size(), width, height);
        description.tensors = session.signature().ok();
        let input = InputSpec {
            mode: config.resize,
            width,
            height,
            decode_limits: options.decode_limits,
            adjustments: config.adjustments,
            convention: InputConvention::Ultralytics,
        };
        let colors = class_colors(&config.class_names, &config.colors);
        let decoder = Arc::new(Decoder { layout, class_names: config.class_names, extras, input, colors });
        let name = description.model_id.to_string();
        let instances =
            Instances::start(sessions, &file, session, batch_limit, description.tensors.clone(), options, &name)?;
        Ok(YoloModel { description, decoder, instances })
    }
}

impl Model for YoloModel {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn detector(&self) -> Option<&dyn Detect> {
        Some(self)
    }

    fn tensor_runner(&self) -> Option<&dyn RunTensors> {
        self.instances.tensor_runner()
    }

    fn image_queue(&self) -> Option<std::sync::Arc<sightline_core::ModelQueue>> {
        Some(self.instances.queue().clone())
    }
}

/// Boxes; with them, masks for a segmentation model asked for them, and keypoints for a keypoint
/// model (the service sends each model only requests for its own task).
#[async_trait]
impl Detect for YoloModel {
    async fn detect(&self, request: ImageRequest<DetectOptions>) -> Result<DetectionOutput, CoreError> {
        self.instances.detect(&self.decoder, request).await
    }
}
