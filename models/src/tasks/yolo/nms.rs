//! Greedy non-maximum suppression, as ultralytics' and yolov5's `non_max_suppression` do it.

/// A scored box in model-input pixels, `[x1, y1, x2, y2]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub bbox: [f32; 4],
    pub score: f32,
    pub class_id: usize,
    /// Index of the anchor (output row/column) it came from, to read its keypoints or mask coefficients.
    pub anchor: usize,
}

/// True IoU, no "+1" pixel convention.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Sorts by score (descending), keeps the top `max_candidates`, then suppresses any box whose IoU
/// with an already kept box of the same class (or any class when `class_agnostic`) exceeds
/// `iou_threshold`; stops at `max_detections`.
pub fn non_max_suppression(
    mut candidates: Vec<Candidate>,
    iou_threshold: f32,
    class_agnostic: bool,
    max_candidates: usize,
    max_detections: usize,
) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    candidates.truncate(max_candidates);
    let mut kept: Vec<Candidate> = Vec::new();
    for c in candidates {
        if kept.len() >= max_detections {
            break;
        }
        let suppressed =
            kept.iter().any(|k| (class_agnostic || k.class_id == c.class_id) && iou(&k.bbox, &c.bbox) > iou_threshold);
        if !suppressed {
            kept.push(c);
        }
    }
    kept
}

/// What an end-to-end head selected, as the API answers it: by score, descending (a stable sort,
/// so ties keep the graph's order), at most `max_detections`; nothing is suppressed.
pub fn best_first(mut candidates: Vec<Candidate>, max_detections: usize) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    candidates.truncate(max_detections);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(x1: f32, y1: f32, x2: f32, y2: f32, score: f32, class_id: usize) -> Candidate {
        Candidate { bbox: [x1, y1, x2, y2], score, class_id, anchor: 0 }
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[10.0, 0.0, 20.0, 10.0]), 0.0);
        // 5x10 overlap, union 150.
        assert!((iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn suppresses_overlaps_of_the_same_class_only() {
        let out = non_max_suppression(
            vec![
                c(0.0, 0.0, 10.0, 10.0, 0.8, 0),
                c(1.0, 0.0, 11.0, 10.0, 0.9, 0), // IoU 0.818 with the first: wins, first suppressed
                c(1.0, 0.0, 11.0, 10.0, 0.7, 1), // other class: kept
                c(50.0, 50.0, 60.0, 60.0, 0.6, 0),
            ],
            0.45,
            false,
            3000,
            300,
        );
        let scores: Vec<f32> = out.iter().map(|c| c.score).collect();
        assert_eq!(scores, [0.9, 0.7, 0.6]);
    }

    #[test]
    fn class_agnostic_suppresses_across_classes() {
        let boxes = vec![c(0.0, 0.0, 10.0, 10.0, 0.9, 0), c(0.0, 0.0, 10.0, 10.0, 0.8, 1)];
        assert_eq!(non_max_suppression(boxes, 0.5, true, 3000, 300).len(), 1);
    }

    #[test]
    fn threshold_is_strict() {
        // IoU exactly 0.5 is not above 0.5: both stay.
        let boxes = vec![c(0.0, 0.0, 10.0, 10.0, 0.9, 0), c(0.0, 0.0, 10.0, 5.0, 0.8, 0)];
        assert_eq!(non_max_suppression(boxes.clone(), 0.5, false, 3000, 300).len(), 2);
        assert_eq!(non_max_suppression(boxes, 0.49, false, 3000, 300).len(), 1);
    }

    #[test]
    fn top_k_before_nms_and_cap_after() {
        let many: Vec<Candidate> =
            (0..10).map(|i| c(i as f32 * 20.0, 0.0, i as f32 * 20.0 + 10.0, 10.0, i as f32 / 10.0, 0)).collect();
        let out = non_max_suppression(many.clone(), 0.5, false, 3, 300);
        assert_eq!(out.iter().map(|c| c.score).collect::<Vec<_>>(), [0.9, 0.8, 0.7]);
        let out = non_max_suppression(many, 0.5, false, 3000, 2);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
    }

    #[test]
    fn an_end_to_end_selection_keeps_overlapping_boxes_and_caps_the_count() {
        let same_box =
            vec![c(0.0, 0.0, 10.0, 10.0, 0.6, 0), c(0.0, 0.0, 10.0, 10.0, 0.9, 1), c(0.0, 0.0, 10.0, 10.0, 0.7, 1)];
        let kept = best_first(same_box.clone(), 300);
        assert_eq!(kept.iter().map(|k| k.score).collect::<Vec<_>>(), [0.9, 0.7, 0.6], "no suppression, by score");
        assert_eq!(best_first(same_box, 2).len(), 2);
    }
}
