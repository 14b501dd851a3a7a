//! Image classification, single-label (one distribution over the classes) or multi-label (an
//! independent probability per class).
//!
//! Exported classifiers differ in whether the graph ends in softmax/sigmoid: ultralytics' `-cls`
//! exports already output probabilities, others output logits. The scores are taken as
//! probabilities when they already are (single-label: non-negative and summing to 1; multi-label:
//! all within [0, 1]); otherwise softmax (single-label) or sigmoid (multi-label) is applied.

use async_trait::async_trait;
use sightline_core::{
    ClassScore, ClassificationOutput, ClassificationParams, Classify, CoreError, ImageRequest, Model, ModelDescription,
    ModelId, RunTensors,
};
use sightline_engine::{run_blocking, FixedSizeSession, ModelSessions, Outputs};

use crate::image::drawing::{class_colors, draw_classification, encode_jpeg};
use crate::image::preprocess::InputSpec;
use crate::image::tensor::InputConvention;
use crate::load_options::LoadOptions;
use crate::model_config::ModelConfig;
use crate::tasks::instances::{Instances, Ran};
use crate::ModelError;

pub struct ClassificationModel {
    description: ModelDescription,
    input: InputSpec,
    multi_label: bool,
    colors: Vec<image::Rgb<u8>>,
    instances: Instances,
}

/// The raw `(1, C)` scores.
fn raw_scores(outputs: &Outputs) -> Result<Vec<f32>, ModelError> {
    let output = outputs.first().ok_or_else(|| ModelError::Inference("model returned no output".into()))?;
    match output.shape() {
        [1, _] => Ok(output.iter().copied().collect()),
        shape => Err(ModelError::Inference(format!("expected a (1, classes) output, got {shape:?}"))),
    }
}

pub fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = x.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Scores as probabilities (see the module doc for when they are converted).
pub fn to_probabilities(raw: &[f32], multi_label: bool) -> Vec<f32> {
    let in_unit = raw.iter().all(|v| (0.0..=1.0).contains(v));
    if multi_label {
        if in_unit {
            raw.to_vec()
        } else {
            raw.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect()
        }
    } else if in_unit && (raw.iter().sum::<f32>() - 1.0).abs() < 1e-3 {
        raw.to_vec()
    } else {
        softmax(raw)
    }
}

impl ClassificationModel {
    /// Blocking: builds the session, checks the output has one score per class name on a blank image.
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
        let scores = raw_scores(&outputs).map_err(|e| broken(e.to_string()))?;
        let num_classes = config.class_names.len();
        if scores.len() != num_classes {
            return Err(broken(format!(
                "output has {} class scores, but the model has {num_classes} class names",
                scores.len()
            )));
        }
        let colors = class_colors(&config.class_names, &config.colors);
        let mut description = config.description(id, shape.batch_size(), width, height);
        description.tensors = session.signature().ok();
        let name = description.model_id.to_string();
        let instances =
            Instances::start(sessions, &file, session, batch_limit, description.tensors.clone(), options, &name)?;
        Ok(ClassificationModel {
            description,
            input: InputSpec {
                mode: config.resize,
                width,
                height,
                decode_limits: options.decode_limits,
                adjustments: config.adjustments,
                convention: InputConvention::Ultralytics,
            },
            multi_label: config.multi_label,
            colors,
            instances,
        })
    }
}

impl Model for ClassificationModel {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn classifier(&self) -> Option<&dyn Classify> {
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
impl Classify for ClassificationModel {
    async fn classify(&self, request: ImageRequest<ClassificationParams>) -> Result<ClassificationOutput, CoreError> {
        let params = &request.options;
        let threshold = params.confidence;
        let keep_frame = request.visualize.is_some();
        let Ran { outputs, placement, frame, in_flight: _in_flight } = self
            .instances
            .run_image(request.image, request.ticket, request.preprocessing, self.input, keep_frame)
            .await?;
        let postprocess_started = std::time::Instant::now();
        let probabilities = to_probabilities(&raw_scores(&outputs)?, self.multi_label);
        let mut scores: Vec<ClassScore> = probabilities
            .into_iter()
            .zip(&self.description.class_names)
            .enumerate()
            .map(|(class_id, (confidence, name))| ClassScore { class_id, class_name: name.clone(), confidence })
            .collect();
        scores.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        let visualization = match frame {
            Some(mut frame) => {
                // The top class (single-label) or every predicted class (multi-label).
                let shown: Vec<ClassScore> = if self.multi_label {
                    scores.iter().filter(|s| s.confidence > threshold).cloned().collect()
                } else {
                    scores.iter().take(1).filter(|s| s.confidence >= threshold).cloned().collect()
                };
                let colors = self.colors.clone();
                let jpeg = run_blocking("visualization", move || {
                    draw_classification(&mut frame, &shown, &colors);
                    encode_jpeg(&frame)
                })
                .await??;
                Some(jpeg)
            }
            None => None,
        };
        self.instances.timers().postprocess.observe(postprocess_started.elapsed().as_secs_f64());
        Ok(ClassificationOutput {
            image_width: placement.frame_w,
            image_height: placement.frame_h,
            scores,
            multi_label: self.multi_label,
            visualization,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_pass_through_and_logits_are_converted() {
        assert_eq!(to_probabilities(&[0.7, 0.2, 0.1], false), [0.7, 0.2, 0.1]);
        let p = to_probabilities(&[2.0, 0.0, 0.0], false);
        assert!((p[0] - 0.786_986).abs() < 1e-5 && (p.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{p:?}");
        // Values in [0, 1] that do not sum to 1 are logits for a single-label model.
        let p = to_probabilities(&[0.5, 0.5, 0.5], false);
        assert!(p.iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-6));
        assert_eq!(to_probabilities(&[0.9, 0.8], true), [0.9, 0.8]);
        let p = to_probabilities(&[0.0, 2.0, -2.0], true);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.880_797).abs() < 1e-5 && (p[2] - 0.119_203).abs() < 1e-5);
    }
}
