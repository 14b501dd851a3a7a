//! Cutting a text quad out of the image as an upright rectangle: a perspective warp with bicubic
//! sampling and replicated borders (rapidocr's `get_rotate_crop_image`), turned 90° when tall.

use image::RgbImage;

use super::db_postprocess::Quad;

/// Solves the 8 unknowns of the homography taking `from[i]` to `to[i]`.
fn homography(from: &Quad, to: &Quad) -> Option<[f64; 9]> {
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let (x, y) = (f64::from(from[i][0]), f64::from(from[i][1]));
        let (u, v) = (f64::from(to[i][0]), f64::from(to[i][1]));
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    // Gaussian elimination with partial pivoting on the 8x9 augmented matrix.
    for col in 0..8 {
        let pivot = (col..8).max_by(|&r, &s| a[r][col].abs().total_cmp(&a[s][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col];
        for (row, r) in a.iter_mut().enumerate() {
            if row != col {
                let f = r[col] / pivot_row[col];
                for (v, p) in r.iter_mut().zip(pivot_row.iter()).skip(col) {
                    *v -= f * p;
                }
            }
        }
    }
    let h: Vec<f64> = (0..8).map(|i| a[i][8] / a[i][i]).collect();
    Some([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], 1.0])
}

/// OpenCV's bicubic kernel (a = -0.75).
fn cubic(x: f64) -> f64 {
    let a = -0.75;
    let x = x.abs();
    if x <= 1.0 {
        (a + 2.0) * x.powi(3) - (a + 3.0) * x.powi(2) + 1.0
    } else if x < 2.0 {
        a * x.powi(3) - 5.0 * a * x.powi(2) + 8.0 * a * x - 4.0 * a
    } else {
        0.0
    }
}

fn sample(image: &RgbImage, x: f64, y: f64) -> [u8; 3] {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let mut acc = [0f64; 3];
    for j in -1..=2i64 {
        let wy = cubic(fy - j as f64);
        let sy = (y0 as i64 + j).clamp(0, h - 1) as u32;
        for i in -1..=2i64 {
            let wx = cubic(fx - i as f64);
            let sx = (x0 as i64 + i).clamp(0, w - 1) as u32;
            let p = image.get_pixel(sx, sy).0;
            for c in 0..3 {
                acc[c] += wx * wy * f64::from(p[c]);
            }
        }
    }
    acc.map(|v| v.round().clamp(0.0, 255.0) as u8)
}

/// The quad as an upright `width x height` crop (sides as rapidocr measures them).
pub fn crop_quad(image: &RgbImage, quad: &Quad) -> Option<RgbImage> {
    let side = |a: [f32; 2], b: [f32; 2]| f64::from(((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt());
    let w = side(quad[0], quad[1]).max(side(quad[2], quad[3])) as u32;
    let h = side(quad[0], quad[3]).max(side(quad[1], quad[2])) as u32;
    if w == 0 || h == 0 {
        return None;
    }
    let target: Quad = [[0.0, 0.0], [w as f32, 0.0], [w as f32, h as f32], [0.0, h as f32]];
    // Maps crop pixels back to the image.
    let m = homography(&target, quad)?;
    let crop = RgbImage::from_fn(w, h, |x, y| {
        let (x, y) = (f64::from(x), f64::from(y));
        let d = m[6] * x + m[7] * y + m[8];
        let (sx, sy) = ((m[0] * x + m[1] * y + m[2]) / d, (m[3] * x + m[4] * y + m[5]) / d);
        image::Rgb(sample(image, sx, sy))
    });
    // Tall crops are vertical text: np.rot90 (counter-clockwise).
    Some(if f64::from(h) / f64::from(w) >= 1.5 { image::imageops::rotate270(&crop) } else { crop })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_axis_aligned_integer_quad_is_an_exact_copy() {
        let image = RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, (x + y) as u8]));
        let quad = [[5.0, 4.0], [25.0, 4.0], [25.0, 14.0], [5.0, 14.0]];
        let crop = crop_quad(&image, &quad).unwrap();
        assert_eq!(crop.dimensions(), (20, 10));
        assert_eq!(crop.get_pixel(0, 0), image.get_pixel(5, 4));
        assert_eq!(crop.get_pixel(19, 9), image.get_pixel(24, 13));
    }

    #[test]
    fn a_tall_crop_is_turned_and_a_degenerate_quad_gives_none() {
        let image = RgbImage::new(40, 40);
        let tall = [[0.0, 0.0], [10.0, 0.0], [10.0, 30.0], [0.0, 30.0]];
        assert_eq!(crop_quad(&image, &tall).unwrap().dimensions(), (30, 10));
        assert!(crop_quad(&image, &[[1.0, 1.0]; 4]).is_none());
    }
}
