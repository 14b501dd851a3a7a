//! Turning request bytes into an RGB image: format sniffing, size bounds before allocation, EXIF orientation.
//!
//! JPEG pixels come from libjpeg-turbo (through `mozjpeg`), not the `image` crate's decoder: the
//! reference pipeline decoded with PIL (libjpeg-turbo), and a different IDCT and chroma upsampling
//! move pixels by up to 4 grey levels, enough to shift a confidence by more than 0.01.

use std::io::Cursor;
use std::panic::AssertUnwindSafe;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::ModelError;

/// Bounds checked against the header before any pixel is decoded.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_pixels: u64,
    pub max_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_pixels: 64 * 1024 * 1024, max_side: 16384 }
    }
}

/// Decodes JPEG, PNG, WebP or BMP into RGB8, applying the EXIF orientation when `auto_orient`.
pub fn decode_image(bytes: &[u8], auto_orient: bool, limits: DecodeLimits) -> Result<RgbImage, ModelError> {
    if bytes.is_empty() {
        return Err(ModelError::BadImage("Empty image payload.".into()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ModelError::BadImage(format!("Data is not image. ({e})")))?;
    if reader.format().is_none() {
        return Err(ModelError::BadImage("Data is not image.".into()));
    }
    let format = reader.format();
    let mut decoder = reader.into_decoder().map_err(|e| ModelError::BadImage(format!("Data is not image. ({e})")))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(ModelError::BadImage("Image has no pixels.".into()));
    }
    if w > limits.max_side || h > limits.max_side || u64::from(w) * u64::from(h) > limits.max_pixels {
        return Err(ModelError::BadImage(format!(
            "Image of {w}x{h} pixels exceeds the limit (at most {} pixels, {} per side).",
            limits.max_pixels, limits.max_side
        )));
    }
    // A missing or unreadable EXIF block just means "no rotation", as in PIL's exif_transpose.
    let orientation = if auto_orient { decoder.orientation().ok() } else { None };
    let turbo = if format == Some(ImageFormat::Jpeg) { decode_jpeg_turbo(bytes, w, h) } else { None };
    let mut image = match turbo {
        Some(rgb) => DynamicImage::ImageRgb8(rgb),
        // Other formats, and JPEGs libjpeg cannot turn into RGB (CMYK), go through the `image` crate.
        None => DynamicImage::from_decoder(decoder)
            .map_err(|e| ModelError::BadImage(format!("Data is not image. ({e})")))?,
    };
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image.into_rgb8())
}

/// `None` when libjpeg refuses the data; libjpeg reports fatal errors by unwinding, caught here.
fn decode_jpeg_turbo(bytes: &[u8], w: u32, h: u32) -> Option<RgbImage> {
    std::panic::catch_unwind(AssertUnwindSafe(|| -> Option<RgbImage> {
        let mut started = mozjpeg::Decompress::new_mem(bytes).ok()?.rgb().ok()?;
        if (started.width(), started.height()) != (w as usize, h as usize) {
            return None;
        }
        let pixels: Vec<u8> = started.read_scanlines().ok()?;
        started.finish().ok()?;
        RgbImage::from_raw(w, h, pixels)
    }))
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        RgbImage::new(w, h).write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn decodes_png() {
        let img = decode_image(&encode_png(5, 3), true, DecodeLimits::default()).unwrap();
        assert_eq!(img.dimensions(), (5, 3));
    }

    #[test]
    fn refuses_garbage_and_empty_input() {
        assert!(
            matches!(decode_image(b"", true, DecodeLimits::default()), Err(ModelError::BadImage(m)) if m.contains("Empty"))
        );
        assert!(matches!(decode_image(b"hello world", true, DecodeLimits::default()), Err(ModelError::BadImage(_))));
        let mut truncated = encode_png(64, 64);
        truncated.truncate(truncated.len() / 2);
        assert!(matches!(decode_image(&truncated, true, DecodeLimits::default()), Err(ModelError::BadImage(_))));
    }

    #[test]
    fn refuses_images_over_the_pixel_limit_before_decoding() {
        let limits = DecodeLimits { max_pixels: 100, max_side: 1000 };
        assert!(
            matches!(decode_image(&encode_png(20, 20), true, limits), Err(ModelError::BadImage(m)) if m.contains("exceeds"))
        );
        let limits = DecodeLimits { max_pixels: 1_000_000, max_side: 10 };
        assert!(decode_image(&encode_png(20, 5), true, limits).is_err());
    }

    /// Digests of the RGB pixels PIL 13.0 (libjpeg-turbo) decodes from these fixtures after
    /// `ImageOps.exif_transpose`: FNV-1a 64 of the first 200 000 bytes, and the sum of all bytes.
    #[test]
    fn jpeg_pixels_are_identical_to_pil() {
        fn fnv(bytes: &[u8]) -> u64 {
            bytes.iter().fold(0xcbf29ce484222325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
        }
        for (name, digest, sum) in [
            ("shapes_exif6_480x640.jpg", 0x9d64b3b382cf80cb_u64, 117_939_727_u64),
            ("shapes_1920x1080.jpg", 0x6e567e1a0dd8f6a9, 386_729_947),
        ] {
            let path = format!("{}/../tests/data/images/{name}", env!("CARGO_MANIFEST_DIR"));
            let img = decode_image(&std::fs::read(path).unwrap(), true, DecodeLimits::default()).unwrap();
            assert_eq!(fnv(&img.as_raw()[..200_000]), digest, "{name}");
            assert_eq!(img.as_raw().iter().map(|&b| u64::from(b)).sum::<u64>(), sum, "{name}");
        }
    }

    #[test]
    fn applies_exif_orientation() {
        let bytes =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/images/shapes_exif6_480x640.jpg"))
                .unwrap();
        assert_eq!(decode_image(&bytes, true, DecodeLimits::default()).unwrap().dimensions(), (480, 640));
        assert_eq!(decode_image(&bytes, false, DecodeLimits::default()).unwrap().dimensions(), (640, 480));
    }
}
