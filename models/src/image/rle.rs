//! COCO run-length encoding of a binary mask, in pycocotools' compressed string form.

use sightline_core::CocoRle;

/// Runs over the column-major (Fortran order) mask, starting with a run of zeros (possibly empty).
pub fn runs_column_major(width: usize, height: usize, on: impl Fn(usize, usize) -> bool) -> Vec<u64> {
    let mut runs = Vec::new();
    let (mut current, mut length) = (false, 0u64);
    for x in 0..width {
        for y in 0..height {
            let v = on(x, y);
            if v != current {
                runs.push(length);
                current = v;
                length = 0;
            }
            length += 1;
        }
    }
    runs.push(length);
    runs
}

/// pycocotools' `rleToString`: each count (after the second, as a difference to the count two
/// before) in 5-bit groups with a continuation bit, offset by 48.
pub fn encode_counts(runs: &[u64]) -> String {
    let mut out = String::new();
    for (i, &run) in runs.iter().enumerate() {
        let mut x = run as i64;
        if i > 2 {
            x -= runs[i - 2] as i64;
        }
        loop {
            let mut c = (x & 0x1f) as u8;
            x >>= 5;
            let more = if c & 0x10 != 0 { x != -1 } else { x != 0 };
            if more {
                c |= 0x20;
            }
            out.push(char::from(c + 48));
            if !more {
                break;
            }
        }
    }
    out
}

pub fn coco_rle(width: usize, height: usize, on: impl Fn(usize, usize) -> bool) -> CocoRle {
    CocoRle { size: [height as u32, width as u32], counts: encode_counts(&runs_column_major(width, height, on)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pycocotools() {
        // pycocotools.mask.encode(np.asfortranarray(m)) for m = [[0,1,1],[0,1,0]] gives b"231":
        // column-major 0,0,1,1,1,0 is runs [2, 3, 1], one character each.
        let m = [[0, 1, 1], [0, 1, 0]];
        let rle = coco_rle(3, 2, |x, y| m[y][x] == 1);
        assert_eq!(rle.size, [2, 3]);
        assert_eq!(runs_column_major(3, 2, |x, y| m[y][x] == 1), [2, 3, 1]);
        assert_eq!(rle.counts, "231");
        // Large and decreasing counts: several characters, differences to the count two before
        // (pycocotools 2.0 on one-column masks with these runs: b"0T3" and b"5:d0I").
        assert_eq!(encode_counts(&[0, 100]), "0T3");
        assert_eq!(encode_counts(&[5, 10, 20, 3]), "5:d0I");
    }
}
