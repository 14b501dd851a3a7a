//! Bilinear resize with OpenCV `INTER_LINEAR` semantics for 8-bit RGB.
//!
//! Half-pixel centres, edge clamping, no antialiasing when shrinking, and OpenCV's 11-bit fixed-point
//! weights with the rounding of its x86 SIMD path. The shipped models were trained, and the reference
//! outputs made, on `cv2.resize`; an antialiasing resizer shifts boxes and scores measurably.

use std::ops::Range;

use image::RgbImage;
use ndarray::{Array2, ArrayView2};

const COEF_BITS: u32 = 11;
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;

/// Source index and fraction towards the next source sample, for destination coordinate `d`.
fn tap(src_len: u32, dst_len: u32, d: u32) -> (usize, f32) {
    let scale = 1.0 / (f64::from(dst_len) / f64::from(src_len));
    let f = ((f64::from(d) + 0.5) * scale - 0.5) as f32;
    let mut s = f.floor();
    let mut frac = f - s;
    if s < 0.0 {
        frac = 0.0;
        s = 0.0;
    }
    if s >= (src_len - 1) as f32 {
        frac = 0.0;
        s = (src_len - 1) as f32;
    }
    (s as usize, frac)
}

/// Source index and the two fixed-point weights for every destination coordinate along one axis.
fn axis_taps(src_len: u32, dst_len: u32) -> Vec<(usize, i32, i32)> {
    (0..dst_len)
        .map(|d| {
            let (s, frac) = tap(src_len, dst_len, d);
            let w0 = ((1.0 - frac) * COEF_SCALE).round_ties_even() as i32;
            let w1 = (frac * COEF_SCALE).round_ties_even() as i32;
            (s, w0, w1)
        })
        .collect()
}

/// `cv2.resize(plane, (dst_w, dst_h), interpolation=cv2.INTER_LINEAR)` on a float plane, computed
/// only for destination `rows` x `cols` (the rest stays 0).
pub fn resize_plane(
    src: ArrayView2<'_, f32>,
    dst_w: usize,
    dst_h: usize,
    rows: Range<usize>,
    cols: Range<usize>,
) -> Array2<f32> {
    let (rows, cols) = (rows.start.min(dst_h)..rows.end.min(dst_h), cols.start.min(dst_w)..cols.end.min(dst_w));
    let window = Window { values: src, origin: (0, 0), size: src.dim() };
    let part = resize_window(window, dst_w, dst_h, rows.clone(), cols.clone());
    if part.dim() == (dst_h, dst_w) {
        return part;
    }
    let mut dst = Array2::<f32>::zeros((dst_h, dst_w));
    dst.slice_mut(ndarray::s![rows, cols]).assign(&part);
    dst
}

/// Part of a float plane: its `values` are the plane's rows and columns from `origin` on, of a
/// whole plane of `size` (rows, columns).
#[derive(Clone, Copy)]
pub struct Window<'a> {
    pub values: ArrayView2<'a, f32>,
    pub origin: (usize, usize),
    pub size: (usize, usize),
}

/// The source rows (or columns) of a `src_len` axis that destination `range` of a `dst_len` axis
/// reads: what a [`Window`] must hold for [`resize_window`] to compute that range.
pub fn source_span(src_len: usize, dst_len: usize, range: Range<usize>) -> Range<usize> {
    if range.is_empty() || src_len == 0 {
        return 0..0;
    }
    let (first, _) = tap(src_len as u32, dst_len as u32, range.start as u32);
    let (last, _) = tap(src_len as u32, dst_len as u32, (range.end - 1) as u32);
    first..(last + 2).min(src_len)
}

/// [`resize_plane`] of the whole plane `src` is part of, for destination `rows` x `cols` only, as
/// an array of just those pixels: each is computed as the whole resize would compute it.
pub fn resize_window(
    src: Window<'_>,
    dst_w: usize,
    dst_h: usize,
    rows: Range<usize>,
    cols: Range<usize>,
) -> Array2<f32> {
    let (src_h, src_w) = src.size;
    let mut dst = Array2::<f32>::zeros((rows.len(), cols.len()));
    if src_h == 0 || src_w == 0 || src.values.is_empty() {
        return dst;
    }
    let (oy, ox) = src.origin;
    let xs: Vec<(usize, usize, f32)> = cols
        .clone()
        .map(|x| {
            let (sx, fx) = tap(src_w as u32, dst_w as u32, x as u32);
            (sx.wrapping_sub(ox), (sx + 1).min(src_w - 1).wrapping_sub(ox), fx)
        })
        .collect();
    // Rows as plain slices: a window cut out of a larger plane is copied once to get them.
    let values = src.values.as_standard_layout();
    let (Some(flat), width) = (values.as_slice(), values.ncols()) else { return dst };
    let row = |y: usize| flat.get(y.checked_mul(width)?..y.checked_add(1)?.checked_mul(width)?);
    for (out, y) in dst.rows_mut().into_iter().zip(rows) {
        let (sy, fy) = tap(src_h as u32, dst_h as u32, y as u32);
        let sy1 = (sy + 1).min(src_h - 1);
        let (Some(upper), Some(lower)) = (row(sy.wrapping_sub(oy)), row(sy1.wrapping_sub(oy))) else {
            continue;
        };
        for (o, &(x0, x1, fx)) in out.into_iter().zip(&xs) {
            let (Some(&a), Some(&b), Some(&c), Some(&d)) = (upper.get(x0), upper.get(x1), lower.get(x0), lower.get(x1))
            else {
                continue;
            };
            let top = a * (1.0 - fx) + b * fx;
            let bottom = c * (1.0 - fx) + d * fx;
            *o = top * (1.0 - fy) + bottom * fy;
        }
    }
    dst
}

/// `cv2.resize(plane, (w, h))` on floats: bilinear, or the 2x2 average OpenCV switches to for an
/// exact halving.
pub fn resize_float(plane: ArrayView2<'_, f32>, w: usize, h: usize) -> Array2<f32> {
    let (src_h, src_w) = plane.dim();
    if (src_w, src_h) == (w, h) {
        return plane.to_owned();
    }
    if src_w == 2 * w && src_h == 2 * h {
        return Array2::from_shape_fn((h, w), |(y, x)| {
            let p = |dx: usize, dy: usize| plane[[2 * y + dy, 2 * x + dx]];
            (p(0, 0) + p(1, 0) + p(0, 1) + p(1, 1)) * 0.25
        });
    }
    resize_plane(plane, w, h, 0..h, 0..w)
}

/// Resizes `src` to `dst_w x dst_h` as `cv2.resize(src, (dst_w, dst_h), interpolation=cv2.INTER_LINEAR)` does.
pub fn resize_bilinear(src: &RgbImage, dst_w: u32, dst_h: u32) -> RgbImage {
    let (src_w, src_h) = src.dimensions();
    if (src_w, src_h) == (dst_w, dst_h) {
        return src.clone();
    }
    if src_w == 2 * dst_w && src_h == 2 * dst_h {
        // OpenCV switches an exact 2x linear shrink to its fast area path.
        return halve(src);
    }
    let last_x = src_w as usize - 1;
    let xs: Vec<HorizontalTap> = axis_taps(src_w, dst_w)
        .into_iter()
        .map(|(sx, w0, w1)| HorizontalTap { left: sx * 3, right: (sx + 1).min(last_x) * 3, w0, w1 })
        .collect();
    let ys = axis_taps(src_h, dst_h);
    let (s, row_len, out_len) = (src.as_raw(), src_w as usize * 3, dst_w as usize * 3);
    let source_row = |y: usize| &s[y * row_len..(y + 1) * row_len];
    // The two source rows' horizontal passes, reused while consecutive destination rows share them.
    let (mut upper, mut lower) = (vec![0i32; out_len], vec![0i32; out_len]);
    let mut held: Option<(usize, usize)> = None;
    let mut dst = vec![0u8; out_len * dst_h as usize];
    for (out, &(sy, b0, b1)) in dst.chunks_exact_mut(out_len).zip(&ys) {
        let y1 = (sy + 1).min(src_h as usize - 1);
        match held {
            Some(rows) if rows == (sy, y1) => {}
            Some((_, below)) if below == sy => {
                std::mem::swap(&mut upper, &mut lower);
                horizontal(source_row(y1), &xs, &mut lower);
            }
            _ => horizontal_pair([source_row(sy), source_row(y1)], &xs, [&mut upper, &mut lower]),
        }
        held = Some((sy, y1));
        for (o, (&v0, &v1)) in out.iter_mut().zip(upper.iter().zip(&lower)) {
            // OpenCV's VResizeLinearVec_32s8u: 16-bit high multiplies, then a rounding shift by 2.
            let t = ((b0 * (v0 >> 4)) >> 16) + ((b1 * (v1 >> 4)) >> 16);
            *o = ((t + 2) >> 2).clamp(0, 255) as u8;
        }
    }
    RgbImage::from_raw(dst_w, dst_h, dst).unwrap_or_else(|| RgbImage::new(dst_w, dst_h))
}

/// Where one destination pixel's two source pixels start in a row, and their fixed-point weights.
#[derive(Clone, Copy)]
struct HorizontalTap {
    left: usize,
    right: usize,
    w0: i32,
    w1: i32,
}

/// The horizontal pass of one source row into fixed-point intermediates (value * 2048).
fn horizontal(row: &[u8], taps: &[HorizontalTap], out: &mut [i32]) {
    for (o, t) in out.chunks_exact_mut(3).zip(taps) {
        let (a, b) = (&row[t.left..t.left + 3], &row[t.right..t.right + 3]);
        for c in 0..3 {
            o[c] = i32::from(a[c]) * t.w0 + i32::from(b[c]) * t.w1;
        }
    }
}

/// [`horizontal`] of two rows at once: each tap is read once for both (a shrink past 2x shares no
/// source row between destination rows, so every destination row needs two fresh passes).
fn horizontal_pair(rows: [&[u8]; 2], taps: &[HorizontalTap], [upper, lower]: [&mut [i32]; 2]) {
    for ((o, p), t) in upper.chunks_exact_mut(3).zip(lower.chunks_exact_mut(3)).zip(taps) {
        let (a, b) = (&rows[0][t.left..t.left + 3], &rows[0][t.right..t.right + 3]);
        let (c, d) = (&rows[1][t.left..t.left + 3], &rows[1][t.right..t.right + 3]);
        for k in 0..3 {
            o[k] = i32::from(a[k]) * t.w0 + i32::from(b[k]) * t.w1;
            p[k] = i32::from(c[k]) * t.w0 + i32::from(d[k]) * t.w1;
        }
    }
}

fn halve(src: &RgbImage) -> RgbImage {
    let (w, h) = (src.width() / 2, src.height() / 2);
    RgbImage::from_fn(w, h, |x, y| {
        let p = |dx: u32, dy: u32| src.get_pixel(2 * x + dx, 2 * y + dy).0;
        let (a, b, c, d) = (p(0, 0), p(1, 0), p(0, 1), p(1, 1));
        image::Rgb(std::array::from_fn(|i| {
            ((u32::from(a[i]) + u32::from(b[i]) + u32::from(c[i]) + u32::from(d[i]) + 2) >> 2) as u8
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let v = f(x, y);
            image::Rgb([v, v, v])
        })
    }

    #[test]
    fn same_size_is_identity() {
        let img = gray(7, 5, |x, y| (x * 30 + y) as u8);
        assert_eq!(resize_bilinear(&img, 7, 5), img);
    }

    #[test]
    fn upscale_1d_matches_opencv() {
        // cv2.resize(np.array([[0, 100]], np.uint8), (4, 1), interpolation=cv2.INTER_LINEAR) == [[0, 25, 75, 100]]
        let img = gray(2, 1, |x, _| if x == 0 { 0 } else { 100 });
        let out = resize_bilinear(&img, 4, 1);
        let row: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        assert_eq!(row, [0, 25, 75, 100]);
    }

    #[test]
    fn shrink_does_not_antialias() {
        // 4 -> 2 is the exact-2x area path (pairs averaged); 6 -> 2 samples at 1.0 and 4.0:
        // source centres, so the pixels between are ignored (no antialiasing).
        let img = gray(6, 1, |x, _| [10, 200, 30, 40, 250, 60][x as usize]);
        let row: Vec<u8> = resize_bilinear(&img, 2, 1).pixels().map(|p| p.0[0]).collect();
        assert_eq!(row, [200, 250]);
        let img = gray(4, 2, |x, _| [0, 100, 200, 255][x as usize]);
        let row: Vec<u8> = resize_bilinear(&img, 2, 1).pixels().map(|p| p.0[0]).collect();
        assert_eq!(row, [50, 228]);
    }

    #[test]
    fn float_plane_resize_matches_opencv_and_can_skip_regions() {
        // cv2.resize(np.array([[0, 1]], np.float32), (4, 1)) == [[0, 0.25, 0.75, 1]]
        let src = ndarray::array![[0.0f32, 1.0]];
        let out = resize_plane(src.view(), 4, 1, 0..1, 0..4);
        assert_eq!(out.row(0).to_vec(), [0.0, 0.25, 0.75, 1.0]);
        let part = resize_plane(src.view(), 4, 1, 0..1, 1..3);
        assert_eq!(part.row(0).to_vec(), [0.0, 0.25, 0.75, 0.0]);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = gray(640, 480, |_, _| 114);
        let out = resize_bilinear(&img, 256, 192);
        assert!(out.pixels().all(|p| p.0 == [114, 114, 114]));
    }

    #[test]
    fn a_window_of_its_source_span_gives_the_whole_resize_pixels() {
        let src = Array2::from_shape_fn((37, 53), |(y, x)| ((y * 31 + x * 17) % 23) as f32 - 11.0);
        let whole = resize_plane(src.view(), 160, 120, 0..120, 0..160);
        for (rows, cols) in [(0..120, 0..160), (10..47, 90..91), (119..120, 0..3), (5..5, 3..9)] {
            let (ys, xs) = (source_span(37, 120, rows.clone()), source_span(53, 160, cols.clone()));
            let part = src.slice(ndarray::s![ys.clone(), xs.clone()]);
            let window = Window { values: part, origin: (ys.start, xs.start), size: (37, 53) };
            let got = resize_window(window, 160, 120, rows.clone(), cols.clone());
            assert_eq!(got, whole.slice(ndarray::s![rows, cols]));
        }
    }

    #[test]
    fn an_exact_halving_averages_as_opencv_does() {
        let plane = ndarray::array![[0.0f32, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]];
        assert_eq!(resize_float(plane.view(), 2, 1), ndarray::array![[2.5f32, 4.5]]);
    }
}
