//! An RF-DETR query's mask: logits over the whole model input, as Roboflow's
//! `RFDETRInstanceSegmentation` decodes them. The letterbox padding is cropped out, the rest
//! resized to the original image (`accurate`; smaller for `fast` and `tradeoff`), `logit > 0`, and
//! the external contour with the most points kept. Unlike YOLO's masks, nothing is cleared outside
//! the box.

use image::GrayImage;
use ndarray::{s, Array2, ArrayView2};
use sightline_core::{InstanceMask, MaskDecodeMode};

use super::frame::Frame;
use crate::image::contour::external_contour_with_most_points;
use crate::image::resize::resize_float;
use crate::image::rle::coco_rle;

/// The mask logits without the letterbox padding (rows and columns rounded as Roboflow does).
fn content<'a>(logits: ArrayView2<'a, f32>, frame: &Frame) -> ArrayView2<'a, f32> {
    let Some(fit) = frame.letterbox else {
        return logits;
    };
    let (mask_h, mask_w) = logits.dim();
    let at =
        |v: f64, mask: usize, input: u32| ((v * mask as f64 / f64::from(input)).round_ties_even() as usize).min(mask);
    let (x1, x2) =
        (at(fit.pad_x, mask_w, frame.input_w), at(fit.pad_x + f64::from(fit.scaled_w), mask_w, frame.input_w));
    let (y1, y2) =
        (at(fit.pad_y, mask_h, frame.input_h), at(fit.pad_y + f64::from(fit.scaled_h), mask_h, frame.input_h));
    logits.slice_move(s![y1..y2.max(y1), x1..x2.max(x1)])
}

fn binary(plane: &Array2<f32>) -> GrayImage {
    let (h, w) = plane.dim();
    GrayImage::from_fn(w as u32, h as u32, |x, y| {
        image::Luma([if plane[[y as usize, x as usize]] > 0.0 { 255 } else { 0 }])
    })
}

/// The mask of one query, `logits (h, w)`, in the frame, as `mode` asks; with its RLE over the
/// whole frame when `want_rle`.
pub fn decode_mask(logits: ArrayView2<'_, f32>, frame: &Frame, mode: MaskDecodeMode, want_rle: bool) -> InstanceMask {
    let content = content(logits, frame);
    let (orig_w, orig_h) = (frame.orig_w as usize, frame.orig_h as usize);
    let (mask_h, mask_w) = content.dim();
    let factor = match mode {
        MaskDecodeMode::Accurate => 1.0,
        MaskDecodeMode::Fast => 0.0,
        MaskDecodeMode::Tradeoff(f) => f64::from(f.clamp(0.0, 1.0)),
    };
    // Python's int() of the blend, as Roboflow sizes the `tradeoff` plane.
    let blend = |mask: usize, full: usize| (mask as f64 * (1.0 - factor) + full as f64 * factor) as usize;
    let (w, h) = (blend(mask_w, orig_w).max(1), blend(mask_h, orig_h).max(1));
    let plane = resize_float(content, w, h);
    let (sx, sy) = (orig_w as f32 / w as f32, orig_h as f32 / h as f32);
    let (cx, cy) = (frame.crop_x as f32, frame.crop_y as f32);
    let polygon = external_contour_with_most_points(&binary(&plane))
        .into_iter()
        .map(|p| [p.x as f32 * sx + cx, p.y as f32 * sy + cy])
        .collect();
    let rle = want_rle.then(|| {
        let full = if (w, h) == (orig_w, orig_h) { plane } else { resize_float(content, orig_w, orig_h) };
        let (cx, cy) = (frame.crop_x as usize, frame.crop_y as usize);
        coco_rle(frame.frame_w as usize, frame.frame_h as usize, |x, y| {
            let (x, y) = (x.wrapping_sub(cx), y.wrapping_sub(cy));
            x < orig_w && y < orig_h && full[[y, x]] > 0.0
        })
    });
    InstanceMask { polygon, rle }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::letterbox::{Placement, ResizeMode};

    #[test]
    fn the_letterbox_padding_is_cropped_before_the_mask_is_resized_to_the_image() {
        // A 64x32 image letterboxed into 32x32: content rows 8..24; the mask (16x16) is 2x coarser.
        let black = ResizeMode::Letterbox { pad: 0 };
        let frame = Frame::of(&Placement::roboflow(black, 64, 32, 32, 32), black, 32, 32);
        let mut logits = Array2::<f32>::from_elem((16, 16), -1.0);
        logits.slice_mut(s![4..12, 0..8]).fill(1.0); // the left half of the content
        logits[[0, 15]] = 5.0; // in the padding: cropped away
        let mask = decode_mask(logits.view(), &frame, MaskDecodeMode::Accurate, true);
        let rle = mask.rle.unwrap();
        assert_eq!(rle.size, [32, 64]);
        let xs: Vec<f32> = mask.polygon.iter().map(|p| p[0]).collect();
        let ys: Vec<f32> = mask.polygon.iter().map(|p| p[1]).collect();
        assert!(
            xs.iter().all(|&x| x <= 32.0) && ys.iter().cloned().fold(f32::MAX, f32::min) == 0.0,
            "{:?}",
            mask.polygon
        );
        let fast = decode_mask(logits.view(), &frame, MaskDecodeMode::Fast, false);
        // At the mask's resolution (16x8 after the crop), points are scaled by 4 to the image.
        assert!(fast.polygon.iter().all(|p| p[0] % 4.0 == 0.0 && p[1] % 4.0 == 0.0), "{:?}", fast.polygon);
        assert!(fast.rle.is_none());
    }
}
