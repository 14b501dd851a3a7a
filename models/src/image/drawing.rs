//! `visualize_predictions`: the predictions drawn onto the image in class colours, as a JPEG.
//!
//! Colours come from the model's `COLORS` (class name → `#RRGGBB`), else a fixed palette starting
//! at Roboflow's `#4892EA`, indexed by class id. Labels use DejaVu Sans Bold (shipped in `assets/fonts`).

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::OnceLock;

use ab_glyph::{FontRef, PxScale};
use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_circle_mut, draw_filled_rect_mut, draw_hollow_rect_mut, draw_line_segment_mut, draw_text_mut, text_size,
};
use imageproc::rect::Rect;
use sightline_core::{ClassScore, Detection, VisualizeParams};

use crate::ModelError;

const PALETTE: [[u8; 3]; 9] = [
    [0x48, 0x92, 0xEA],
    [0x00, 0xEE, 0xC3],
    [0xFE, 0x4E, 0xF0],
    [0xF4, 0x00, 0x4E],
    [0xFA, 0x72, 0x00],
    [0xEE, 0xEE, 0x17],
    [0x90, 0xFF, 0x00],
    [0x78, 0xC1, 0xD2],
    [0x8C, 0x29, 0xFF],
];

const JPEG_QUALITY: u8 = 90;
const FONT_BYTES: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");

fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok()).as_ref()
}

/// `#RRGGBB` (or `RRGGBB`) to a colour.
fn parse_hex(s: &str) -> Option<Rgb<u8>> {
    let h = s.trim().trim_start_matches('#');
    if h.len() != 6 {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(h.get(i..i + 2)?, 16).ok();
    Some(Rgb([byte(0)?, byte(2)?, byte(4)?]))
}

/// One colour per class id.
pub fn class_colors(class_names: &[String], colors: &HashMap<String, String>) -> Vec<Rgb<u8>> {
    class_names
        .iter()
        .enumerate()
        .map(|(i, name)| colors.get(name).and_then(|c| parse_hex(c)).unwrap_or(Rgb(PALETTE[i % PALETTE.len()])))
        .collect()
}

/// Black or white, whichever reads better on `background`.
fn text_color(background: Rgb<u8>) -> Rgb<u8> {
    let [r, g, b] = background.0.map(f32::from);
    if 0.299 * r + 0.587 * g + 0.114 * b > 140.0 {
        Rgb([0, 0, 0])
    } else {
        Rgb([255, 255, 255])
    }
}

/// A filled label box with the text, its top-left at `(x, y)` moved inside the image.
fn label(image: &mut RgbImage, x: i32, y: i32, text: &str, color: Rgb<u8>) {
    let Some(font) = font() else { return };
    let scale = PxScale::from((image.height().min(image.width()) as f32 / 40.0).clamp(11.0, 28.0));
    let (tw, th) = text_size(scale, font, text);
    let (w, h) = (tw as i32 + 4, th as i32 + 4);
    let x = x.clamp(0, (image.width() as i32 - w).max(0));
    let y = (y - h).max(0).min((image.height() as i32 - h).max(0));
    draw_filled_rect_mut(image, Rect::at(x, y).of_size(w as u32, h as u32), color);
    draw_text_mut(image, text_color(color), x + 2, y + 1, scale, font, text);
}

fn thick_line(image: &mut RgbImage, a: (f32, f32), b: (f32, f32), width: u32, color: Rgb<u8>) {
    let half = width as f32 / 2.0;
    let steps = width.max(1);
    for i in 0..steps {
        let o = i as f32 - half + 0.5;
        draw_line_segment_mut(image, (a.0 + o, a.1), (b.0 + o, b.1), color);
        draw_line_segment_mut(image, (a.0, a.1 + o), (b.0, b.1 + o), color);
    }
}

/// Boxes, mask outlines, keypoints and (optionally) labels.
pub fn draw_detections(image: &mut RgbImage, detections: &[Detection], colors: &[Rgb<u8>], params: &VisualizeParams) {
    let stroke = params.stroke_width.max(1);
    for d in detections {
        let color = colors.get(d.class_id).copied().unwrap_or(Rgb(PALETTE[0]));
        if let Some(mask) = &d.mask {
            let points = &mask.polygon;
            for (i, p) in points.iter().enumerate() {
                let q = points[(i + 1) % points.len()];
                thick_line(image, (p[0], p[1]), (q[0], q[1]), stroke, color);
            }
        }
        let (x, y) = (d.x1.round() as i32, d.y1.round() as i32);
        let (w, h) = ((d.x2 - d.x1).round().max(1.0) as u32, (d.y2 - d.y1).round().max(1.0) as u32);
        for i in 0..stroke {
            let (i, i2) = (i as i32, 2 * i);
            if w > i2 && h > i2 {
                draw_hollow_rect_mut(image, Rect::at(x + i, y + i).of_size(w - i2, h - i2), color);
            }
        }
        for k in &d.keypoints {
            draw_filled_circle_mut(image, (k.x.round() as i32, k.y.round() as i32), (stroke as i32 + 2).max(3), color);
        }
        if params.labels {
            label(image, x, y, &format!("{} {:.2}", d.class_name, d.confidence), color);
        }
    }
}

/// The top class (single-label) or the predicted classes (multi-label), top-left.
pub fn draw_classification(image: &mut RgbImage, shown: &[ClassScore], colors: &[Rgb<u8>]) {
    let mut y = 0;
    for s in shown {
        let color = colors.get(s.class_id).copied().unwrap_or(Rgb(PALETTE[0]));
        let text = format!("{} {:.2}", s.class_name, s.confidence);
        let scale = (image.height().min(image.width()) as f32 / 40.0).clamp(11.0, 28.0) as i32 + 4;
        label(image, 0, y + scale, &text, color);
        y += scale;
    }
}

pub fn encode_jpeg(image: &RgbImage) -> Result<Vec<u8>, ModelError> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(Cursor::new(&mut out), JPEG_QUALITY)
        .encode_image(image)
        .map_err(|e| ModelError::Inference(format!("encoding the visualization: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection() -> Detection {
        Detection {
            x1: 10.0,
            y1: 10.0,
            x2: 50.0,
            y2: 40.0,
            confidence: 0.9,
            class_id: 1,
            class_name: "square".into(),
            keypoints: vec![],
            mask: None,
        }
    }

    #[test]
    fn colours_come_from_the_model_then_the_palette() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let colors = class_colors(&names, &HashMap::from([("b".to_owned(), "#102030".to_owned())]));
        assert_eq!(colors, [Rgb([0x48, 0x92, 0xEA]), Rgb([0x10, 0x20, 0x30])]);
        assert_eq!(parse_hex("zz0000"), None);
    }

    #[test]
    fn draws_the_box_in_the_class_colour_with_the_stroke_width() {
        let mut image = RgbImage::new(64, 64);
        let colors = [Rgb([255, 0, 0]), Rgb([0, 255, 0])];
        draw_detections(&mut image, &[detection()], &colors, &VisualizeParams { stroke_width: 2, labels: false });
        assert_eq!(image.get_pixel(10, 20).0, [0, 255, 0], "left edge");
        assert_eq!(image.get_pixel(11, 20).0, [0, 255, 0], "second pixel of a 2-wide stroke");
        assert_eq!(image.get_pixel(12, 20).0, [0, 0, 0], "inside stays untouched");
        assert_eq!(image.get_pixel(30, 39).0, [0, 255, 0], "bottom edge");
    }

    #[test]
    fn labels_are_drawn_and_the_result_is_a_jpeg() {
        let mut plain = RgbImage::new(200, 100);
        let mut labelled = plain.clone();
        let colors = [Rgb([255, 0, 0]), Rgb([0, 0, 255])];
        draw_detections(&mut plain, &[detection()], &colors, &VisualizeParams { stroke_width: 1, labels: false });
        draw_detections(&mut labelled, &[detection()], &colors, &VisualizeParams { stroke_width: 1, labels: true });
        assert_ne!(plain, labelled);
        let jpeg = encode_jpeg(&labelled).unwrap();
        assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF]);
    }
}
