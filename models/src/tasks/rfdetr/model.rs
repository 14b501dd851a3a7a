//! The RF-DETR task model: object detection and instance segmentation.
//! decode → normalise → stretch/letterbox → ONNX Runtime → top-k over queries × classes → masks →
//! original frame.

use std::sync::Arc;

use async_trait::async_trait;
use sightline_core::{
    CoreError, Detect, DetectOptions, DetectionOutput, ImageRequest, Model, ModelDescription, ModelId, RunTensors, Task,
};
use sightline_engine::{FixedSizeSession, ModelSessions, Outputs};

use super::decoder::Decoder;
use crate::image::drawing::class_colors;
use crate::image::preprocess::InputSpec;
use crate::image::tensor::IMAGENET;
use crate::load_options::LoadOptions;
use crate::model_config::ModelConfig;
use crate::tasks::instances::Instances;
use crate::ModelError;

pub struct RfDetrModel {
    description: ModelDescription,
    decoder: Arc<Decoder>,
    instances: Instances,
}

/// What the test inference's outputs say: the class columns of the logits, and whether there are
/// masks; `Err` names what does not fit RF-DETR's layout.
fn check_outputs(outputs: &Outputs, task: Task) -> Result<usize, String> {
    let shape = |i: usize| outputs.get(i).map(|o| o.shape().to_vec());
    let boxes = shape(0).ok_or("no outputs")?;
    let logits = shape(1).ok_or("one output; RF-DETR has boxes and class logits")?;
    if boxes.len() != 3 || boxes[2] != 4 {
        return Err(format!("first output {boxes:?} is not (batch, queries, 4) boxes"));
    }
    if logits.len() != 3 || logits[1] != boxes[1] {
        return Err(format!("second output {logits:?} is not (batch, {}, classes) logits", boxes[1]));
    }
    if task == Task::InstanceSegmentation {
        match shape(2) {
            Some(m) if m.len() == 4 && m[1] == boxes[1] => {}
            other => return Err(format!("third output {other:?} is not (batch, {}, h, w) mask logits", boxes[1])),
        }
    }
    Ok(logits[2])
}

impl RfDetrModel {
    /// Blocking: builds the session, checks its outputs on a test inference, and only then starts
    /// the worker. Every error names the weights file.
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
        let columns = check_outputs(&outputs, config.task).map_err(broken)?;
        let (class_names, background) = Decoder::split_background(config.class_names.clone());
        if config.class_names.len() > columns {
            return Err(broken(format!(
                "the model predicts {columns} classes, but the folder names {}",
                config.class_names.len()
            )));
        }
        let mut description = config.description(id, shape.batch_size(), width, height);
        description.class_names = class_names.clone();
        description.tensors = session.signature().ok();
        let input = InputSpec {
            mode: config.resize,
            width,
            height,
            decode_limits: options.decode_limits,
            adjustments: config.adjustments,
            convention: IMAGENET,
        };
        let colors = class_colors(&class_names, &config.colors);
        let masks = config.task == Task::InstanceSegmentation;
        let decoder = Arc::new(Decoder { class_names, background, masks, input, colors });
        let name = description.model_id.to_string();
        let instances =
            Instances::start(sessions, &file, session, batch_limit, description.tensors.clone(), options, &name)?;
        Ok(RfDetrModel { description, decoder, instances })
    }
}

impl Model for RfDetrModel {
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

#[async_trait]
impl Detect for RfDetrModel {
    async fn detect(&self, request: ImageRequest<DetectOptions>) -> Result<DetectionOutput, CoreError> {
        self.instances.detect(&self.decoder, request).await
    }
}
