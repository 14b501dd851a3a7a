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
    if src_w == 0 || src_h == 0 || dst_w == 0 || dst_h == 0 {
        return RgbImage::new(dst_w, dst_h);
    }
    let (s, row_len, out_len) = (src.as_raw(), src_w as usize * 3, dst_w as usize * 3);
    let source_row = |y: usize| &s[y * row_len..(y + 1) * row_len];
    let mut dst = vec![0u8; out_len * dst_h as usize];
    if src_w == 2 * dst_w && src_h == 2 * dst_h {
        // OpenCV switches an exact 2x linear shrink to its fast area path.
        for (y, out) in dst.chunks_exact_mut(out_len).enumerate() {
            halve_row([source_row(2 * y), source_row(2 * y + 1)], out);
        }
    } else {
        let xs = horizontal_taps(src_w, dst_w);
        // The two source rows' horizontal passes, reused while consecutive destination rows share them.
        let (mut upper, mut lower) = (vec![0i16; out_len], vec![0i16; out_len]);
        let mut held: Option<(usize, usize)> = None;
        for (out, &(sy, b0, b1)) in dst.chunks_exact_mut(out_len).zip(&axis_taps(src_h, dst_h)) {
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
            vertical(&upper, &lower, [b0 as i16, b1 as i16], out);
        }
    }
    RgbImage::from_raw(dst_w, dst_h, dst).unwrap_or_else(|| RgbImage::new(dst_w, dst_h))
}

/// Where one destination pixel's two source pixels lie in a row (`start..start + 6`, the left
/// pixel then the right one), and their fixed-point weights as 16-bit lanes `w0 w1 w0 w1 w0 w1 0 0`:
/// one per channel pair, laid out for a multiply-add.
#[derive(Clone, Copy)]
struct HorizontalTap {
    start: usize,
    weights: [i16; 8],
}

impl HorizontalTap {
    fn new(start: usize, w0: i32, w1: i32) -> HorizontalTap {
        let (w0, w1) = (w0 as i16, w1 as i16);
        HorizontalTap { start, weights: [w0, w1, w0, w1, w0, w1, 0, 0] }
    }

    /// Channel `c`: fixed-point (value * 2048) shifted right by 4 to fit 16 bits, which is where
    /// OpenCV's vertical pass shifts it.
    fn channel(&self, row: &[u8], c: usize) -> i16 {
        let pixel = |at: usize| i32::from(row.get(self.start + at).copied().unwrap_or(0));
        let [w0, w1] = [self.weights[0], self.weights[1]].map(i32::from);
        ((pixel(c) * w0 + pixel(c + 3) * w1) >> 4) as i16
    }
}

/// The horizontal taps of a `src_w` to `dst_w` row. A tap clamped at the right edge reads its
/// pixel as the right one of the pair before it (weights 0 and 2048: the same product), so that
/// every tap reads six adjacent bytes; a one-pixel row has no pair, and its taps read three.
fn horizontal_taps(src_w: u32, dst_w: u32) -> Vec<HorizontalTap> {
    let last = src_w as usize - 1;
    axis_taps(src_w, dst_w)
        .into_iter()
        .map(|(sx, w0, w1)| match sx {
            sx if sx < last => HorizontalTap::new(sx * 3, w0, w1),
            _ if last > 0 => HorizontalTap::new((last - 1) * 3, 0, w0 + w1),
            _ => HorizontalTap::new(0, w0 + w1, 0),
        })
        .collect()
}

/// The vectorised horizontal pass for this CPU: AVX2 where it has it (two taps a step), else SSE2.
/// Returns how many taps it did, from the first.
#[cfg(target_arch = "x86_64")]
fn horizontal_simd(rows: [&[u8]; 2], taps: &[HorizontalTap], outs: [Option<&mut [i16]>; 2]) -> usize {
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { avx2::horizontal(rows, taps, outs) }
    } else {
        sse2::horizontal(rows, taps, outs)
    }
}

/// The horizontal pass of one source row.
fn horizontal(row: &[u8], taps: &[HorizontalTap], out: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    let done = horizontal_simd([row, row], taps, [None, Some(&mut *out)]);
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (o, t) in out.chunks_exact_mut(3).zip(taps).skip(done) {
        (0..3).for_each(|c| o[c] = t.channel(row, c));
    }
}

/// [`horizontal`] of two rows at once: each tap is read once for both (a shrink past 2x shares no
/// source row between destination rows, so every destination row needs two fresh passes).
fn horizontal_pair(rows: [&[u8]; 2], taps: &[HorizontalTap], [upper, lower]: [&mut [i16]; 2]) {
    #[cfg(target_arch = "x86_64")]
    let done = horizontal_simd(rows, taps, [Some(&mut *upper), Some(&mut *lower)]);
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for ((o, p), t) in upper.chunks_exact_mut(3).zip(lower.chunks_exact_mut(3)).zip(taps).skip(done) {
        (0..3).for_each(|c| o[c] = t.channel(rows[0], c));
        (0..3).for_each(|c| p[c] = t.channel(rows[1], c));
    }
}

/// The passes in SSE2, which every x86-64 CPU has; the same integer arithmetic, so the same bytes.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    use super::HorizontalTap;

    /// The horizontal pass of up to two rows (a `None` output skips its row), tap by tap from the
    /// first while a tap's 8 source bytes and 4 output lanes exist; returns how many taps it did.
    /// Each tap pairs its pixels' channels (a0 b0 a1 b1 a2 b2) for one multiply-add into 32-bit
    /// sums, exact for 8-bit values and 11-bit weights, and stores 4 lanes, the last of which the
    /// next tap overwrites.
    pub(super) fn horizontal(rows: [&[u8]; 2], taps: &[HorizontalTap], mut outs: [Option<&mut [i16]>; 2]) -> usize {
        let mut done = 0;
        for (i, t) in taps.iter().enumerate() {
            let fits = |row: &[u8], out: &Option<&mut [i16]>| {
                t.start + 8 <= row.len() && out.as_ref().is_none_or(|o| 3 * i + 4 <= o.len())
            };
            if !(fits(rows[0], &outs[0]) && fits(rows[1], &outs[1])) {
                break;
            }
            for (row, out) in rows.iter().zip(outs.iter_mut()) {
                let Some(out) = out else { continue };
                let (source, lanes) = (&row[t.start..t.start + 8], &mut out[3 * i..3 * i + 4]);
                // SAFETY: SSE2 is part of x86-64 itself; the load reads the 8 bytes of `source`,
                // the weights' load its 8 lanes, and the store writes the 4 lanes of `lanes`.
                unsafe {
                    let pixels = _mm_unpacklo_epi8(_mm_loadl_epi64(source.as_ptr().cast()), _mm_setzero_si128());
                    let pairs = _mm_unpacklo_epi16(pixels, _mm_srli_si128::<6>(pixels));
                    let weights = _mm_loadu_si128(t.weights.as_ptr().cast());
                    let sums = _mm_srai_epi32::<4>(_mm_madd_epi16(pairs, weights));
                    _mm_storel_epi64(lanes.as_mut_ptr().cast(), _mm_packs_epi32(sums, sums));
                }
            }
            done += 1;
        }
        done
    }

    /// [`super::vertical`] over whole groups of 8 values; returns how many it wrote.
    pub(super) fn vertical(upper: &[i16], lower: &[i16], [b0, b1]: [i16; 2], out: &mut [u8]) -> usize {
        let groups = upper.chunks_exact(8).zip(lower.chunks_exact(8)).zip(out.chunks_exact_mut(8));
        let mut done = 0;
        for ((v0, v1), o) in groups {
            // SAFETY: SSE2 is part of x86-64 itself; each load reads one whole 8-value chunk.
            let bytes = unsafe {
                let (v0, v1) = (_mm_loadu_si128(v0.as_ptr().cast()), _mm_loadu_si128(v1.as_ptr().cast()));
                let t = _mm_add_epi16(_mm_mulhi_epi16(v0, _mm_set1_epi16(b0)), _mm_mulhi_epi16(v1, _mm_set1_epi16(b1)));
                let t = _mm_srai_epi16::<2>(_mm_add_epi16(t, _mm_set1_epi16(2)));
                _mm_cvtsi128_si64(_mm_packus_epi16(t, t))
            };
            o.copy_from_slice(&bytes.to_le_bytes());
            done += 8;
        }
        done
    }
}

/// The horizontal pass in AVX2: [`sse2::horizontal`]'s arithmetic on two taps at once, one in
/// each 128-bit half, with the pair's weights loaded once for both rows.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::HorizontalTap;

    /// As [`super::sse2::horizontal`], two taps a step while both taps' 8 source bytes and the
    /// second tap's 4 output lanes exist; returns how many taps it did (an even number).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn horizontal(
        rows: [&[u8]; 2],
        taps: &[HorizontalTap],
        mut outs: [Option<&mut [i16]>; 2],
    ) -> usize {
        let mut i = 0;
        while let [t0, t1, ..] = &taps[i..] {
            let fits = |row: &[u8], out: &Option<&mut [i16]>| {
                t0.start.max(t1.start) + 8 <= row.len() && out.as_ref().is_none_or(|o| 3 * (i + 1) + 4 <= o.len())
            };
            if !(fits(rows[0], &outs[0]) && fits(rows[1], &outs[1])) {
                break;
            }
            // SAFETY: AVX2 is the caller's promise; each weight load reads a tap's 8 lanes.
            let weights = unsafe {
                let (w0, w1) =
                    (_mm_loadu_si128(t0.weights.as_ptr().cast()), _mm_loadu_si128(t1.weights.as_ptr().cast()));
                _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(w0), w1)
            };
            for (row, out) in rows.iter().zip(outs.iter_mut()) {
                let Some(out) = out else { continue };
                let (first, second) = (&row[t0.start..t0.start + 8], &row[t1.start..t1.start + 8]);
                let lanes = &mut out[3 * i..3 * i + 7];
                // SAFETY: AVX2 is the caller's promise; the loads read the 8 bytes of `first` and
                // `second`, the stores write lanes 0..4 and then 3..7 of `lanes` (the second tap
                // overwrites the first's unused fourth lane, as the next tap does in SSE2).
                unsafe {
                    let (a, b) = (_mm_loadl_epi64(first.as_ptr().cast()), _mm_loadl_epi64(second.as_ptr().cast()));
                    let both = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(a), b);
                    let pixels = _mm256_unpacklo_epi8(both, _mm256_setzero_si256());
                    let pairs = _mm256_unpacklo_epi16(pixels, _mm256_srli_si256::<6>(pixels));
                    let sums = _mm256_srai_epi32::<4>(_mm256_madd_epi16(pairs, weights));
                    let packed = _mm256_packs_epi32(sums, sums);
                    _mm_storel_epi64(lanes.as_mut_ptr().cast(), _mm256_castsi256_si128(packed));
                    _mm_storel_epi64(lanes[3..].as_mut_ptr().cast(), _mm256_extracti128_si256::<1>(packed));
                }
            }
            i += 2;
        }
        i
    }
}

/// OpenCV's VResizeLinearVec_32s8u: 16-bit high multiplies, then a rounding shift by 2.
fn vertical(upper: &[i16], lower: &[i16], [b0, b1]: [i16; 2], out: &mut [u8]) {
    let high = |a: i16, b: i16| ((i32::from(a) * i32::from(b)) >> 16) as i16;
    let pixel = |v0: i16, v1: i16| ((high(b0, v0) + high(b1, v1) + 2) >> 2).clamp(0, 255) as u8;
    #[cfg(target_arch = "x86_64")]
    let done = sse2::vertical(upper, lower, [b0, b1], out);
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (o, (&v0, &v1)) in out.iter_mut().zip(upper.iter().zip(lower)).skip(done) {
        *o = pixel(v0, v1);
    }
}

/// One row of OpenCV's exact 2x area shrink: each destination pixel the rounded mean of four.
fn halve_row([upper, lower]: [&[u8]; 2], out: &mut [u8]) {
    for (o, (a, b)) in out.chunks_exact_mut(3).zip(upper.chunks_exact(6).zip(lower.chunks_exact(6))) {
        for c in 0..3 {
            let sum = u16::from(a[c]) + u16::from(a[c + 3]) + u16::from(b[c]) + u16::from(b[c + 3]);
            o[c] = ((sum + 2) >> 2) as u8;
        }
    }
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

    /// OpenCV's fixed-point arithmetic written plainly (32-bit intermediates, one tap at a time):
    /// the SSE2 passes and the edge taps must give exactly its bytes.
    fn plain_resize(src: &RgbImage, dst_w: u32, dst_h: u32) -> RgbImage {
        let (xs, ys) = (axis_taps(src.width(), dst_w), axis_taps(src.height(), dst_h));
        let (last_x, last_y) = (src.width() - 1, src.height() - 1);
        RgbImage::from_fn(dst_w, dst_h, |x, y| {
            let ((sx, w0, w1), (sy, b0, b1)) = (xs[x as usize], ys[y as usize]);
            let row = |yy: u32, c: usize| {
                let at = |xx: u32| i32::from(src.get_pixel(xx, yy).0[c]);
                at(sx as u32) * w0 + at((sx as u32 + 1).min(last_x)) * w1
            };
            image::Rgb(std::array::from_fn(|c| {
                let (v0, v1) = (row(sy as u32, c), row((sy as u32 + 1).min(last_y), c));
                let t = ((b0 * (v0 >> 4)) >> 16) + ((b1 * (v1 >> 4)) >> 16);
                ((t + 2) >> 2).clamp(0, 255) as u8
            }))
        })
    }

    #[test]
    fn gives_the_bytes_of_plain_fixed_point_arithmetic() {
        let mut seed = 0x2545f4914f6cdd1d_u64;
        let mut next = |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % u64::from(n)) as u32
        };
        let mut sizes =
            vec![(1, 1, 5, 7), (1, 5, 1, 9), (2, 3, 1, 1), (640, 480, 256, 192), (3, 1, 9, 1), (9, 4, 5, 4)];
        sizes.extend((0..150).map(|_| (1 + next(300), 1 + next(300), 1 + next(200), 1 + next(200))));
        for (sw, sh, dw, dh) in sizes {
            if (sw, sh) == (2 * dw, 2 * dh) || (sw, sh) == (dw, dh) {
                continue;
            }
            let img = RgbImage::from_fn(sw, sh, |_, _| image::Rgb([next(256) as u8, next(256) as u8, next(256) as u8]));
            assert_eq!(resize_bilinear(&img, dw, dh), plain_resize(&img, dw, dh), "{sw}x{sh} -> {dw}x{dh}");
        }
    }

    /// Both vectorised horizontal passes give, tap for tap, the scalar arithmetic's values.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_sse2_and_avx2_horizontal_passes_give_the_scalar_values() {
        for (src_w, dst_w) in [(640u32, 256u32), (641, 256), (333, 500), (7, 3), (2, 5)] {
            let row: Vec<u8> = (0..src_w as usize * 3).map(|i| (i * 37 % 251) as u8).collect();
            let other: Vec<u8> = row.iter().map(|v| v.wrapping_mul(3)).collect();
            let taps = horizontal_taps(src_w, dst_w);
            let scalar =
                |row: &[u8]| -> Vec<i16> { taps.iter().flat_map(|t| (0..3).map(|c| t.channel(row, c))).collect() };
            let mut passes: Vec<(&str, usize, [Vec<i16>; 2])> = Vec::new();
            let (mut a, mut b) = (vec![0i16; dst_w as usize * 3], vec![0i16; dst_w as usize * 3]);
            let done = sse2::horizontal([&row, &other], &taps, [Some(&mut a), Some(&mut b)]);
            passes.push(("sse2", done, [a, b]));
            if std::arch::is_x86_feature_detected!("avx2") {
                let (mut a, mut b) = (vec![0i16; dst_w as usize * 3], vec![0i16; dst_w as usize * 3]);
                // SAFETY: the CPU has AVX2, checked just above.
                let done = unsafe { avx2::horizontal([&row, &other], &taps, [Some(&mut a), Some(&mut b)]) };
                passes.push(("avx2", done, [a, b]));
            }
            for (name, done, [a, b]) in passes {
                // Only the taps whose 8 bytes run past the row's end are left to the scalar code.
                if src_w >= 64 {
                    assert!(done + 4 >= taps.len(), "{name} {src_w}->{dst_w}: did {done} of {}", taps.len());
                }
                assert_eq!(&a[..3 * done], &scalar(&row)[..3 * done], "{name} {src_w}->{dst_w}");
                assert_eq!(&b[..3 * done], &scalar(&other)[..3 * done], "{name} {src_w}->{dst_w}");
            }
        }
    }

    #[test]
    fn an_exact_halving_averages_as_opencv_does() {
        let plane = ndarray::array![[0.0f32, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]];
        assert_eq!(resize_float(plane.view(), 2, 1), ndarray::array![[2.5f32, 4.5]]);
    }
}
