//! The model's input tensor from an adjusted image: resize per the model's mode, pad, NCHW float32
//! RGB / 255.

use image::RgbImage;
use ndarray::Array4;

use crate::image::letterbox::{Placement, ResizeMode};
use crate::image::resize::resize_bilinear;

/// Builds the `(1, 3, in_h, in_w)` input and the placement needed to map results back.
pub fn to_input_tensor(image: &RgbImage, mode: ResizeMode, in_w: u32, in_h: u32) -> (Array4<f32>, Placement) {
    let placement = Placement::new(mode, image.width(), image.height(), in_w, in_h);
    let resized = resize_bilinear(image, placement.new_w, placement.new_h);
    let pad = match mode {
        ResizeMode::Letterbox { pad } => f32::from(pad) / 255.0,
        ResizeMode::Stretch => 0.0,
    };
    let (h, w) = (in_h as usize, in_w as usize);
    let mut tensor = Array4::<f32>::from_elem((1, 3, h, w), pad);
    let (left, top) = (placement.left as usize, placement.top as usize);
    let (new_w, new_h) = (resized.width() as usize, resized.height() as usize);
    // Plane by plane over contiguous rows: the tensor is in standard (C) layout.
    if let Some(planes) = tensor.as_slice_mut() {
        let rgb = resized.as_raw();
        for (c, plane) in planes.chunks_exact_mut(h * w).enumerate() {
            for y in 0..new_h.min(h.saturating_sub(top)) {
                let out = &mut plane[(top + y) * w + left..][..new_w.min(w - left)];
                let row = &rgb[y * new_w * 3..][..new_w * 3];
                for (o, px) in out.iter_mut().zip(row.chunks_exact(3)) {
                    *o = f32::from(px[c]) / 255.0;
                }
            }
        }
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
}
