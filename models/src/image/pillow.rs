//! Pillow's `Image.resize` for 8-bit RGB, bit for bit.
//!
//! Embedding models are trained and referenced on Pillow's resampling (OpenAI CLIP's transform,
//! Hugging Face image processors, fastembed), which antialiases when it shrinks: the filter is
//! stretched over `scale` source pixels. This is Pillow's separable convolution: the same
//! coefficients (computed in f64, normalised, then rounded to 22-bit fixed point), a horizontal
//! pass over just the rows the vertical pass reads, stored as u8, then the vertical pass. `NEAREST`
//! is Pillow's affine nearest-neighbour sampling.

use image::RgbImage;

/// Fixed-point bits of Pillow's 8-bit coefficients (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's resampling filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Nearest,
    Box,
    Bilinear,
    Hamming,
    Bicubic,
    Lanczos,
}

impl Filter {
    /// Pillow's `Image.Resampling` numbers, which image-processor configs write as `resample`.
    pub fn from_pillow(value: i64) -> Option<Filter> {
        Some(match value {
            0 => Filter::Nearest,
            1 => Filter::Lanczos,
            2 => Filter::Bilinear,
            3 => Filter::Bicubic,
            4 => Filter::Box,
            5 => Filter::Hamming,
            _ => return None,
        })
    }

    /// The names configs use (`"bicubic"`), as fastembed resolves `interpolation`.
    pub fn from_name(name: &str) -> Option<Filter> {
        Some(match name.to_ascii_lowercase().as_str() {
            "nearest" => Filter::Nearest,
            "lanczos" => Filter::Lanczos,
            "bilinear" => Filter::Bilinear,
            "bicubic" => Filter::Bicubic,
            "box" => Filter::Box,
            "hamming" => Filter::Hamming,
            _ => return None,
        })
    }

    fn support(self) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    x.sin() / x * (0.54 + 0.46 * x.cos())
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// One axis' taps: for each output pixel, its first source pixel and fixed-point weights.
struct Taps {
    starts: Vec<usize>,
    /// `ksize` weights per output pixel; those past the pixel's count are zero.
    weights: Vec<i32>,
    counts: Vec<usize>,
    ksize: usize,
}

impl Taps {
    /// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` for `in_size` → `out_size`.
    fn new(in_size: usize, out_size: usize, filter: Filter) -> Taps {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut taps =
            Taps { starts: vec![0; out_size], weights: vec![0; out_size * ksize], counts: vec![0; out_size], ksize };
        let mut k = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            // C's truncating casts, then the clamps.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let count = xmax.saturating_sub(xmin).min(ksize);
            let mut total = 0.0;
            for (x, w) in k.iter_mut().enumerate().take(count) {
                *w = filter.weight((x as f64 + xmin as f64 - center + 0.5) / filterscale);
                total += *w;
            }
            let row = &mut taps.weights[xx * ksize..(xx + 1) * ksize];
            for (x, w) in k.iter().enumerate().take(count) {
                let w = if total != 0.0 { w / total } else { *w };
                let fixed = w * f64::from(1u32 << PRECISION_BITS);
                row[x] = if w < 0.0 { (fixed - 0.5) as i32 } else { (fixed + 0.5) as i32 };
            }
            taps.starts[xx] = xmin;
            taps.counts[xx] = count;
        }
        taps
    }

    fn of(&self, out: usize) -> (usize, &[i32]) {
        let start = out * self.ksize;
        (self.starts[out], &self.weights[start..start + self.counts[out]])
    }
}

fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

const ROUND: i32 = 1 << (PRECISION_BITS - 1);

/// `image` resized to `width`×`height` as Pillow's `Image.resize((width, height), filter)` does
/// for an RGB image. Both sizes must be at least 1.
pub fn resize(image: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (out_w, out_h) = (width.max(1) as usize, height.max(1) as usize);
    if (in_w, in_h) == (out_w, out_h) || in_w == 0 || in_h == 0 {
        return if in_w == 0 || in_h == 0 { RgbImage::new(width, height) } else { image.clone() };
    }
    if filter == Filter::Nearest {
        return nearest(image, out_w, out_h);
    }
    let horizontal = Taps::new(in_w, out_w, filter);
    let vertical = Taps::new(in_h, out_h, filter);
    // The rows the vertical pass reads, the only ones the horizontal pass computes.
    let first_row = vertical.starts[0];
    let last_row = vertical.starts[out_h - 1] + vertical.counts[out_h - 1];
    let src = image.as_raw();
    let (rows, row_offset) = if in_w != out_w {
        let mut tmp = vec![0u8; (last_row - first_row) * out_w * 3];
        for (y, out_row) in tmp.chunks_exact_mut(out_w * 3).enumerate() {
            let in_row = &src[(y + first_row) * in_w * 3..(y + first_row + 1) * in_w * 3];
            for (xx, px) in out_row.chunks_exact_mut(3).enumerate() {
                let (start, weights) = horizontal.of(xx);
                let mut sums = [ROUND; 3];
                for (i, &w) in weights.iter().enumerate() {
                    let p = &in_row[(start + i) * 3..(start + i) * 3 + 3];
                    for c in 0..3 {
                        sums[c] += i32::from(p[c]) * w;
                    }
                }
                for c in 0..3 {
                    px[c] = clip8(sums[c]);
                }
            }
        }
        (tmp, first_row)
    } else {
        (src.clone(), 0)
    };
    if in_h == out_h {
        return RgbImage::from_raw(width, height, rows).unwrap_or_else(|| RgbImage::new(width, height));
    }
    let stride = out_w * 3;
    let mut out = vec![0u8; out_h * stride];
    for (yy, out_row) in out.chunks_exact_mut(stride).enumerate() {
        let (start, weights) = vertical.of(yy);
        let start = start - row_offset;
        for (i, v) in out_row.iter_mut().enumerate() {
            let mut sum = ROUND;
            for (k, &w) in weights.iter().enumerate() {
                sum += i32::from(rows[(start + k) * stride + i]) * w;
            }
            *v = clip8(sum);
        }
    }
    RgbImage::from_raw(width, height, out).unwrap_or_else(|| RgbImage::new(width, height))
}

/// Pillow's nearest-neighbour resize: an affine transform whose source position starts at half a
/// step and grows by the scale each pixel, accumulated in f64 as Pillow accumulates it (so an exact
/// `.5 * scale` can land just below a pixel edge).
fn nearest(image: &RgbImage, out_w: usize, out_h: usize) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let positions = |in_size: usize, out_size: usize| -> Vec<usize> {
        let scale = in_size as f64 / out_size as f64;
        let mut at = scale * 0.5;
        (0..out_size)
            .map(|_| {
                let index = (at as usize).min(in_size - 1);
                at += scale;
                index
            })
            .collect()
    };
    let (xs, ys) = (positions(in_w, out_w), positions(in_h, out_h));
    let src = image.as_raw();
    let mut out = Vec::with_capacity(out_w * out_h * 3);
    for y in ys {
        let row = y * in_w * 3;
        for &x in &xs {
            out.extend_from_slice(&src[row + x * 3..row + x * 3 + 3]);
        }
    }
    RgbImage::from_raw(out_w as u32, out_h as u32, out).unwrap_or_else(|| RgbImage::new(out_w as u32, out_h as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_weights_sum_to_one_in_fixed_point() {
        let taps = Taps::new(640, 224, Filter::Bicubic);
        for out in 0..224 {
            let (_, weights) = taps.of(out);
            let total: i32 = weights.iter().sum();
            assert!((total - (1 << PRECISION_BITS)).abs() <= weights.len() as i32, "{out}: {total}");
        }
    }

    #[test]
    fn a_flat_image_stays_flat_through_every_filter() {
        let image = RgbImage::from_pixel(97, 61, image::Rgb([10, 128, 250]));
        for filter in
            [Filter::Nearest, Filter::Box, Filter::Bilinear, Filter::Hamming, Filter::Bicubic, Filter::Lanczos]
        {
            for (w, h) in [(32, 20), (224, 150), (97, 7), (5, 61)] {
                let out = resize(&image, w, h, filter);
                assert_eq!(out.dimensions(), (w, h));
                assert!(out.pixels().all(|p| p.0 == [10, 128, 250]), "{filter:?} {w}x{h}");
            }
        }
    }
}
