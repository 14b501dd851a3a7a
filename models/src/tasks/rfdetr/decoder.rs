//! From RF-DETR's outputs to detections, as Roboflow's `RFDETRObjectDetection.postprocess` does:
//! sigmoid over every query × class, the best `max_detections` of them above the confidence (no
//! NMS: a query may answer for two classes), Roboflow's background class dropped and the classes
//! after it shifted down, boxes mapped back with that pipeline's own arithmetic and clipped.

use ndarray::{ArrayView2, Axis, Ix3, Ix4};
use sightline_core::{DetectOptions, Detection};
use sightline_engine::Outputs;

use super::frame::Frame;
use super::mask::decode_mask;
use crate::image::letterbox::Placement;
use crate::image::preprocess::InputSpec;
use crate::tasks::instances::DetectionDecoder;
use crate::ModelError;

/// The class Roboflow's exports put first in an RF-DETR class list: the dataset's super-category,
/// never a real prediction.
pub const BACKGROUND_CLASS: &str = "background_class83422";

pub struct Decoder {
    /// Without the background class.
    pub class_names: Vec<String>,
    /// The logit column of Roboflow's background class, when the class list has one.
    pub background: Option<usize>,
    pub masks: bool,
    pub input: InputSpec,
    pub colors: Vec<image::Rgb<u8>>,
}

impl Decoder {
    /// `class_names` as the folder lists them: Roboflow's background class is taken out and
    /// remembered.
    pub fn split_background(mut class_names: Vec<String>) -> (Vec<String>, Option<usize>) {
        let background = class_names.iter().position(|n| n == BACKGROUND_CLASS);
        if let Some(i) = background {
            class_names.remove(i);
        }
        (class_names, background)
    }

    /// The served class of logit column `label`, or `None` for the background.
    fn class_of(&self, label: usize) -> Option<usize> {
        match self.background {
            Some(b) if label == b => None,
            Some(b) if label > b => Some(label - 1),
            _ => Some(label),
        }
    }
}

fn stable_sigmoid(x: f32) -> f32 {
    let z = (-x.abs()).exp();
    if x >= 0.0 {
        1.0 / (1.0 + z)
    } else {
        z / (1.0 + z)
    }
}

/// The first batch item of output `index` as `(queries, values)`.
fn per_query<'a>(outputs: &'a Outputs, index: usize, what: &str) -> Result<ArrayView2<'a, f32>, ModelError> {
    let output = outputs.get(index).ok_or_else(|| ModelError::Inference(format!("no {what} output")))?;
    let output = output
        .view()
        .into_dimensionality::<Ix3>()
        .map_err(|_| ModelError::Inference(format!("expected 3-D {what}, got {:?}", output.shape())))?;
    Ok(output.index_axis_move(Axis(0), 0))
}

/// `(query, class column, score)` of the best `max_detections` query × class pairs strictly above
/// `confidence`, best first (what a top-k then the threshold keeps).
fn top_pairs(logits: ArrayView2<'_, f32>, confidence: f32, max_detections: usize) -> Vec<(usize, usize, f32)> {
    let mut pairs: Vec<(usize, usize, f32)> = logits
        .indexed_iter()
        .map(|((q, c), &l)| (q, c, stable_sigmoid(l)))
        .filter(|&(_, _, s)| s > confidence)
        .collect();
    pairs.sort_by(|a, b| b.2.total_cmp(&a.2));
    pairs.truncate(max_detections);
    pairs
}

impl DetectionDecoder for Decoder {
    fn input(&self) -> InputSpec {
        self.input
    }

    fn colors(&self) -> &[image::Rgb<u8>] {
        &self.colors
    }

    fn decode(
        &self,
        outputs: &Outputs,
        placement: &Placement,
        options: &DetectOptions,
    ) -> Result<Vec<Detection>, ModelError> {
        let boxes = per_query(outputs, 0, "boxes")?;
        let logits = per_query(outputs, 1, "class logits")?;
        let masks = match (self.masks, &options.mask) {
            (true, Some(mask)) => {
                let output = outputs.get(2).ok_or_else(|| ModelError::Inference("no mask output".into()))?;
                let output = output
                    .view()
                    .into_dimensionality::<Ix4>()
                    .map_err(|_| ModelError::Inference(format!("expected 4-D masks, got {:?}", output.shape())))?;
                Some((output.index_axis_move(Axis(0), 0), mask.clone()))
            }
            _ => None,
        };
        let frame = Frame::of(placement, self.input.mode, self.input.width, self.input.height);
        let params = &options.detection;
        Ok(top_pairs(logits, params.confidence, params.max_detections)
            .into_iter()
            .filter_map(|(query, label, confidence)| {
                let class_id = self.class_of(label)?;
                let class_name = self.class_names.get(class_id)?.clone();
                if params.class_filter.as_ref().is_some_and(|f| !f.contains(&class_name)) {
                    return None;
                }
                let b = boxes.row(query);
                let [x1, y1, x2, y2] = frame.box_to_frame([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]);
                let mask = masks.as_ref().map(|(masks, params)| {
                    decode_mask(masks.index_axis(Axis(0), query), &frame, params.decode_mode, params.rle)
                });
                Some(Detection { x1, y1, x2, y2, confidence, class_id, class_name, keypoints: Vec::new(), mask })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::letterbox::ResizeMode;
    use ndarray::array;

    #[test]
    fn the_best_pairs_above_the_threshold_come_first_and_a_query_may_answer_twice() {
        // Logits for 3 queries x 2 classes: sigmoid(2) = 0.88, sigmoid(1) = 0.73, sigmoid(0) = 0.5.
        let logits = array![[2.0f32, 1.0], [0.0, -3.0], [-1.0, 1.5]];
        let pairs = top_pairs(logits.view(), 0.5, 300);
        let picked: Vec<(usize, usize)> = pairs.iter().map(|p| (p.0, p.1)).collect();
        assert_eq!(picked, [(0, 0), (2, 1), (0, 1)], "0.5 itself is not strictly above");
        assert_eq!(top_pairs(logits.view(), 0.5, 2).len(), 2);
        assert!((stable_sigmoid(-100.0)).abs() < 1e-30 && stable_sigmoid(100.0) == 1.0);
    }

    #[test]
    fn the_background_class_is_dropped_and_the_classes_after_it_shift_down() {
        let names = vec![BACKGROUND_CLASS.to_owned(), "circle".into(), "square".into()];
        let (names, background) = Decoder::split_background(names);
        assert_eq!((names.as_slice(), background), (&["circle".to_owned(), "square".to_owned()][..], Some(0)));
        let input = InputSpec {
            mode: ResizeMode::Stretch,
            width: 4,
            height: 4,
            decode_limits: Default::default(),
            adjustments: Default::default(),
            convention: crate::image::tensor::IMAGENET,
        };
        let d = Decoder { class_names: names, background, masks: false, input, colors: Vec::new() };
        assert_eq!((d.class_of(0), d.class_of(1), d.class_of(2)), (None, Some(0), Some(1)));
    }
}
