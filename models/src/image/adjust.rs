//! The image adjustments of Roboflow's `PREPROCESSING`, applied before resizing in Roboflow's
//! order: static crop, contrast, grayscale.
//!
//! Contrast follows the scikit-image calls Roboflow's server makes: "Contrast Stretching" =
//! `rescale_intensity` between the 2nd and 98th percentiles of all values; "Histogram Equalization"
//! = `equalize_hist` over all values; "Adaptive Equalization" = CLAHE (`equalize_adapthist`, clip
//! limit 0.03, tiles of 1/8 of the image) on the HSV value channel. Grayscale is OpenCV's
//! `BGR2GRAY` weights, back to three channels.

use image::RgbImage;
use sightline_core::PreprocessingFlags;

/// Applies the model's static crop, contrast and grayscale steps that the request keeps, in
/// Roboflow's order; returns the crop's offset in the decoded frame.
pub fn apply(image: RgbImage, adjustments: &Adjustments, flags: PreprocessingFlags) -> (RgbImage, (u32, u32)) {
    let (mut image, offset) = match adjustments.static_crop.filter(|_| flags.static_crop) {
        Some(c) => crop(&image, &c),
        None => (image, (0, 0)),
    };
    match adjustments.contrast.filter(|_| flags.contrast) {
        Some(Contrast::Stretching) => contrast_stretch(&mut image),
        Some(Contrast::HistogramEqualization) => equalize_histogram(&mut image),
        Some(Contrast::AdaptiveEqualization) => equalize_adaptive(&mut image),
        None => {}
    }
    if adjustments.grayscale && flags.grayscale {
        grayscale(&mut image);
    }
    (image, offset)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Contrast {
    Stretching,
    HistogramEqualization,
    AdaptiveEqualization,
}

/// The static crop, in percent of the image (`x_min, y_min, x_max, y_max`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StaticCrop {
    pub x_min: f32,
    pub y_min: f32,
    pub x_max: f32,
    pub y_max: f32,
}

impl StaticCrop {
    /// Pixel rectangle `(x, y, w, h)`, as Roboflow computes it (`int(percent / 100 * size)`), at least 1x1.
    pub fn rect(&self, width: u32, height: u32) -> (u32, u32, u32, u32) {
        let at = |p: f32, size: u32| ((p.clamp(0.0, 100.0) / 100.0 * size as f32) as u32).min(size);
        let (x0, x1) = (at(self.x_min, width), at(self.x_max, width));
        let (y0, y1) = (at(self.y_min, height), at(self.y_max, height));
        let (x0, y0) = (x0.min(width - 1), y0.min(height - 1));
        (x0, y0, x1.saturating_sub(x0).max(1), y1.saturating_sub(y0).max(1))
    }
}

/// The adjustments a model's environment asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adjustments {
    /// `auto-orient` (on unless the environment turns it off): apply the EXIF orientation.
    pub auto_orient: bool,
    pub static_crop: Option<StaticCrop>,
    pub contrast: Option<Contrast>,
    pub grayscale: bool,
}

impl Default for Adjustments {
    fn default() -> Self {
        Adjustments { auto_orient: true, static_crop: None, contrast: None, grayscale: false }
    }
}

pub fn crop(image: &RgbImage, c: &StaticCrop) -> (RgbImage, (u32, u32)) {
    let (x, y, w, h) = c.rect(image.width(), image.height());
    (image::imageops::crop_imm(image, x, y, w, h).to_image(), (x, y))
}

/// OpenCV's fixed-point `BGR2GRAY`: `(4899 R + 9617 G + 1868 B + 2^13) >> 14`.
pub fn grayscale(image: &mut RgbImage) {
    for p in image.pixels_mut() {
        let [r, g, b] = p.0.map(u32::from);
        let v = ((4899 * r + 9617 * g + 1868 * b + (1 << 13)) >> 14) as u8;
        p.0 = [v, v, v];
    }
}

/// `np.percentile` with linear interpolation, on a 256-bin histogram of all values.
fn percentile(histogram: &[u64; 256], total: u64, q: f64) -> f64 {
    let rank = q / 100.0 * (total - 1) as f64;
    let value_at = |k: u64| -> f64 {
        let mut seen = 0;
        for (v, &n) in histogram.iter().enumerate() {
            seen += n;
            if seen > k {
                return v as f64;
            }
        }
        255.0
    };
    let (lo, hi) = (rank.floor() as u64, rank.ceil() as u64);
    value_at(lo) + (value_at(hi) - value_at(lo)) * (rank - lo as f64)
}

fn histogram(image: &RgbImage) -> ([u64; 256], u64) {
    let mut h = [0u64; 256];
    for &v in image.as_raw() {
        h[v as usize] += 1;
    }
    (h, image.as_raw().len() as u64)
}

pub fn contrast_stretch(image: &mut RgbImage) {
    let (h, total) = histogram(image);
    if total == 0 {
        return;
    }
    let (lo, hi) = (percentile(&h, total, 2.0), percentile(&h, total, 98.0));
    if hi <= lo {
        return;
    }
    for v in image.iter_mut() {
        *v = ((f64::from(*v).clamp(lo, hi) - lo) / (hi - lo) * 255.0) as u8;
    }
}

pub fn equalize_histogram(image: &mut RgbImage) {
    let (h, total) = histogram(image);
    if total == 0 {
        return;
    }
    let mut cdf = [0f64; 256];
    let mut running = 0u64;
    for (i, &n) in h.iter().enumerate() {
        running += n;
        cdf[i] = running as f64 / total as f64;
    }
    for v in image.iter_mut() {
        *v = (cdf[*v as usize] * 255.0) as u8;
    }
}

/// CLAHE on the HSV value channel; hue and saturation are kept by scaling RGB with the new value.
pub fn equalize_adaptive(image: &mut RgbImage) {
    let (w, h) = (image.width() as usize, image.height() as usize);
    if w == 0 || h == 0 {
        return;
    }
    let value: Vec<u8> = image.pixels().map(|p| p.0.into_iter().max().unwrap_or(0)).collect();
    let equalized = clahe(&value, w, h, 0.03);
    for (p, (&old, &new)) in image.pixels_mut().zip(value.iter().zip(&equalized)) {
        if old > 0 {
            let k = f32::from(new) / f32::from(old);
            p.0 = p.0.map(|c| (f32::from(c) * k).round().clamp(0.0, 255.0) as u8);
        } else {
            p.0 = [new, new, new];
        }
    }
}

/// Contrast-limited adaptive histogram equalisation with 8x8 tiles and bilinear blending of the
/// tiles' mappings; `clip` is the fraction of a tile's pixels any one bin may hold.
fn clahe(values: &[u8], w: usize, h: usize, clip: f64) -> Vec<u8> {
    const TILES: usize = 8;
    let (tw, th) = (w.div_ceil(TILES).max(1), h.div_ceil(TILES).max(1));
    let (nx, ny) = (w.div_ceil(tw), h.div_ceil(th));
    let mut maps = vec![[0u8; 256]; nx * ny];
    for ty in 0..ny {
        for tx in 0..nx {
            let mut hist = [0f64; 256];
            let mut count = 0f64;
            for y in ty * th..((ty + 1) * th).min(h) {
                for x in tx * tw..((tx + 1) * tw).min(w) {
                    hist[values[y * w + x] as usize] += 1.0;
                    count += 1.0;
                }
            }
            let limit = (clip * count).max(1.0);
            let excess: f64 = hist.iter().map(|&n| (n - limit).max(0.0)).sum();
            for n in hist.iter_mut() {
                *n = n.min(limit) + excess / 256.0;
            }
            let mut running = 0.0;
            for (v, n) in hist.iter().enumerate() {
                running += n;
                maps[ty * nx + tx][v] = (running / count * 255.0).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    let centre = |i: usize, size: usize, n: usize| -> (usize, usize, f64) {
        let f = ((i as f64 + 0.5) / size as f64 - 0.5).clamp(0.0, (n - 1) as f64);
        let a = f.floor() as usize;
        (a, (a + 1).min(n - 1), f - a as f64)
    };
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        let (y0, y1, fy) = centre(y, th, ny);
        for x in 0..w {
            let (x0, x1, fx) = centre(x, tw, nx);
            let v = values[y * w + x] as usize;
            let m = |tx: usize, ty: usize| f64::from(maps[ty * nx + tx][v]);
            let top = m(x0, y0) * (1.0 - fx) + m(x1, y0) * fx;
            let bottom = m(x0, y1) * (1.0 - fx) + m(x1, y1) * fx;
            out[y * w + x] = (top * (1.0 - fy) + bottom * fy).round() as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, _| {
            let v = (100 + x * 50 / w.max(1)) as u8;
            image::Rgb([v, v, v])
        })
    }

    #[test]
    fn static_crop_is_in_percent_and_truncates_like_roboflow() {
        let c = StaticCrop { x_min: 10.0, y_min: 25.0, x_max: 55.5, y_max: 100.0 };
        assert_eq!(c.rect(200, 100), (20, 25, 91, 75));
        let (img, offset) = crop(&ramp(200, 100), &c);
        assert_eq!((img.dimensions(), offset), ((91, 75), (20, 25)));
    }

    #[test]
    fn stretching_spreads_values_to_the_full_range() {
        let mut img = ramp(100, 4);
        contrast_stretch(&mut img);
        let (lo, hi) = img.as_raw().iter().fold((255, 0), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert_eq!((lo, hi), (0, 255));
    }

    #[test]
    fn histogram_equalisation_flattens_the_cdf() {
        let mut img = ramp(100, 4);
        equalize_histogram(&mut img);
        let max = *img.as_raw().iter().max().unwrap();
        assert_eq!(max, 255, "the top value maps to the full cdf");
        assert!(img.as_raw().windows(3).step_by(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn adaptive_equalisation_raises_local_contrast_and_keeps_grey_grey() {
        let mut img = ramp(64, 64);
        let before = img.clone();
        equalize_adaptive(&mut img);
        let spread = |i: &RgbImage| {
            let (lo, hi) = i.as_raw().iter().fold((255u8, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            hi - lo
        };
        assert!(spread(&img) > spread(&before), "{} vs {}", spread(&img), spread(&before));
        assert!(img.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
    }

    #[test]
    fn grayscale_uses_opencv_weights() {
        let mut img = RgbImage::from_pixel(1, 1, image::Rgb([255, 0, 0]));
        grayscale(&mut img);
        assert_eq!(img.get_pixel(0, 0).0, [76, 76, 76]);
    }
}
