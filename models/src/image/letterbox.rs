//! Where the original image lands inside the model input, and the way back.
//!
//! The maths is ultralytics' letterbox as the reference pipeline ran it: Python's `round` (ties to
//! even) on the scaled size, and `round(d - 0.1)` for the top/left padding.

/// How an image is fitted to the model input (Roboflow's `resize.format`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResizeMode {
    /// "Stretch to": straight to the input size, aspect ratio lost.
    Stretch,
    /// "Fit (grey|black|white edges) in": keep aspect ratio, centre, pad with this value.
    Letterbox { pad: u8 },
}

/// The placement of an `orig_w x orig_h` image inside the model input. With a static crop, the
/// "original" is the crop, which sits at `(crop_x, crop_y)` in a `frame_w x frame_h` frame: results
/// are mapped back to that frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub orig_w: u32,
    pub orig_h: u32,
    pub crop_x: u32,
    pub crop_y: u32,
    pub frame_w: u32,
    pub frame_h: u32,
    /// Size of the resized image content inside the input.
    pub new_w: u32,
    pub new_h: u32,
    /// Offset of the content from the input's top-left corner.
    pub left: u32,
    pub top: u32,
}

impl Placement {
    pub fn new(mode: ResizeMode, orig_w: u32, orig_h: u32, in_w: u32, in_h: u32) -> Placement {
        match mode {
            ResizeMode::Stretch => Self::uncropped(orig_w, orig_h, in_w, in_h, 0, 0),
            ResizeMode::Letterbox { .. } => Self::letterbox(orig_w, orig_h, in_w, in_h),
        }
    }

    fn letterbox(orig_w: u32, orig_h: u32, in_w: u32, in_h: u32) -> Placement {
        let r = (f64::from(in_h) / f64::from(orig_h)).min(f64::from(in_w) / f64::from(orig_w));
        let fit = |len: u32, limit: u32| ((f64::from(len) * r).round_ties_even().max(1.0) as u32).min(limit);
        let new_w = fit(orig_w, in_w);
        let new_h = fit(orig_h, in_h);
        let pad = |free: u32| (f64::from(free) / 2.0 - 0.1).round_ties_even().max(0.0) as u32;
        Self::uncropped(orig_w, orig_h, new_w, new_h, pad(in_w - new_w), pad(in_h - new_h))
    }

    /// The placement Roboflow's `letterbox_image` gives (its RF-DETR pipeline): the constrained side
    /// fills the input, the other is truncated (`int(...)`), the top/left padding is the floor of
    /// half the free space.
    pub fn roboflow(mode: ResizeMode, orig_w: u32, orig_h: u32, in_w: u32, in_h: u32) -> Placement {
        if mode == ResizeMode::Stretch {
            return Self::uncropped(orig_w, orig_h, in_w, in_h, 0, 0);
        }
        let image_ratio = f64::from(orig_w) / f64::from(orig_h);
        let (new_w, new_h) = if image_ratio >= f64::from(in_w) / f64::from(in_h) {
            (in_w, (f64::from(in_w) / image_ratio) as u32)
        } else {
            ((f64::from(in_h) * image_ratio) as u32, in_h)
        };
        let (new_w, new_h) = (new_w.clamp(1, in_w), new_h.clamp(1, in_h));
        Self::uncropped(orig_w, orig_h, new_w, new_h, (in_w - new_w) / 2, (in_h - new_h) / 2)
    }

    fn uncropped(orig_w: u32, orig_h: u32, new_w: u32, new_h: u32, left: u32, top: u32) -> Placement {
        Placement { orig_w, orig_h, crop_x: 0, crop_y: 0, frame_w: orig_w, frame_h: orig_h, new_w, new_h, left, top }
    }

    /// The same placement for an image that was cropped at `(x, y)` out of a `frame_w x frame_h` frame.
    pub fn within_frame(self, x: u32, y: u32, frame_w: u32, frame_h: u32) -> Placement {
        Placement { crop_x: x, crop_y: y, frame_w, frame_h, ..self }
    }

    /// Clamps a frame point into the cropped region.
    pub fn clip(&self, x: f32, y: f32) -> (f32, f32) {
        let (x0, y0) = (self.crop_x as f32, self.crop_y as f32);
        (x.clamp(x0, x0 + self.orig_w as f32), y.clamp(y0, y0 + self.orig_h as f32))
    }

    /// Maps a point in model-input pixels back to the frame (unclipped).
    pub fn to_original(&self, x: f32, y: f32) -> (f32, f32) {
        let sx = self.orig_w as f32 / self.new_w as f32;
        let sy = self.orig_h as f32 / self.new_h as f32;
        ((x - self.left as f32) * sx + self.crop_x as f32, (y - self.top as f32) * sy + self.crop_y as f32)
    }

    /// Maps a box in model-input pixels back to the frame, clipped to the (cropped) image.
    pub fn box_to_original(&self, [x1, y1, x2, y2]: [f32; 4]) -> [f32; 4] {
        let (a, b) = self.to_original(x1, y1);
        let (c, d) = self.to_original(x2, y2);
        let ((a, b), (c, d)) = (self.clip(a, b), self.clip(c, d));
        [a, b, c, d]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREY: ResizeMode = ResizeMode::Letterbox { pad: 114 };

    #[test]
    fn letterbox_matches_the_reference_placements() {
        // resized_wh and pad_ltrb recorded in the reference outputs for these fixture images.
        let p = Placement::new(GREY, 640, 480, 256, 256);
        assert_eq!((p.new_w, p.new_h, p.left, p.top), (256, 192, 0, 32));
        let p = Placement::new(GREY, 300, 500, 256, 256);
        assert_eq!((p.new_w, p.new_h, p.left, p.top), (154, 256, 51, 0));
        let p = Placement::new(GREY, 1920, 1080, 256, 256);
        assert_eq!((p.new_w, p.new_h, p.left, p.top), (256, 144, 0, 56));
        let p = Placement::new(GREY, 256, 256, 256, 256);
        assert_eq!((p.new_w, p.new_h, p.left, p.top), (256, 256, 0, 0));
    }

    #[test]
    fn odd_padding_rounds_down_on_the_top_left() {
        // 1x3 into 4x4: r = 4/3, new 1x4, 3 free columns: left = round(1.5 - 0.1) = 1, right 2.
        let p = Placement::new(GREY, 1, 3, 4, 4);
        assert_eq!((p.new_w, p.new_h, p.left, p.top), (1, 4, 1, 0));
    }

    #[test]
    fn roboflow_letterbox_truncates_and_floors() {
        let p = Placement::roboflow(GREY, 640, 480, 256, 256);
        assert_eq!((p.new_w, p.new_h, p.left, p.top), (256, 192, 0, 32));
        // 300x500: 256 * 0.6 = 153.6 truncates to 153 (ultralytics rounds to 154); (256 - 153) // 2 = 51.
        let p = Placement::roboflow(GREY, 300, 500, 256, 256);
        assert_eq!((p.new_w, p.new_h, p.left, p.top), (153, 256, 51, 0));
        let p = Placement::roboflow(ResizeMode::Stretch, 300, 500, 256, 256);
        assert_eq!((p.new_w, p.new_h, p.left, p.top), (256, 256, 0, 0));
    }

    #[test]
    fn tiny_images_keep_at_least_one_pixel() {
        let p = Placement::new(GREY, 10_000, 1, 256, 256);
        assert_eq!((p.new_w, p.new_h), (256, 1));
    }

    #[test]
    fn back_mapping_inverts_the_placement_and_clips() {
        let p = Placement::new(GREY, 640, 480, 256, 256);
        assert_eq!(p.to_original(0.0, 32.0), (0.0, 0.0));
        assert_eq!(p.to_original(256.0, 224.0), (640.0, 480.0));
        assert_eq!(p.to_original(128.0, 128.0), (320.0, 240.0));
        assert_eq!(p.box_to_original([-10.0, 0.0, 300.0, 250.0]), [0.0, 0.0, 640.0, 480.0]);
        let s = Placement::new(ResizeMode::Stretch, 512, 128, 256, 256);
        assert_eq!(s.to_original(128.0, 128.0), (256.0, 64.0));
    }

    #[test]
    fn a_static_crop_offsets_and_clips_to_the_crop() {
        // A 100x50 crop at (20, 10) of a 200x100 frame, stretched to 50x50.
        let p = Placement::new(ResizeMode::Stretch, 100, 50, 50, 50).within_frame(20, 10, 200, 100);
        assert_eq!(p.to_original(25.0, 25.0), (70.0, 35.0));
        assert_eq!(p.box_to_original([-5.0, -5.0, 60.0, 60.0]), [20.0, 10.0, 120.0, 60.0]);
    }
}
