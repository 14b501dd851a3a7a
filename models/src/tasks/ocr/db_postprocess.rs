//! DB (differentiable binarisation) post-processing: text boxes from the detector's probability
//! map, as rapidocr's `DBPostProcess` (thresh 0.3, box_thresh 0.5, unclip_ratio 1.6, 2x2 dilation,
//! score_mode fast, min_size 3).

use image::GrayImage;
use imageproc::contours::find_contours;
use imageproc::geometry::convex_hull;
use imageproc::point::Point;
use ndarray::ArrayView2;

pub const THRESH: f32 = 0.3;
pub const BOX_THRESH: f32 = 0.5;
pub const UNCLIP_RATIO: f32 = 1.6;
const MIN_SIZE: f32 = 3.0;
const MAX_CANDIDATES: usize = 1000;

/// A quadrilateral, corners top-left, top-right, bottom-right, bottom-left.
pub type Quad = [[f32; 2]; 4];

/// Minimum-area rectangle (rotating calipers over the convex hull): its corners and its sides.
pub fn min_area_rect(points: &[[f32; 2]]) -> ([[f32; 2]; 4], f32, f32) {
    let hull: Vec<Point<f64>> =
        convex_hull(points.iter().map(|p| Point::new(f64::from(p[0]), f64::from(p[1]))).collect::<Vec<_>>());
    if hull.len() < 2 {
        let p = points.first().copied().unwrap_or([0.0, 0.0]);
        return ([p; 4], 0.0, 0.0);
    }
    let mut best: Option<(f64, [[f64; 2]; 4], f64, f64)> = None;
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        let len = (dx * dx + dy * dy).sqrt();
        if len == 0.0 {
            continue;
        }
        let (ux, uy) = (dx / len, dy / len);
        let (vx, vy) = (-uy, ux);
        let (mut u0, mut u1, mut v0, mut v1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in &hull {
            let (u, v) = (p.x * ux + p.y * uy, p.x * vx + p.y * vy);
            (u0, u1, v0, v1) = (u0.min(u), u1.max(u), v0.min(v), v1.max(v));
        }
        let area = (u1 - u0) * (v1 - v0);
        if best.as_ref().is_none_or(|b| area < b.0) {
            let corner = |u: f64, v: f64| [u * ux + v * vx, u * uy + v * vy];
            best = Some((area, [corner(u0, v0), corner(u1, v0), corner(u1, v1), corner(u0, v1)], u1 - u0, v1 - v0));
        }
    }
    match best {
        Some((_, c, w, h)) => (c.map(|p| [p[0] as f32, p[1] as f32]), w as f32, h as f32),
        None => ([[hull[0].x as f32, hull[0].y as f32]; 4], 0.0, 0.0),
    }
}

/// rapidocr's `get_mini_boxes`: the minimum-area rectangle, ordered top-left, top-right,
/// bottom-right, bottom-left, and its shorter side.
pub fn mini_box(points: &[[f32; 2]]) -> (Quad, f32) {
    let (corners, w, h) = min_area_rect(points);
    let mut p = corners.to_vec();
    p.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let (i1, i4) = if p[1][1] > p[0][1] { (0, 1) } else { (1, 0) };
    let (i2, i3) = if p[3][1] > p[2][1] { (2, 3) } else { (3, 2) };
    ([p[i1], p[i2], p[i3], p[i4]], w.min(h))
}

/// Mean probability inside the quad (pixels whose centre the quad covers, within its bounding box).
fn box_score(pred: ArrayView2<'_, f32>, quad: &Quad) -> f32 {
    let (h, w) = pred.dim();
    let xs = quad.iter().map(|p| p[0]);
    let ys = quad.iter().map(|p| p[1]);
    let clampi = |v: f32, hi: usize| (v as i64).clamp(0, hi as i64 - 1) as usize;
    let x0 = clampi(xs.clone().fold(f32::MAX, f32::min).floor(), w);
    let x1 = clampi(xs.fold(f32::MIN, f32::max).ceil(), w);
    let y0 = clampi(ys.clone().fold(f32::MAX, f32::min).floor(), h);
    let y1 = clampi(ys.fold(f32::MIN, f32::max).ceil(), h);
    let inside = |x: f32, y: f32| {
        let mut sign = 0.0f32;
        for i in 0..4 {
            let (a, b) = (quad[i], quad[(i + 1) % 4]);
            let cross = (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]);
            if cross.abs() < 1e-6 {
                continue;
            }
            if sign == 0.0 {
                sign = cross.signum();
            } else if cross.signum() != sign {
                return false;
            }
        }
        true
    };
    let (mut sum, mut n) = (0.0f64, 0u64);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if inside(x as f32, y as f32) {
                sum += f64::from(pred[[y, x]]);
                n += 1;
            }
        }
    }
    if n == 0 {
        0.0
    } else {
        (sum / n as f64) as f32
    }
}

/// Grows a rectangle by `area * ratio / perimeter` on every side (what pyclipper's round offset
/// followed by a minimum-area rectangle amounts to for a rectangle).
fn unclip(quad: &Quad) -> Quad {
    let side = |a: [f32; 2], b: [f32; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    let (w, h) = (side(quad[0], quad[1]), side(quad[1], quad[2]));
    if w == 0.0 || h == 0.0 {
        return *quad;
    }
    let d = w * h * UNCLIP_RATIO / (2.0 * (w + h));
    let u = [(quad[1][0] - quad[0][0]) / w, (quad[1][1] - quad[0][1]) / w];
    let v = [(quad[3][0] - quad[0][0]) / h, (quad[3][1] - quad[0][1]) / h];
    let shift =
        |p: [f32; 2], su: f32, sv: f32| [p[0] + d * (su * u[0] + sv * v[0]), p[1] + d * (su * u[1] + sv * v[1])];
    [shift(quad[0], -1.0, -1.0), shift(quad[1], 1.0, -1.0), shift(quad[2], 1.0, 1.0), shift(quad[3], -1.0, 1.0)]
}

/// Text quads in the frame of a `dest_w x dest_h` image, from the `(h, w)` probability map.
pub fn text_boxes(pred: ArrayView2<'_, f32>, dest_w: u32, dest_h: u32) -> Vec<(Quad, f32)> {
    let (h, w) = pred.dim();
    // Threshold, then a 2x2 dilation (each pixel ORs itself with its right, lower and lower-right neighbours'
    // left/up counterparts, as cv2.dilate with a 2x2 kernel anchored at its centre (1, 1)).
    let on = |x: usize, y: usize| pred[[y, x]] > THRESH;
    let bitmap = GrayImage::from_fn(w as u32, h as u32, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let hit =
            on(x, y) || (x > 0 && on(x - 1, y)) || (y > 0 && on(x, y - 1)) || (x > 0 && y > 0 && on(x - 1, y - 1));
        image::Luma([if hit { 255 } else { 0 }])
    });
    let mut padded = GrayImage::new(w as u32 + 2, h as u32 + 2);
    image::imageops::replace(&mut padded, &bitmap, 1, 1);
    let mut boxes = Vec::new();
    for contour in find_contours::<i32>(&padded).into_iter().take(MAX_CANDIDATES) {
        let points: Vec<[f32; 2]> = contour.points.iter().map(|p| [(p.x - 1) as f32, (p.y - 1) as f32]).collect();
        let (quad, short) = mini_box(&points);
        if short < MIN_SIZE {
            continue;
        }
        let score = box_score(pred, &quad);
        if score < BOX_THRESH {
            continue;
        }
        let (grown, short) = mini_box(&unclip(&quad));
        if short < MIN_SIZE + 2.0 {
            continue;
        }
        let scaled = grown.map(|[x, y]| {
            [
                (x / w as f32 * dest_w as f32).round().clamp(0.0, dest_w as f32),
                (y / h as f32 * dest_h as f32).round().clamp(0.0, dest_h as f32),
            ]
        });
        boxes.push((scaled, score));
    }
    boxes
}

/// rapidocr's `order_points_clockwise` + clip + "both sides over 3 px" filter, then reading order:
/// by top-left (y, x), neighbours whose top-left y differ by under 10 px left to right.
pub fn order_and_filter(boxes: Vec<(Quad, f32)>, width: u32, height: u32) -> Vec<(Quad, f32)> {
    let mut kept: Vec<(Quad, f32)> = boxes
        .into_iter()
        .filter_map(|(q, s)| {
            let sum = |p: &[f32; 2]| p[0] + p[1];
            let diff = |p: &[f32; 2]| p[1] - p[0];
            let tl = *q.iter().min_by(|a, b| sum(a).total_cmp(&sum(b)))?;
            let br = *q.iter().max_by(|a, b| sum(a).total_cmp(&sum(b)))?;
            let rest: Vec<[f32; 2]> = q.iter().copied().filter(|p| *p != tl && *p != br).collect();
            let (tr, bl) = match rest.as_slice() {
                [a, b] if diff(a) <= diff(b) => (*a, *b),
                [a, b] => (*b, *a),
                _ => return None,
            };
            let clip = |p: [f32; 2]| [p[0].clamp(0.0, (width - 1) as f32), p[1].clamp(0.0, (height - 1) as f32)];
            let quad = [clip(tl), clip(tr), clip(br), clip(bl)];
            let side = |a: [f32; 2], b: [f32; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt() as i32;
            (side(quad[0], quad[1]) > 3 && side(quad[0], quad[3]) > 3).then_some((quad, s))
        })
        .collect();
    kept.sort_by(|a, b| {
        (a.0[0][1], a.0[0][0]).partial_cmp(&(b.0[0][1], b.0[0][0])).unwrap_or(std::cmp::Ordering::Equal)
    });
    for i in 0..kept.len().saturating_sub(1) {
        for j in (0..=i).rev() {
            if (kept[j + 1].0[0][1] - kept[j].0[0][1]).abs() < 10.0 && kept[j + 1].0[0][0] < kept[j].0[0][0] {
                kept.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn min_area_rect_of_a_rotated_square() {
        let diamond = [[5.0, 0.0], [10.0, 5.0], [5.0, 10.0], [0.0, 5.0]];
        let (_, w, h) = min_area_rect(&diamond);
        assert!((w - 50f32.sqrt()).abs() < 1e-4 && (h - 50f32.sqrt()).abs() < 1e-4, "{w} {h}");
        let (quad, short) = mini_box(&[[1.0, 2.0], [9.0, 2.0], [9.0, 5.0], [1.0, 5.0], [4.0, 3.0]]);
        assert_eq!(quad, [[1.0, 2.0], [9.0, 2.0], [9.0, 5.0], [1.0, 5.0]]);
        assert_eq!(short, 3.0);
    }

    #[test]
    fn finds_a_text_line_and_grows_it_by_the_unclip_distance() {
        // A 40x10 blob of probability 0.9 at (20..60, 10..20) in a 100x40 map; image twice the size.
        let mut pred = Array2::<f32>::zeros((40, 100));
        pred.slice_mut(ndarray::s![10..20, 20..60]).fill(0.9);
        let boxes = order_and_filter(text_boxes(pred.view(), 200, 80), 200, 80);
        assert_eq!(boxes.len(), 1);
        let (q, score) = boxes[0];
        // The dilated region is one pixel wider and taller than the 0.9 blob: 0.9 * 40*10 / (41*11).
        assert!((score - 0.9 * 400.0 / 451.0).abs() < 1e-3, "{score}");
        // Contour 20..=60 x 10..=20 after dilation (41x11 px); d = 41*11*1.6/(2*52) ≈ 6.94.
        let expect = [[2.0 * (20.0 - 6.94), 2.0 * (10.0 - 6.94)], [2.0 * (60.0 + 6.94), 2.0 * (20.0 + 6.94)]];
        assert!((q[0][0] - expect[0][0]).abs() <= 1.0 && (q[0][1] - expect[0][1]).abs() <= 1.0, "{q:?}");
        assert!((q[2][0] - expect[1][0]).abs() <= 1.0 && (q[2][1] - expect[1][1]).abs() <= 1.0, "{q:?}");
    }

    #[test]
    fn reading_order_is_top_to_bottom_then_left_to_right() {
        let quad = |x: f32, y: f32| [[x, y], [x + 20.0, y], [x + 20.0, y + 8.0], [x, y + 8.0]];
        let boxes = vec![(quad(50.0, 52.0), 0.9), (quad(10.0, 100.0), 0.9), (quad(5.0, 55.0), 0.9)];
        let order: Vec<f32> = order_and_filter(boxes, 200, 200).iter().map(|b| b.0[0][0]).collect();
        assert_eq!(order, [5.0, 50.0, 10.0]);
    }
}
