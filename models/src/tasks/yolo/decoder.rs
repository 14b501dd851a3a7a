//! From a YOLO head's raw outputs to detections in original-image pixels: candidates above the
//! confidence, NMS (unless the head is end-to-end and has chosen them itself), then each kept
//! box's keypoints or mask.

use ndarray::{s, ArrayView2, ArrayView3, Axis, Ix3, Ix4};
use sightline_core::{DetectOptions, Detection, Task};
use sightline_engine::Outputs;

use super::keypoints::keypoints;
use super::mask::{decode_mask, MaskInputs};
use super::nms::{best_first, non_max_suppression, Candidate};
use super::output::{decode_candidates, YoloLayout};
use crate::image::letterbox::Placement;
use crate::image::preprocess::InputSpec;
use crate::tasks::instances::DetectionDecoder;
use crate::ModelError;

/// What a task asks of the decoder beyond boxes.
pub enum Extras {
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
pub struct Decoder {
    pub layout: YoloLayout,
    pub class_names: Vec<String>,
    pub extras: Extras,
    pub input: InputSpec,
    pub colors: Vec<image::Rgb<u8>>,
}

impl Extras {
    /// What the `extra_values` per anchor after the class scores are for a model of `task`, with
    /// the load-time test `outputs`; `Err(Some(reason))` names what does not fit, `Err(None)` is
    /// a class count that does not match the class names.
    pub fn of(
        task: Task,
        extra_values: usize,
        keypoint_names: &[Vec<String>],
        outputs: &Outputs,
    ) -> Result<Extras, Option<String>> {
        match task {
            Task::KeypointDetection if extra_values > 0 && extra_values.is_multiple_of(3) => {
                let count = extra_values / 3;
                if let Some((class_id, n)) = keypoint_names.iter().enumerate().find(|(_, n)| n.len() > count) {
                    return Err(Some(format!(
                        "class {class_id} names {} keypoints; the model predicts {count}",
                        n.len()
                    )));
                }
                Ok(Extras::Keypoints { count, names: keypoint_names.to_vec() })
            }
            Task::KeypointDetection => Err(Some(format!(
                "{extra_values} values per anchor after the class scores are not (x, y, confidence) keypoints"
            ))),
            Task::InstanceSegmentation => {
                let prototypes =
                    outputs.iter().position(|o| o.ndim() == 4).ok_or_else(|| Some("no 4-D prototype output".into()))?;
                let channels = outputs[prototypes].shape()[1];
                if channels != extra_values {
                    return Err(Some(format!("{extra_values} mask coefficients per anchor but {channels} prototypes")));
                }
                Ok(Extras::Masks { prototypes })
            }
            _ if extra_values == 0 => Ok(Extras::None),
            _ => Err(None),
        }
    }
}

impl DetectionDecoder for Decoder {
    fn input(&self) -> InputSpec {
        self.input
    }

    fn colors(&self) -> &[image::Rgb<u8>] {
        &self.colors
    }

    /// The detections in `outputs` of an image at `placement`, as `options` ask.
    fn decode(
        &self,
        outputs: &Outputs,
        placement: &Placement,
        options: &DetectOptions,
    ) -> Result<Vec<Detection>, ModelError> {
        let head = head_view(outputs)?;
        let params = &options.detection;
        let candidates = decode_candidates(self.layout, head, self.class_names.len(), params.confidence);
        let kept = if self.layout.needs_nms() {
            non_max_suppression(
                candidates,
                params.iou_threshold,
                params.class_agnostic_nms,
                params.max_candidates,
                params.max_detections,
            )
        } else {
            best_first(candidates, params.max_detections)
        };
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
                let keypoints = match &self.extras {
                    Extras::Keypoints { count, names } => names.get(c.class_id).map_or_else(Vec::new, |names| {
                        keypoints(values, extras_from, *count, names, placement, options.keypoint_confidence)
                    }),
                    _ => Vec::new(),
                };
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
}

/// The first output's first batch item as a 2-D view in the layout's own orientation.
pub fn head_view(outputs: &Outputs) -> Result<ArrayView2<'_, f32>, ModelError> {
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
