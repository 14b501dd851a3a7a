//! Where an RF-DETR output maps back to, with the arithmetic of Roboflow's postprocessing
//! (`RFDETRObjectDetection.postprocess`), which differs from its preprocessing's letterbox.

use crate::image::letterbox::{Placement, ResizeMode};

/// Where the output maps back to: the letterbox as the postprocessing computes it (its padding is
/// a half pixel, unlike the preprocessing's floor), and the crop in the frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub orig_w: u32,
    pub orig_h: u32,
    pub input_w: u32,
    pub input_h: u32,
    pub crop_x: u32,
    pub crop_y: u32,
    pub frame_w: u32,
    pub frame_h: u32,
    pub letterbox: Option<Fit>,
}

#[derive(Debug, Clone, Copy)]
pub struct Fit {
    pub scale: f64,
    pub scaled_w: u32,
    pub scaled_h: u32,
    pub pad_x: f64,
    pub pad_y: f64,
}

impl Frame {
    pub fn of(placement: &Placement, mode: ResizeMode, input_w: u32, input_h: u32) -> Frame {
        let (w, h) = (f64::from(placement.orig_w), f64::from(placement.orig_h));
        let letterbox = matches!(mode, ResizeMode::Letterbox { .. }).then(|| {
            let scale = (f64::from(input_w) / w).min(f64::from(input_h) / h);
            let (scaled_w, scaled_h) = ((w * scale) as u32, (h * scale) as u32);
            Fit {
                scale,
                scaled_w,
                scaled_h,
                pad_x: f64::from(input_w - scaled_w.min(input_w)) / 2.0,
                pad_y: f64::from(input_h - scaled_h.min(input_h)) / 2.0,
            }
        });
        Frame {
            orig_w: placement.orig_w,
            orig_h: placement.orig_h,
            input_w,
            input_h,
            crop_x: placement.crop_x,
            crop_y: placement.crop_y,
            frame_w: placement.frame_w,
            frame_h: placement.frame_h,
            letterbox,
        }
    }

    /// A normalised `cx, cy, w, h` box in frame pixels, clipped to the (cropped) image.
    pub(super) fn box_to_frame(&self, b: [f32; 4]) -> [f32; 4] {
        let corners = [b[0] - 0.5 * b[2], b[1] - 0.5 * b[3], b[0] + 0.5 * b[2], b[1] + 0.5 * b[3]];
        let (w, h) = (self.orig_w as f32, self.orig_h as f32);
        let mapped = match self.letterbox {
            None => [corners[0] * w, corners[1] * h, corners[2] * w, corners[3] * h],
            Some(fit) => {
                let (iw, ih) = (self.input_w as f32, self.input_h as f32);
                let (px, py, scale) = (fit.pad_x as f32, fit.pad_y as f32, fit.scale as f32);
                [
                    (corners[0] * iw - px) / scale,
                    (corners[1] * ih - py) / scale,
                    (corners[2] * iw - px) / scale,
                    (corners[3] * ih - py) / scale,
                ]
            }
        };
        let (cx, cy) = (self.crop_x as f32, self.crop_y as f32);
        [
            mapped[0].clamp(0.0, w) + cx,
            mapped[1].clamp(0.0, h) + cy,
            mapped[2].clamp(0.0, w) + cx,
            mapped[3].clamp(0.0, h) + cy,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_map_back_with_the_postprocessing_arithmetic() {
        let stretch =
            Frame::of(&Placement::roboflow(ResizeMode::Stretch, 640, 480, 256, 256), ResizeMode::Stretch, 256, 256);
        assert!(stretch.letterbox.is_none());
        assert_eq!(stretch.box_to_frame([0.5, 0.5, 0.5, 0.5]), [160.0, 120.0, 480.0, 360.0]);
        assert_eq!(stretch.box_to_frame([0.0, 0.0, 0.5, 0.5]), [0.0, 0.0, 160.0, 120.0], "clipped");
        // 300x500 into 256: scale 0.512, content 153 wide, the postprocessing's padding 51.5 (not 51).
        let black = ResizeMode::Letterbox { pad: 0 };
        let fit = Frame::of(&Placement::roboflow(black, 300, 500, 256, 256), black, 256, 256);
        let f = fit.letterbox.unwrap();
        assert_eq!((f.scaled_w, f.scaled_h, f.pad_x, f.pad_y), (153, 256, 51.5, 0.0));
        let b = fit.box_to_frame([0.5, 0.5, 0.25, 0.25]);
        let expected = [(96.0 - 51.5) / 0.512, 96.0 / 0.512, (160.0 - 51.5) / 0.512, 160.0 / 0.512];
        for (a, e) in b.iter().zip(expected) {
            assert!((a - e).abs() < 1e-3, "{b:?} vs {expected:?}");
        }
    }
}
