//! Reading YOLO detection heads into scored boxes.
//!
//! - **v8** (`ultralytics`): `(4 + C + E, N)`, one column per anchor: `cx, cy, w, h`, C class scores
//!   (already sigmoid, no objectness), then E extra values (3 per keypoint for pose).
//! - **v5 / v7**: `(N, 5 + C + E)`, one row per anchor: `cx, cy, w, h`, objectness, C class
//!   probabilities. The confidence reported is objectness × best class probability (what yolov5's
//!   `non_max_suppression` and the reference pipeline compute); candidates need objectness above the
//!   threshold first, then the product above it too.
//! - **end-to-end** (YOLO26's and YOLOv10's one-to-one heads): `(N, 6 + E)`, one row per kept
//!   prediction: `x1, y1, x2, y2` (input pixels), score, class index, then E extra values (32 mask
//!   coefficients for segmentation). The graph has already chosen them: no NMS follows.

use ndarray::{ArrayView1, ArrayView2};

use super::nms::Candidate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YoloLayout {
    V8,
    V5,
    EndToEnd,
}

impl YoloLayout {
    /// Values per anchor before any extras: box + (objectness) + classes, or an end-to-end
    /// row's box, score and class.
    pub fn head_len(self, num_classes: usize) -> usize {
        match self {
            YoloLayout::V8 => 4 + num_classes,
            YoloLayout::V5 => 5 + num_classes,
            YoloLayout::EndToEnd => 6,
        }
    }

    /// The view with one row per anchor's values: v8 heads are transposed, the others already are.
    pub fn values_per_anchor<'a>(self, output: ArrayView2<'a, f32>) -> ArrayView2<'a, f32> {
        match self {
            YoloLayout::V8 => output.reversed_axes(),
            YoloLayout::V5 | YoloLayout::EndToEnd => output,
        }
    }

    /// Whether the predictions still need NMS (an end-to-end head has done its own selection).
    pub fn needs_nms(self) -> bool {
        self != YoloLayout::EndToEnd
    }

    /// The layout of a YOLO26 or YOLOv10 head `(rows, columns)`: the one-to-one head lists a few values for
    /// each of many predictions (`(300, 6 + E)`), its one-to-many head the other way round
    /// (`(4 + C + E, anchors)`, as v8).
    pub fn of_end_to_end_family(rows: usize, columns: usize) -> YoloLayout {
        if columns >= 6 && columns < rows {
            YoloLayout::EndToEnd
        } else {
            YoloLayout::V8
        }
    }
}

fn best_class(scores: ArrayView1<'_, f32>) -> (usize, f32) {
    scores.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &s)| if s > best.1 { (i, s) } else { best })
}

/// A box or score the model made NaN or infinite is no prediction (clipping would turn an infinite
/// corner into the image's edge); only candidates over the threshold are checked.
fn finite(values: &[f32]) -> bool {
    values.iter().all(|v| v.is_finite())
}

/// Candidates whose score is strictly above `confidence`, as corner boxes in input pixels.
/// `output` is the first batch item, in the layout's own orientation.
pub fn decode_candidates(
    layout: YoloLayout,
    output: ArrayView2<'_, f32>,
    num_classes: usize,
    confidence: f32,
) -> Vec<Candidate> {
    let anchors = layout.values_per_anchor(output);
    if num_classes == 0 || anchors.ncols() < layout.head_len(num_classes) {
        return Vec::new();
    }
    let mut candidates = Vec::new();
    let mut non_finite = 0;
    for (anchor, v) in anchors.rows().into_iter().enumerate() {
        let (class_id, score) = match layout {
            YoloLayout::EndToEnd => {
                // The class is a float in the graph's output; one that names no class is dropped.
                let class = v[5];
                if !(v[4] > confidence && class >= 0.0 && class < num_classes as f32) {
                    continue;
                }
                if !finite(&[v[0], v[1], v[2], v[3], v[4]]) {
                    non_finite += 1;
                    continue;
                }
                candidates.push(Candidate {
                    bbox: [v[0], v[1], v[2], v[3]],
                    score: v[4],
                    class_id: class as usize,
                    anchor,
                });
                continue;
            }
            YoloLayout::V8 => best_class(v.slice(ndarray::s![4..4 + num_classes])),
            YoloLayout::V5 => {
                let objectness = v[4];
                if objectness <= confidence {
                    continue;
                }
                let (class_id, p) = best_class(v.slice(ndarray::s![5..5 + num_classes]));
                (class_id, objectness * p)
            }
        };
        if score > confidence {
            if !finite(&[v[0], v[1], v[2], v[3], score]) {
                non_finite += 1;
                continue;
            }
            let (cx, cy, w, h) = (v[0], v[1], v[2], v[3]);
            let bbox = [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
            candidates.push(Candidate { bbox, score, class_id, anchor });
        }
    }
    if non_finite > 0 {
        tracing::warn!(anchors = non_finite, "the model's output holds NaN or infinity; those anchors are dropped");
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn v8_picks_best_class_and_converts_to_corners() {
        // Two anchors (columns), two classes.
        let out = array![
            [10.0, 50.0], // cx
            [20.0, 60.0], // cy
            [4.0, 10.0],  // w
            [6.0, 10.0],  // h
            [0.1, 0.3],   // class 0
            [0.7, 0.2],   // class 1
        ];
        let c = decode_candidates(YoloLayout::V8, out.view(), 2, 0.25);
        assert_eq!(
            c,
            vec![
                Candidate { bbox: [8.0, 17.0, 12.0, 23.0], score: 0.7, class_id: 1, anchor: 0 },
                Candidate { bbox: [45.0, 55.0, 55.0, 65.0], score: 0.3, class_id: 0, anchor: 1 },
            ]
        );
        assert_eq!(decode_candidates(YoloLayout::V8, out.view(), 2, 0.3).len(), 1, "strictly above the threshold");
    }

    #[test]
    fn v8_ignores_extra_rows_after_the_classes() {
        // One class, then 3 keypoint values that must not be read as scores.
        let out = array![[10.0], [10.0], [2.0], [2.0], [0.2], [0.9], [0.9], [0.9]];
        assert!(decode_candidates(YoloLayout::V8, out.view(), 1, 0.25).is_empty());
    }

    #[test]
    fn end_to_end_rows_are_corners_score_and_class_kept_above_the_threshold() {
        // Rows: x1, y1, x2, y2, score, class, one extra value.
        let out = array![
            [1.0, 2.0, 11.0, 12.0, 0.9, 2.0, 7.0],
            [5.0, 5.0, 9.0, 9.0, 0.25, 0.0, 7.0], // not strictly above 0.25
            [5.0, 5.0, 9.0, 9.0, 0.8, 3.0, 7.0],  // class 3 of 3: names no class
            [0.0, 0.0, 4.0, 4.0, 0.3, 1.0, 7.0],
        ];
        let c = decode_candidates(YoloLayout::EndToEnd, out.view(), 3, 0.25);
        assert_eq!(
            c,
            vec![
                Candidate { bbox: [1.0, 2.0, 11.0, 12.0], score: 0.9, class_id: 2, anchor: 0 },
                Candidate { bbox: [0.0, 0.0, 4.0, 4.0], score: 0.3, class_id: 1, anchor: 3 },
            ]
        );
        assert!(!YoloLayout::EndToEnd.needs_nms());
    }

    #[test]
    fn a_yolo26_head_is_told_apart_by_its_shape() {
        assert_eq!(YoloLayout::of_end_to_end_family(300, 6), YoloLayout::EndToEnd);
        assert_eq!(YoloLayout::of_end_to_end_family(300, 38), YoloLayout::EndToEnd);
        assert_eq!(YoloLayout::of_end_to_end_family(7, 1344), YoloLayout::V8, "one-to-many: (4 + C, anchors)");
        assert_eq!(YoloLayout::of_end_to_end_family(300, 5), YoloLayout::V8, "too few values for an end-to-end row");
    }

    #[test]
    fn v5_multiplies_objectness_and_prefilters_on_it() {
        // Rows are anchors: cx, cy, w, h, obj, p0, p1.
        let out = array![
            [10.0, 10.0, 4.0, 4.0, 0.9, 0.2, 0.8], // 0.72, class 1
            [30.0, 30.0, 4.0, 4.0, 0.5, 0.9, 0.1], // 0.45, class 0
            [50.0, 50.0, 4.0, 4.0, 0.2, 1.0, 0.0], // objectness below 0.25: dropped before the product
            [70.0, 70.0, 4.0, 4.0, 0.3, 0.5, 0.5], // 0.15 < 0.25 after the product
        ];
        let c = decode_candidates(YoloLayout::V5, out.view(), 2, 0.25);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].class_id, c[0].anchor), (1, 0));
        assert!((c[0].score - 0.72).abs() < 1e-6);
        assert_eq!((c[1].class_id, c[1].anchor), (0, 1));
        assert_eq!(c[1].bbox, [28.0, 28.0, 32.0, 32.0]);
    }
}
