//! Reading YOLOv8's `(1, 4+C, N)` detection output: per anchor `cx, cy, w, h`, then C class scores
//! (already sigmoid, no objectness).

use ndarray::ArrayView2;

use crate::nms::Candidate;

/// Candidates whose best class score is strictly above `confidence`, as corner boxes in input pixels.
/// `output` is the `(4+C, N)` view of the first batch item.
pub fn decode_candidates(output: ArrayView2<'_, f32>, confidence: f32) -> Vec<Candidate> {
    let rows = output.nrows();
    if rows <= 4 {
        return Vec::new();
    }
    let mut candidates = Vec::new();
    for anchor in output.columns() {
        let (class_id, score) =
            anchor
                .iter()
                .skip(4)
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &s)| if s > best.1 { (i, s) } else { best });
        if score > confidence {
            let (cx, cy, w, h) = (anchor[0], anchor[1], anchor[2], anchor[3]);
            candidates.push(Candidate {
                bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                score,
                class_id,
            });
        }
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn picks_best_class_and_converts_to_corners() {
        // Two anchors, two classes.
        let out = array![
            [10.0, 50.0], // cx
            [20.0, 60.0], // cy
            [4.0, 10.0],  // w
            [6.0, 10.0],  // h
            [0.1, 0.3],   // class 0
            [0.7, 0.2],   // class 1
        ];
        let c = decode_candidates(out.view(), 0.25);
        assert_eq!(
            c,
            vec![
                Candidate { bbox: [8.0, 17.0, 12.0, 23.0], score: 0.7, class_id: 1 },
                Candidate { bbox: [45.0, 55.0, 55.0, 65.0], score: 0.3, class_id: 0 },
            ]
        );
        assert_eq!(decode_candidates(out.view(), 0.3).len(), 1, "strictly above the threshold");
    }
}
