//! Keypoints of a pose head: `(x, y, confidence)` triples after the class scores, named per class
//! by the model's `keypoints_metadata.json`.

use ndarray::ArrayView1;
use sightline_core::Keypoint;

use crate::image::letterbox::Placement;

/// The keypoints named for a detection's class (`names`), at most `count`, in metadata order,
/// read from its anchor's `values` starting at `from`, mapped back and clipped to the image;
/// those below `min_confidence` are dropped.
pub fn keypoints(
    values: ArrayView1<'_, f32>,
    from: usize,
    count: usize,
    names: &[String],
    placement: &Placement,
    min_confidence: f32,
) -> Vec<Keypoint> {
    names
        .iter()
        .take(count)
        .enumerate()
        .filter_map(|(k, name)| {
            let [x, y, confidence] = [values[from + 3 * k], values[from + 3 * k + 1], values[from + 3 * k + 2]];
            if confidence < min_confidence {
                return None;
            }
            let (x, y) = placement.to_original(x, y);
            let (x, y) = placement.clip(x, y);
            Some(Keypoint { x, y, confidence, class_id: k, class_name: name.clone() })
        })
        .collect()
}
