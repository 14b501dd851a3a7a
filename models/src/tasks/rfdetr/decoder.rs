//! From RF-DETR's outputs to detections, as Roboflow's `RFDETRObjectDetection.postprocess` does:
//! sigmoid over every query × class, the best `max_detections` of them above the confidence (no
//! NMS: a query may answer for two classes), Roboflow's background class dropped and the classes
//! after it shifted down, boxes mapped back with that pipeline's own arithmetic and clipped.

use ndarray::{ArrayView2, Axis, Ix3, Ix4};
use sightline_core::{DetectOptions, Detection};
use sightline_engine::Outputs;

use super::mask::decode_mask;
use crate::image::letterbox::{Placement, ResizeMode};
use crate::image::preprocess::InputSpec;
use crate::tasks::instances::DetectionDecoder;
use crate::ModelError;

/// The class Roboflow's exports put first in an RF-DETR class list: the dataset's super-category,
/// never a real prediction.
pub const BACKGROUND_CLASS: &str = "background_class83422";

/// Where the output maps back to: the letterbox as the postprocessing computes it (its padding is
/// a half pixel, unlike the preprocessing's floor), and the crop in the frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub orig_w: u32,
    pub orig_h: u32,
    pub input_w: u32,
    pub input_h: u32,
    pub crop_x: u32,
    pub crop_y: u32,
    pub frame_w: u32,
    pub frame_h: u32,
    pub letterbox: Option<Fit>,
}

#[derive(Debug, Clone, Copy)]
pub struct Fit {
    pub scale: f64,
    pub scaled_w: u32,
    pub scaled_h: u32,
    pub pad_x: f64,
    pub pad_y: f64,
}

impl Frame {
    pub fn of(placement: &Placement, mode: ResizeMode, input_w: u32, input_h: u32) -> Frame {
        let (w, h) = (f64::from(placement.orig_w), f64::from(placement.orig_h));
        let letterbox = matches!(mode, ResizeMode::Letterbox { .. }).then(|| {
            let scale = (f64::from(input_w) / w).min(f64::from(input_h) / h);
            let (scaled_w, scaled_h) = ((w * scale) as u32, (h * scale) as u32);
            Fit {
                scale,
                scaled_w,
                scaled_h,
                pad_x: f64::from(input_w - scaled_w.min(input_w)) / 2.0,
                pad_y: f64::from(input_h - scaled_h.min(input_h)) / 2.0,
            }
        });
        Frame {
            orig_w: placement.orig_w,
            orig_h: placement.orig_h,
            input_w,
            input_h,
            crop_x: placement.crop_x,
            crop_y: placement.crop_y,
            frame_w: placement.frame_w,
            frame_h: placement.frame_h,
            letterbox,
        }
    }

    /// A normalised `cx, cy, w, h` box in frame pixels, clipped to the (cropped) image.
    fn box_to_frame(&self, b: [f32; 4]) -> [f32; 4] {
        let corners = [b[0] - 0.5 * b[2], b[1] - 0.5 * b[3], b[0] + 0.5 * b[2], b[1] + 0.5 * b[3]];
        let (w, h) = (self.orig_w as f32, self.orig_h as f32);
        let mapped = match self.letterbox {
            None => [corners[0] * w, corners[1] * h, corners[2] * w, corners[3] * h],
            Some(fit) => {
                let (iw, ih) = (self.input_w as f32, self.input_h as f32);
                let (px, py, scale) = (fit.pad_x as f32, fit.pad_y as f32, fit.scale as f32);
                [
                    (corners[0] * iw - px) / scale,
                    (corners[1] * ih - py) / scale,
                    (corners[2] * iw - px) / scale,
                    (corners[3] * ih - py) / scale,
                ]
            }
        };
        let (cx, cy) = (self.crop_x as f32, self.crop_y as f32);
        [
            mapped[0].clamp(0.0, w) + cx,
            mapped[1].clamp(0.0, h) + cy,
            mapped[2].clamp(0.0, w) + cx,
            mapped[3].clamp(0.0, h) + cy,
        ]
    }
}

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

    #[test]
    fn boxes_map_back_with_the_postprocessing_arithmetic() {
        let stretch =
            Frame::of(&Placement::roboflow(ResizeMode::Stretch, 640, 480, 256, 256), ResizeMode::Stretch, 256, 256);
        assert!(stretch.letterbox.is_none());
        assert_eq!(stretch.box_to_frame([0.5, 0.5, 0.5, 0.5]), [160.0, 120.0, 480.0, 360.0]);
        assert_eq!(stretch.box_to_frame([0.0, 0.0, 0.5, 0.5]), [0.0, 0.0, 160.0, 120.0], "clipped");
        // 300x500 into 256: scale 0.512, content 153 wide, the postprocessing's padding 51.5 (not 51).
        let black = ResizeMode::Letterbox { pad: 0 };
        let fit = Frame::of(&Placement::roboflow(black, 300, 500, 256, 256), black, 256, 256);
        let f = fit.letterbox.unwrap();
        assert_eq!((f.scaled_w, f.scaled_h, f.pad_x, f.pad_y), (153, 256, 51.5, 0.0));
        let b = fit.box_to_frame([0.5, 0.5, 0.25, 0.25]);
        let expected = [(96.0 - 51.5) / 0.512, 96.0 / 0.512, (160.0 - 51.5) / 0.512, 160.0 / 0.512];
        for (a, e) in b.iter().zip(expected) {
            assert!((a - e).abs() < 1e-3, "{b:?} vs {expected:?}");
        }
    }
}
