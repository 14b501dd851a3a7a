//! Instance masks from YOLO prototypes: `sigmoid(coefficients · prototypes)`, cropped to the box,
//! brought back to the original frame, traced into a polygon.
//!
//! `accurate` follows the reference pipeline exactly: logits upsampled (bilinear, half-pixel) to
//! the model input, the letterbox content cropped out, resized to the original size, `logit > 0`
//! (sigmoid > 0.5), pixels outside the box cleared (column c kept when `x1 <= c < x2`), the largest
//! external contour. `fast` and `tradeoff` threshold and trace at a lower resolution and scale the
//! polygon up.

use image::GrayImage;
use ndarray::{Array2, ArrayView1, ArrayView3};
use sightline_core::{InstanceMask, MaskDecodeMode};

use crate::image::contour::largest_external_contour;
use crate::image::letterbox::Placement;
use crate::image::resize::{resize_plane, resize_window, source_span, Window};
use crate::image::rle::coco_rle;

/// `coefficients (C) · prototypes (C, h, w)` → `(h, w)` logits, one contiguous plane at a time.
fn logits(coefficients: ArrayView1<'_, f32>, prototypes: ArrayView3<'_, f32>) -> Array2<f32> {
    let (_, h, w) = prototypes.dim();
    let mut out = Array2::<f32>::zeros((h, w));
    for (&k, plane) in coefficients.iter().zip(prototypes.outer_iter()) {
        out.scaled_add(k, &plane);
    }
    out
}

/// Integer pixel range `[ceil(lo), ceil(hi))` of `lo <= p < hi`, within `0..len`.
fn pixel_range(lo: f32, hi: f32, len: usize) -> std::ops::Range<usize> {
    let start = (lo.max(0.0).ceil() as usize).min(len);
    let end = (hi.max(0.0).ceil() as usize).min(len);
    start..end.max(start)
}

/// Traces the mask given as `on(x, y)` over the pixel box `xs x ys`; points come back in image pixels.
fn trace(xs: std::ops::Range<usize>, ys: std::ops::Range<usize>, on: impl Fn(usize, usize) -> bool) -> Vec<(i32, i32)> {
    let image = GrayImage::from_fn(xs.len() as u32, ys.len() as u32, |x, y| {
        image::Luma([if on(xs.start + x as usize, ys.start + y as usize) { 255 } else { 0 }])
    });
    largest_external_contour(&image).into_iter().map(|p| (p.x + xs.start as i32, p.y + ys.start as i32)).collect()
}

pub struct MaskInputs<'a> {
    pub coefficients: ArrayView1<'a, f32>,
    pub prototypes: ArrayView3<'a, f32>,
    /// The box in frame pixels.
    pub bbox: [f32; 4],
    pub placement: &'a Placement,
    pub input_w: usize,
    pub input_h: usize,
}

/// The box in the cropped image's own pixels (the frame offset removed).
fn local_box(m: &MaskInputs<'_>) -> [f32; 4] {
    let (cx, cy) = (m.placement.crop_x as f32, m.placement.crop_y as f32);
    [m.bbox[0] - cx, m.bbox[1] - cy, m.bbox[2] - cx, m.bbox[3] - cy]
}

/// The mask logits at the (cropped) image's resolution over the box's pixels, coordinates local
/// to the cropped image.
struct BoxLogits {
    xs: std::ops::Range<usize>,
    ys: std::ops::Range<usize>,
    values: Array2<f32>,
}

impl BoxLogits {
    fn on(&self, x: usize, y: usize) -> bool {
        self.xs.contains(&x) && self.ys.contains(&y) && self.values[[y - self.ys.start, x - self.xs.start]] > 0.0
    }
}

/// As the reference: the logits upsampled to the input, the letterbox content resized to the
/// image; only the pixels the box's pixels read are computed, each exactly as the whole resize
/// would.
fn accurate(m: &MaskInputs<'_>, logits: &Array2<f32>) -> BoxLogits {
    let p = m.placement;
    let (w, h) = (p.orig_w as usize, p.orig_h as usize);
    let (new_w, new_h) = (p.new_w as usize, p.new_h as usize);
    let b = local_box(m);
    let xs = pixel_range(b[0], b[2], w);
    let ys = pixel_range(b[1], b[3], h);
    let (content_ys, content_xs) = (source_span(new_h, h, ys.clone()), source_span(new_w, w, xs.clone()));
    let (top, left) = (p.top as usize, p.left as usize);
    let whole = Window { values: logits.view(), origin: (0, 0), size: logits.dim() };
    let up_rows = top + content_ys.start..top + content_ys.end;
    let up_cols = left + content_xs.start..left + content_xs.end;
    let up = resize_window(whole, m.input_w, m.input_h, up_rows, up_cols);
    let content = Window { values: up.view(), origin: (content_ys.start, content_xs.start), size: (new_h, new_w) };
    let values = resize_window(content, w, h, ys.clone(), xs.clone());
    BoxLogits { xs, ys, values }
}

pub fn decode_mask(m: &MaskInputs<'_>, mode: MaskDecodeMode, want_rle: bool) -> InstanceMask {
    let logits = logits(m.coefficients, m.prototypes);
    let p = m.placement;
    let (cx, cy) = (p.crop_x as usize, p.crop_y as usize);
    let polygon_and_full = match mode {
        MaskDecodeMode::Accurate => {
            let full = accurate(m, &logits);
            let polygon = trace(full.xs.clone(), full.ys.clone(), |x, y| full.on(x, y));
            let points =
                polygon.into_iter().map(|(x, y)| [(x as usize + cx) as f32, (y as usize + cy) as f32]).collect();
            (points, Some(full))
        }
        MaskDecodeMode::Fast | MaskDecodeMode::Tradeoff(_) => {
            let factor = if let MaskDecodeMode::Tradeoff(f) = mode { f.clamp(0.0, 1.0) } else { 0.0 };
            (scaled_polygon(m, &logits, factor), None)
        }
    };
    let (polygon, full) = polygon_and_full;
    let rle = want_rle.then(|| {
        let full = full.unwrap_or_else(|| accurate(m, &logits));
        coco_rle(p.frame_w as usize, p.frame_h as usize, |x, y| full.on(x.wrapping_sub(cx), y.wrapping_sub(cy)))
    });
    InstanceMask { polygon, rle }
}

/// Thresholds and traces at a resolution between the prototypes' (`factor` 0) and the input's (1),
/// then maps pixel centres back to the original frame.
fn scaled_polygon(m: &MaskInputs<'_>, logits: &Array2<f32>, factor: f32) -> Vec<[f32; 2]> {
    let (ph, pw) = logits.dim();
    let lerp = |a: usize, b: usize| (a as f32 + factor * (b as f32 - a as f32)).round().max(1.0) as usize;
    let (sw, sh) = (lerp(pw, m.input_w), lerp(ph, m.input_h));
    let plane = if (sw, sh) == (pw, ph) { logits.clone() } else { resize_plane(logits.view(), sw, sh, 0..sh, 0..sw) };
    let p = m.placement;
    // Input pixels per plane pixel, and the box in plane coordinates.
    let (kx, ky) = (m.input_w as f32 / sw as f32, m.input_h as f32 / sh as f32);
    let to_input = |x: f32, y: f32| {
        (x * p.new_w as f32 / p.orig_w as f32 + p.left as f32, y * p.new_h as f32 / p.orig_h as f32 + p.top as f32)
    };
    let (bx1, by1) = to_input(m.bbox[0], m.bbox[1]);
    let (bx2, by2) = to_input(m.bbox[2], m.bbox[3]);
    // A plane pixel belongs to the box when its centre does.
    let xs = pixel_range(bx1 / kx - 0.5, bx2 / kx - 0.5, sw);
    let ys = pixel_range(by1 / ky - 0.5, by2 / ky - 0.5, sh);
    trace(xs, ys, |x, y| plane[[y, x]] > 0.0)
        .into_iter()
        .map(|(x, y)| {
            let (ox, oy) = p.to_original((x as f32 + 0.5) * kx - 0.5, (y as f32 + 0.5) * ky - 0.5);
            let (ox, oy) = p.clip(ox, oy);
            [ox, oy]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::letterbox::ResizeMode;
    use ndarray::{s, Array3};

    #[test]
    fn a_square_prototype_becomes_a_square_mask_cropped_to_the_box() {
        // One prototype channel: positive on input pixels 8..24 (x and y) of a 32x32 input, at 8x8.
        let mut protos = Array3::<f32>::from_elem((1, 8, 8), -5.0);
        protos.slice_mut(s![0, 2..6, 2..6]).fill(5.0);
        let coefficients = ndarray::array![1.0f32];
        let placement = Placement::new(ResizeMode::Stretch, 64, 64, 32, 32);
        let m = MaskInputs {
            coefficients: coefficients.view(),
            prototypes: protos.view(),
            bbox: [0.0, 0.0, 40.0, 64.0], // cuts the square's right part at x = 40
            placement: &placement,
            input_w: 32,
            input_h: 32,
        };
        let mask = decode_mask(&m, MaskDecodeMode::Accurate, true);
        let xs: Vec<f32> = mask.polygon.iter().map(|p| p[0]).collect();
        let ys: Vec<f32> = mask.polygon.iter().map(|p| p[1]).collect();
        let (min_x, max_x) = (xs.iter().cloned().fold(f32::MAX, f32::min), xs.iter().cloned().fold(f32::MIN, f32::max));
        let (min_y, max_y) = (ys.iter().cloned().fold(f32::MAX, f32::min), ys.iter().cloned().fold(f32::MIN, f32::max));
        assert!((15.0..=17.0).contains(&min_x) && max_x == 39.0, "{:?}", mask.polygon);
        assert!((15.0..=17.0).contains(&min_y) && (46.0..=48.0).contains(&max_y), "{:?}", mask.polygon);
        assert_eq!(mask.rle.unwrap().size, [64, 64]);
        let fast = decode_mask(&m, MaskDecodeMode::Fast, false);
        assert!(fast.rle.is_none() && fast.polygon.len() >= 4, "{:?}", fast.polygon);
        assert!(fast.polygon.iter().all(|p| p[0] <= 40.5), "the box crop applies in fast mode too: {:?}", fast.polygon);
    }
}
