//! From an encoded image to the model's input: decode, the model's adjustments, the input tensor;
//! on the CPU pool, off the async threads.

use std::time::{Duration, Instant};

use image::RgbImage;
use ndarray::Array4;
use sightline_core::{CoreError, PreprocessingFlags};

use sightline_engine::run_blocking;

use crate::image::adjust::{self, Adjustments};
use crate::image::decode::{decode_image, DecodeLimits};
use crate::image::letterbox::{Placement, ResizeMode};
use crate::image::tensor::{input_tensor, InputConvention};

/// How a model wants its input built.
#[derive(Debug, Clone, Copy)]
pub struct InputSpec {
    pub mode: ResizeMode,
    pub width: u32,
    pub height: u32,
    pub decode_limits: DecodeLimits,
    pub adjustments: Adjustments,
    pub convention: InputConvention,
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
        let (adjusted, (x, y)) = adjust::apply(decoded, &spec.adjustments, flags);
        let (tensor, placement) = input_tensor(&adjusted, spec.convention, spec.mode, spec.width, spec.height);
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
