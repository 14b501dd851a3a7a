//! The model's input tensor from an adjusted image, NCHW float32 RGB, in the convention of the
//! family's reference pipeline.

use image::RgbImage;
use ndarray::{s, Array2, Array4};

use crate::image::letterbox::{Placement, ResizeMode};
use crate::image::resize::{resize_bilinear, resize_float};

/// How a family's reference pipeline turns pixels into its input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InputConvention {
    /// ultralytics: the 8-bit image resized and padded (letterbox arithmetic of ultralytics), / 255.
    Ultralytics,
    /// Roboflow's RF-DETR pipeline: / 255 and normalised by a mean and std per channel *before*
    /// the resize, which therefore runs on floats; letterbox arithmetic of Roboflow's
    /// `letterbox_image`, whose padding value is the edge colour's raw number in normalised space
    /// (black edges pad with 0, the mean colour).
    Normalized { mean: [f32; 3], std: [f32; 3] },
}

/// ImageNet's mean and std, which RF-DETR is trained with.
pub const IMAGENET: InputConvention =
    InputConvention::Normalized { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/// The `(1, 3, in_h, in_w)` input in `convention`, and the placement needed to map results back.
pub fn input_tensor(
    image: &RgbImage,
    convention: InputConvention,
    mode: ResizeMode,
    in_w: u32,
    in_h: u32,
) -> (Array4<f32>, Placement) {
    match convention {
        InputConvention::Ultralytics => to_input_tensor(image, mode, in_w, in_h),
        InputConvention::Normalized { mean, std } => to_normalized_tensor(image, mode, in_w, in_h, mean, std),
    }
}

/// `v / 255.0` for every 8-bit `v`, as the reference divides (a multiply by the reciprocal differs
/// in the last bit for half of them), looked up instead of divided per pixel.
const UNIT: [f32; 256] = {
    let mut table = [0.0; 256];
    let mut v = 0;
    while v < 256 {
        table[v] = v as f32 / 255.0;
        v += 1;
    }
    table
};

/// Builds the `(1, 3, in_h, in_w)` input and the placement needed to map results back.
pub fn to_input_tensor(image: &RgbImage, mode: ResizeMode, in_w: u32, in_h: u32) -> (Array4<f32>, Placement) {
    let placement = Placement::new(mode, image.width(), image.height(), in_w, in_h);
    let resized = resize_bilinear(image, placement.new_w, placement.new_h);
    let pad = match mode {
        ResizeMode::Letterbox { pad } => f32::from(pad) / 255.0,
        ResizeMode::Stretch => 0.0,
    };
    let (h, w) = (in_h as usize, in_w as usize);
    let (left, top) = ((placement.left as usize).min(w), (placement.top as usize).min(h));
    let (new_w, new_h) = (resized.width() as usize, resized.height() as usize);
    let (cols, rows) = (new_w.min(w - left), new_h.min(h - top));
    let mut tensor = Array4::<f32>::from_elem((1, 3, h, w), pad);
    // The three planes filled together from each resized row, left to right.
    if let Some(values) = tensor.as_slice_mut() {
        let (red, rest) = values.split_at_mut(h * w);
        let (green, blue) = rest.split_at_mut(h * w);
        for (y, row) in resized.as_raw().chunks_exact((new_w * 3).max(1)).take(rows).enumerate() {
            let at = (top + y) * w + left..(top + y) * w + left + cols;
            let planes = red[at.clone()].iter_mut().zip(&mut green[at.clone()]).zip(&mut blue[at]);
            for (px, ((r, g), b)) in row.chunks_exact(3).zip(planes) {
                (*r, *g, *b) = (UNIT[usize::from(px[0])], UNIT[usize::from(px[1])], UNIT[usize::from(px[2])]);
            }
        }
    }
    (tensor, placement)
}

/// See [`InputConvention::Normalized`].
pub fn to_normalized_tensor(
    image: &RgbImage,
    mode: ResizeMode,
    in_w: u32,
    in_h: u32,
    mean: [f32; 3],
    std: [f32; 3],
) -> (Array4<f32>, Placement) {
    let placement = Placement::roboflow(mode, image.width(), image.height(), in_w, in_h);
    let pad = match mode {
        ResizeMode::Letterbox { pad } => f32::from(pad),
        ResizeMode::Stretch => 0.0,
    };
    let (h, w) = (in_h as usize, in_w as usize);
    let (new_w, new_h) = (placement.new_w as usize, placement.new_h as usize);
    let (left, top) = (placement.left as usize, placement.top as usize);
    let mut tensor = Array4::<f32>::from_elem((1, 3, h, w), pad);
    let (src_w, src_h) = (image.width() as usize, image.height() as usize);
    for c in 0..3 {
        let normalized = Array2::from_shape_fn((src_h, src_w), |(y, x)| {
            (f32::from(image.get_pixel(x as u32, y as u32).0[c]) / 255.0 - mean[c]) / std[c]
        });
        let resized = resize_float(normalized.view(), new_w, new_h);
        let rows = new_h.min(h.saturating_sub(top));
        let cols = new_w.min(w.saturating_sub(left));
        tensor.slice_mut(s![0, c, top..top + rows, left..left + cols]).assign(&resized.slice(s![..rows, ..cols]));
    }
    (tensor, placement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_pads_with_the_edge_value_around_the_content() {
        let image = RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 51]));
        let (t, p) = to_input_tensor(&image, ResizeMode::Letterbox { pad: 114 }, 8, 8);
        assert_eq!((p.new_w, p.new_h, p.left, p.top), (8, 4, 0, 2));
        assert_eq!(t.shape(), [1, 3, 8, 8]);
        assert_eq!(t[[0, 0, 0, 0]], 114.0 / 255.0);
        assert_eq!(t[[0, 0, 2, 0]], 1.0);
        assert_eq!(t[[0, 1, 2, 0]], 0.0);
        assert_eq!(t[[0, 2, 5, 7]], 51.0 / 255.0);
        assert_eq!(t[[0, 2, 6, 7]], 114.0 / 255.0);
    }

    #[test]
    fn content_is_the_resized_image_over_255_and_the_rest_padding() {
        let image = RgbImage::from_fn(53, 31, |x, y| image::Rgb([(x * 5) as u8, (y * 8) as u8, (x * y) as u8]));
        for (mode, in_w, in_h) in [(ResizeMode::Letterbox { pad: 114 }, 40, 40), (ResizeMode::Stretch, 17, 29)] {
            let (t, p) = to_input_tensor(&image, mode, in_w, in_h);
            let resized = resize_bilinear(&image, p.new_w, p.new_h);
            let pad = if mode == ResizeMode::Stretch { 0.0 } else { 114.0 / 255.0 };
            for ((_, c, y, x), &v) in t.indexed_iter() {
                let (rx, ry) = (x as i64 - i64::from(p.left), y as i64 - i64::from(p.top));
                let inside = (0..i64::from(p.new_w)).contains(&rx) && (0..i64::from(p.new_h)).contains(&ry);
                let want = match inside {
                    true => f32::from(resized.get_pixel(rx as u32, ry as u32).0[c]) / 255.0,
                    false => pad,
                };
                assert_eq!(v.to_bits(), want.to_bits(), "{mode:?} ({c}, {y}, {x})");
            }
        }
    }

    #[test]
    fn normalized_input_is_normalised_before_a_float_resize_and_pads_with_the_raw_edge_value() {
        let image = RgbImage::from_fn(4, 2, |x, _| image::Rgb([if x < 2 { 0 } else { 255 }, 128, 51]));
        let (mean, std) = ([0.5, 0.25, 0.0], [0.5, 0.25, 1.0]);
        let (t, p) = to_normalized_tensor(&image, ResizeMode::Letterbox { pad: 0 }, 8, 8, mean, std);
        // Roboflow's arithmetic: 4x2 into 8x8 is 8x4, top padding (8 - 4) // 2.
        assert_eq!((p.new_w, p.new_h, p.left, p.top), (8, 4, 0, 2));
        assert_eq!(t[[0, 0, 0, 0]], 0.0, "black edges pad with 0 after normalisation");
        assert_eq!(t[[0, 0, 2, 0]], -1.0);
        assert_eq!(t[[0, 0, 2, 7]], 1.0);
        // Between the two columns the float resize interpolates normalised values: no rounding to 8 bits.
        assert!((t[[0, 0, 2, 3]] - -0.5).abs() < 1e-6, "{}", t[[0, 0, 2, 3]]);
        assert!((t[[0, 1, 3, 4]] - (128.0 / 255.0 - 0.25) / 0.25).abs() < 1e-6);
        let (s, _) = to_normalized_tensor(&image, ResizeMode::Stretch, 4, 2, mean, std);
        assert_eq!(s[[0, 2, 1, 1]], 51.0 / 255.0);
    }
}
