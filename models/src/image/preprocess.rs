//! From a decoded image to the model's input tensor: resize per the model's mode, pad, NCHW float32 RGB / 255.

use std::time::{Duration, Instant};

use image::RgbImage;
use ndarray::Array4;
use sightline_core::{CoreError, PreprocessingFlags};

use crate::image::adjust::{self as image_adjust, Adjustments, Contrast};
use crate::image::decode::{decode_image, DecodeLimits};
use crate::image::letterbox::{Placement, ResizeMode};
use crate::image::resize::resize_bilinear;
use crate::pipeline::{run_blocking, StageTimers};

/// How a model wants its input built.
#[derive(Debug, Clone, Copy)]
pub struct InputSpec {
    pub mode: ResizeMode,
    pub width: u32,
    pub height: u32,
    pub decode_limits: DecodeLimits,
    pub adjustments: Adjustments,
}

/// Applies the model's static crop, contrast and grayscale steps that the request keeps, in
/// Roboflow's order; returns the crop's offset in the decoded frame.
pub fn adjust(image: RgbImage, adjustments: &Adjustments, flags: PreprocessingFlags) -> (RgbImage, (u32, u32)) {
    let (mut image, offset) = match adjustments.static_crop.filter(|_| flags.static_crop) {
        Some(c) => image_adjust::crop(&image, &c),
        None => (image, (0, 0)),
    };
    match adjustments.contrast.filter(|_| flags.contrast) {
        Some(Contrast::Stretching) => image_adjust::contrast_stretch(&mut image),
        Some(Contrast::HistogramEqualization) => image_adjust::equalize_histogram(&mut image),
        Some(Contrast::AdaptiveEqualization) => image_adjust::equalize_adaptive(&mut image),
        None => {}
    }
    if adjustments.grayscale && flags.grayscale {
        image_adjust::grayscale(&mut image);
    }
    (image, offset)
}

/// A prepared input: the tensor, where the image sits in it, the decoded frame when a
/// visualization will be drawn on it, and what decoding and preparing took.
pub struct Prepared {
    pub tensor: Array4<f32>,
    pub placement: Placement,
    pub frame: Option<RgbImage>,
    pub decode: Duration,
    pub preprocess: Duration,
}

impl Prepared {
    /// Records the two stages' durations.
    pub fn observe(&self, timers: &StageTimers) {
        timers.decode.observe(self.decode.as_secs_f64());
        timers.preprocess.observe(self.preprocess.as_secs_f64());
    }
}

/// Decodes and prepares one image on the bounded CPU pool, keeping CPU-heavy work off the async threads.
pub async fn prepare(
    image: Vec<u8>,
    flags: PreprocessingFlags,
    spec: InputSpec,
    keep_frame: bool,
) -> Result<Prepared, CoreError> {
    run_blocking("preprocessing", move || {
        let started = Instant::now();
        let decoded = decode_image(&image, flags.auto_orient && spec.adjustments.auto_orient, spec.decode_limits)?;
        drop(image);
        let decoded_at = Instant::now();
        let (frame_w, frame_h) = decoded.dimensions();
        let frame = keep_frame.then(|| decoded.clone());
        let (adjusted, (x, y)) = adjust(decoded, &spec.adjustments, flags);
        let (tensor, placement) = to_input_tensor(&adjusted, spec.mode, spec.width, spec.height);
        Ok(Prepared {
            tensor,
            placement: placement.within_frame(x, y, frame_w, frame_h),
            frame,
            decode: decoded_at - started,
            preprocess: decoded_at.elapsed(),
        })
    })
    .await?
    .map_err(|e: crate::ModelError| e.into())
}

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
