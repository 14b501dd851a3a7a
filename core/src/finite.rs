//! Answers never carry NaN or infinity: JSON has no such numbers (serde writes them as `null`,
//! which clients read as a missing coordinate). What a model's outputs make non-finite is dropped
//! with a warning where the rest of the answer stands without it (a box, a keypoint, a class
//! score, an OCR line), and is a clear error naming the model where it does not (a vector).

use crate::inference::{ClassificationOutput, Detection, DetectionOutput, OcrOutput};
use crate::{CoreError, ModelId};

/// An answer with its non-finite parts dropped (or refused).
pub trait Finite: Sized {
    fn finite(self, model: &ModelId) -> Result<Self, CoreError>;
}

fn warn_dropped(model: &ModelId, what: &str, dropped: usize) {
    if dropped > 0 {
        tracing::warn!(model_id = %model, dropped, "the model's outputs gave {what} with NaN or infinity; dropped");
    }
}

impl Detection {
    fn is_finite(&self) -> bool {
        let polygon = self.mask.as_ref().is_none_or(|m| m.polygon.iter().flatten().all(|v| v.is_finite()));
        [self.x1, self.y1, self.x2, self.y2, self.confidence].iter().all(|v| v.is_finite()) && polygon
    }
}

impl Finite for DetectionOutput {
    fn finite(mut self, model: &ModelId) -> Result<Self, CoreError> {
        let before = self.predictions.len();
        self.predictions.retain(Detection::is_finite);
        warn_dropped(model, "detections", before - self.predictions.len());
        let mut keypoints = 0;
        for detection in &mut self.predictions {
            let before = detection.keypoints.len();
            detection.keypoints.retain(|k| k.x.is_finite() && k.y.is_finite() && k.confidence.is_finite());
            keypoints += before - detection.keypoints.len();
        }
        warn_dropped(model, "keypoints", keypoints);
        Ok(self)
    }
}

impl Finite for ClassificationOutput {
    fn finite(mut self, model: &ModelId) -> Result<Self, CoreError> {
        let before = self.scores.len();
        self.scores.retain(|s| s.confidence.is_finite());
        warn_dropped(model, "class scores", before - self.scores.len());
        Ok(self)
    }
}

impl Finite for OcrOutput {
    fn finite(mut self, model: &ModelId) -> Result<Self, CoreError> {
        let before = self.lines.len();
        self.lines.retain(|l| l.confidence.is_finite() && l.quad.iter().flatten().all(|v| v.is_finite()));
        warn_dropped(model, "text lines", before - self.lines.len());
        Ok(self)
    }
}

/// A vector is whole or nothing: one non-finite value makes every similarity with it meaningless.
impl Finite for Vec<f32> {
    fn finite(self, model: &ModelId) -> Result<Self, CoreError> {
        match self.iter().all(|v| v.is_finite()) {
            true => Ok(self),
            false => Err(CoreError::Inference(format!(
                "model {model} gave an embedding with NaN or infinity: its outputs are not usable for this input"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::{ClassScore, Keypoint};

    fn detection(x1: f32, confidence: f32) -> Detection {
        let keypoint = |x: f32| Keypoint { x, y: 1.0, confidence: 0.9, class_id: 0, class_name: "k".into() };
        Detection {
            x1,
            y1: 0.0,
            x2: 10.0,
            y2: 10.0,
            confidence,
            class_id: 0,
            class_name: "a".into(),
            keypoints: vec![keypoint(1.0), keypoint(f32::NAN)],
            mask: None,
        }
    }

    #[test]
    fn non_finite_parts_are_dropped_and_vectors_refused() {
        let id = ModelId::parse("m/1").unwrap();
        let output = DetectionOutput {
            image_width: 1,
            image_height: 1,
            predictions: vec![detection(1.0, 0.9), detection(f32::INFINITY, 0.9), detection(1.0, f32::NAN)],
            visualization: None,
        };
        let kept = output.finite(&id).unwrap().predictions;
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].keypoints.len(), 1);
        let score = |confidence: f32| ClassScore { class_id: 0, class_name: "a".into(), confidence };
        let classes = ClassificationOutput {
            image_width: 1,
            image_height: 1,
            scores: vec![score(0.5), score(f32::NAN)],
            multi_label: false,
            visualization: None,
        };
        assert_eq!(classes.finite(&id).unwrap().scores, vec![score(0.5)]);
        assert!(vec![0.5f32, 1.0].finite(&id).is_ok());
        let refused = vec![0.5f32, f32::NEG_INFINITY].finite(&id).unwrap_err().to_string();
        assert!(refused.contains("m/1"), "{refused}");
    }
}
