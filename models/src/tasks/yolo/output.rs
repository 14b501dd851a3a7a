//! Reading YOLO detection heads into scored boxes.
//!
//! - **v8** (`ultralytics`): `(4 + C + E, N)`, one column per anchor: `cx, cy, w, h`, C class scores
//!   (already sigmoid, no objectness), then E extra values (3 per keypoint for pose).
//! - **v5 / v7**: `(N, 5 + C + E)`, one row per anchor: `cx, cy, w, h`, objectness, C class
//!   probabilities. The confidence reported is objectness × best class probability (what yolov5's
//!   `non_max_suppression` and the reference pipeline compute); candidates need objectness above the
//!   threshold first, then the product above it too.

use ndarray::{ArrayView1, ArrayView2};

use super::nms::Candidate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YoloLayout {
    V8,
    V5,
}

impl YoloLayout {
    /// Values per anchor before any extras: box + (objectness) + classes.
    pub fn head_len(self, num_classes: usize) -> usize {
        match self {
            YoloLayout::V8 => 4 + num_classes,
            YoloLayout::V5 => 5 + num_classes,
        }
    }

    /// The view with one row per anchor's values: v8 heads are transposed, v5 ones already are.
    pub fn values_per_anchor<'a>(self, output: ArrayView2<'a, f32>) -> ArrayView2<'a, f32> {
        match self {
            YoloLayout::V8 => output.reversed_axes(),
            YoloLayout::V5 => output,
        }
    }
}

fn best_class(scores: ArrayView1<'_, f32>) -> (usize, f32) {
    scores.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &s)| if s > best.1 { (i, s) } else { best })
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
    for (anchor, v) in anchors.rows().into_iter().enumerate() {
        let (class_id, score) = match layout {
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
            let (cx, cy, w, h) = (v[0], v[1], v[2], v[3]);
            let bbox = [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
            candidates.push(Candidate { bbox, score, class_id, anchor });
        }
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
