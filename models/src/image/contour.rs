//! The polygon of a mask: one external contour, compressed like OpenCV's
//! `findContours(RETR_EXTERNAL, CHAIN_APPROX_SIMPLE)`; which one each reference pipeline keeps.

use image::GrayImage;
use imageproc::contours::{find_contours, BorderType};
use imageproc::point::Point;

/// Twice the signed area of a closed polygon (shoelace).
fn doubled_area(points: &[Point<i32>]) -> i64 {
    let n = points.len();
    (0..n)
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % n]);
            i64::from(a.x) * i64::from(b.y) - i64::from(b.x) * i64::from(a.y)
        })
        .sum()
}

/// Keeps only the points where the chain changes direction (straight horizontal, vertical and
/// diagonal runs collapse to their end points), as `CHAIN_APPROX_SIMPLE` does.
pub fn approx_simple(points: &[Point<i32>]) -> Vec<Point<i32>> {
    let n = points.len();
    if n < 3 {
        return points.to_vec();
    }
    let direction = |a: Point<i32>, b: Point<i32>| ((b.x - a.x).signum(), (b.y - a.y).signum());
    (0..n)
        .filter(|&i| {
            let (prev, here, next) = (points[(i + n - 1) % n], points[i], points[(i + 1) % n]);
            direction(prev, here) != direction(here, next)
        })
        .map(|i| points[i])
        .collect()
}

/// The outer borders of the non-zero regions of `mask` that are not inside another region, each
/// compressed, as pixel indices `(column, row)`.
fn external_contours(mask: &GrayImage) -> Vec<Vec<Point<i32>>> {
    // imageproc skips regions touching the image edge; a ring of background keeps them.
    let mut padded = GrayImage::new(mask.width() + 2, mask.height() + 2);
    image::imageops::replace(&mut padded, mask, 1, 1);
    find_contours::<i32>(&padded)
        .into_iter()
        .filter(|c| c.border_type == BorderType::Outer && c.parent.is_none())
        .map(|c| approx_simple(&c.points).into_iter().map(|p| Point::new(p.x - 1, p.y - 1)).collect())
        .collect()
}

/// The largest (by area, then by length) external contour of `mask`, as ultralytics keeps it;
/// empty when the mask is empty.
pub fn largest_external_contour(mask: &GrayImage) -> Vec<Point<i32>> {
    external_contours(mask).into_iter().max_by_key(|p| (doubled_area(p).abs(), p.len())).unwrap_or_default()
}

/// The external contour of `mask` with the most points after compression (the first of equals), as
/// Roboflow's `mask2poly` keeps it for RF-DETR; empty when the mask is empty.
pub fn external_contour_with_most_points(mask: &GrayImage) -> Vec<Point<i32>> {
    external_contours(mask).into_iter().fold(Vec::new(), |best, c| if c.len() > best.len() { c } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(w: u32, h: u32, on: impl Fn(u32, u32) -> bool) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| image::Luma([if on(x, y) { 255 } else { 0 }]))
    }

    fn sorted(mut p: Vec<Point<i32>>) -> Vec<(i32, i32)> {
        p.sort_by_key(|p| (p.y, p.x));
        p.into_iter().map(|p| (p.x, p.y)).collect()
    }

    #[test]
    fn a_rectangle_compresses_to_its_four_corners() {
        let m = mask(10, 8, |x, y| (2..=6).contains(&x) && (1..=4).contains(&y));
        assert_eq!(sorted(largest_external_contour(&m)), [(2, 1), (6, 1), (2, 4), (6, 4)]);
    }

    #[test]
    fn the_largest_region_wins_and_holes_are_ignored() {
        // A 3x3 blob and a 6x6 ring (with a hole): the ring's outer border is returned.
        let m = mask(20, 20, |x, y| {
            let small = (1..=3).contains(&x) && (1..=3).contains(&y);
            let ring =
                (8..=13).contains(&x) && (8..=13).contains(&y) && !((10..=11).contains(&x) && (10..=11).contains(&y));
            small || ring
        });
        assert_eq!(sorted(largest_external_contour(&m)), [(8, 8), (13, 8), (8, 13), (13, 13)]);
    }

    #[test]
    fn regions_touching_the_image_edge_are_traced() {
        let m = mask(4, 3, |_, _| true);
        assert_eq!(sorted(largest_external_contour(&m)), [(0, 0), (3, 0), (0, 2), (3, 2)]);
    }

    #[test]
    fn diagonal_runs_collapse_and_empty_masks_give_nothing() {
        // A filled right triangle: corners only.
        let m = mask(8, 8, |x, y| x <= y && y <= 5);
        assert_eq!(sorted(largest_external_contour(&m)), [(0, 0), (0, 5), (5, 5)]);
        assert!(largest_external_contour(&mask(4, 4, |_, _| false)).is_empty());
    }

    #[test]
    fn the_contour_with_most_points_can_differ_from_the_largest() {
        // A big rectangle (4 corners) and a small staircase (more corners): mask2poly keeps the staircase.
        let m = mask(30, 12, |x, y| {
            let rectangle = (1..=12).contains(&x) && (1..=10).contains(&y);
            let stairs = (16..=22).contains(&x) && (1..=5).contains(&y) && (x - 16) / 2 <= (y - 1);
            rectangle || stairs
        });
        assert_eq!(largest_external_contour(&m).len(), 4);
        let most = external_contour_with_most_points(&m);
        assert!(most.len() > 4 && most.iter().all(|p| p.x >= 16), "{most:?}");
        assert!(external_contour_with_most_points(&mask(4, 4, |_, _| false)).is_empty());
    }
}
