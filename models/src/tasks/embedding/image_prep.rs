//! An image into an embedding model's input, as the model's reference pipeline builds it: OpenAI
//! CLIP's transform (Roboflow's CLIP) or the transforms fastembed reads from a Hugging Face
//! `preprocessor_config.json`. Both resize with Pillow (see `crate::image::pillow`), crop the
//! centre and normalise; they differ in where the crop's odd pixel goes and in how bytes become
//! floats, and the differences are kept so each matches its own reference.

use image::RgbImage;
use ndarray::Array4;
use serde_json::Value;

use crate::image::pillow::{self, Filter};

/// How the image is resized before the crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resize {
    /// The shorter side to this many pixels, the longer in proportion (truncated).
    ShortestEdge(u32),
    /// To exactly this size.
    Exact { width: u32, height: u32 },
}

/// Where the centre crop starts when the margin is odd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CropOrigin {
    /// torchvision's `CenterCrop`: half the margin rounded half to even.
    RoundHalfEven,
    /// Hugging Face's and fastembed's: half the margin, floored (zero padding where the image is smaller).
    Floor,
    /// Jina CLIP's pad to square: a larger side cropped as torchvision does (half the margin,
    /// rounded half to even), the result placed top-left on a canvas of the fill colour.
    PadTopLeft,
}

/// How 8-bit values become floats before the mean and standard deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scaling {
    /// torchvision's `ToTensor`: `x / 255` in f32.
    ToTensor,
    /// fastembed's `Rescale`: `x * factor` in f64, then f32.
    Rescale(f64),
    /// The bytes as they are.
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImagePrep {
    pub resize: Option<Resize>,
    pub filter: Filter,
    /// `(width, height)` of the centre crop.
    pub crop: Option<(u32, u32)>,
    pub crop_origin: CropOrigin,
    /// The colour of the padding, where the crop window reaches past the image.
    pub fill: [u8; 3],
    pub scaling: Scaling,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

// As OpenAI's CLIP writes them.
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

impl ImagePrep {
    /// OpenAI CLIP's `_transform(resolution)`, which Roboflow's CLIP applies.
    pub fn openai_clip(resolution: u32) -> ImagePrep {
        ImagePrep {
            resize: Some(Resize::ShortestEdge(resolution)),
            filter: Filter::Bicubic,
            crop: Some((resolution, resolution)),
            crop_origin: CropOrigin::RoundHalfEven,
            fill: [0; 3],
            scaling: Scaling::ToTensor,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }

    /// The transforms fastembed builds from `preprocessor_config.json` (`CLIPImageProcessor`,
    /// `SiglipImageProcessor`, `ConvNextFeatureExtractor`, `JinaCLIPImageProcessor`); the error
    /// names the field it cannot use.
    pub fn from_preprocessor_config(config: &Value) -> Result<ImagePrep, String> {
        let kind = config.get("image_processor_type").and_then(Value::as_str).unwrap_or("CLIPImageProcessor");
        let filter = filter_of(config)?;
        let (mut crop_origin, mut fill) = (CropOrigin::Floor, [0; 3]);
        let (resize, crop) = match kind {
            "CLIPImageProcessor" | "SiglipImageProcessor" => (clip_resize(config)?, clip_crop(config)?),
            "ConvNextFeatureExtractor" => convnext_resize(config)?,
            "JinaCLIPImageProcessor" => {
                (crop_origin, fill) = (CropOrigin::PadTopLeft, fill_colour(config)?);
                jina_geometry(config)?
            }
            other => return Err(format!("image_processor_type {other:?} is not supported")),
        };
        let scaling = if flag(config, "do_rescale", true) {
            Scaling::Rescale(config.get("rescale_factor").and_then(Value::as_f64).unwrap_or(1.0 / 255.0))
        } else {
            Scaling::None
        };
        let (mean, std) = if flag(config, "do_normalize", false) {
            (triple(config, "image_mean")?, triple(config, "image_std")?)
        } else if config.get("mean").is_some() && config.get("std").is_some() {
            (triple(config, "mean")?, triple(config, "std")?)
        } else {
            ([0.0; 3], [1.0; 3])
        };
        Ok(ImagePrep { resize, filter, crop, crop_origin, fill, scaling, mean, std })
    }

    /// The input's `(width, height)` for an image of `width`×`height`.
    pub fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        let resized = self.resize.map_or((width, height), |r| resized_size(r, width, height));
        self.crop.unwrap_or(resized)
    }

    /// The `(1, 3, h, w)` input for `image`.
    pub fn tensor(&self, image: &RgbImage) -> Array4<f32> {
        let resized = match self.resize {
            Some(r) => {
                let (w, h) = resized_size(r, image.width(), image.height());
                pillow::resize(image, w, h, self.filter)
            }
            None => image.clone(),
        };
        let (width, height) = self.crop.unwrap_or(resized.dimensions());
        let (left, top) = self.crop_offsets(resized.dimensions(), (width, height));
        let mut tensor = Array4::<f32>::zeros((1, 3, height as usize, width as usize));
        let levels = self.levels();
        for y in 0..height {
            for x in 0..width {
                let (sx, sy) = (i64::from(x) + left, i64::from(y) + top);
                let inside = sx >= 0 && sy >= 0 && sx < i64::from(resized.width()) && sy < i64::from(resized.height());
                let pixel = if inside { resized.get_pixel(sx as u32, sy as u32).0 } else { self.fill };
                for c in 0..3 {
                    tensor[[0, c, y as usize, x as usize]] = levels[c][usize::from(pixel[c])];
                }
            }
        }
        tensor
    }

    /// Where the crop window starts in the resized image (negative: zero padding before it).
    fn crop_offsets(&self, (w, h): (u32, u32), (cw, ch): (u32, u32)) -> (i64, i64) {
        let offset = |size: u32, crop: u32| -> i64 {
            let margin = i64::from(size) - i64::from(crop);
            match self.crop_origin {
                CropOrigin::RoundHalfEven => (margin as f64 / 2.0).round_ties_even() as i64,
                CropOrigin::Floor if margin >= 0 => margin / 2,
                // fastembed pads to the crop size first, rounding the padding up.
                CropOrigin::Floor => -((-margin + 1) / 2),
                CropOrigin::PadTopLeft if margin > 0 => (margin as f64 / 2.0).round_ties_even() as i64,
                CropOrigin::PadTopLeft => 0,
            }
        };
        (offset(w, cw), offset(h, ch))
    }

    /// Each channel's float for each byte value, computed once as the reference computes it.
    fn levels(&self) -> [[f32; 256]; 3] {
        let mut levels = [[0f32; 256]; 3];
        for (c, channel) in levels.iter_mut().enumerate() {
            for (v, level) in channel.iter_mut().enumerate() {
                let scaled = match self.scaling {
                    Scaling::ToTensor => v as f32 / 255.0,
                    Scaling::Rescale(factor) => (v as f64 * factor) as f32,
                    Scaling::None => v as f32,
                };
                *level = (scaled - self.mean[c]) / self.std[c];
            }
        }
        levels
    }
}

fn resized_size(resize: Resize, width: u32, height: u32) -> (u32, u32) {
    match resize {
        Resize::Exact { width, height } => (width, height),
        Resize::ShortestEdge(size) => {
            let (short, long) = (width.min(height).max(1), width.max(height));
            let new_long = ((u64::from(size) * u64::from(long)) as f64 / f64::from(short)) as u32;
            if width <= height {
                (size, new_long.max(1))
            } else {
                (new_long.max(1), size)
            }
        }
    }
}

fn flag(config: &Value, key: &str, default: bool) -> bool {
    config.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn filter_of(config: &Value) -> Result<Filter, String> {
    match config.get("resample").or_else(|| config.get("interpolation")) {
        None | Some(Value::Null) => Ok(Filter::Bicubic),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(Filter::from_pillow)
            .ok_or_else(|| format!("resample {n} is not one of Pillow's filters (0-5)")),
        Some(Value::String(name)) => {
            Filter::from_name(name).ok_or_else(|| format!("interpolation {name:?} is unknown"))
        }
        Some(other) => Err(format!("resample {other} is not a filter")),
    }
}

fn size_field(value: &Value, key: &str) -> Option<u32> {
    value.get(key).and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok()).filter(|&v| v > 0)
}

fn clip_resize(config: &Value) -> Result<Option<Resize>, String> {
    if !flag(config, "do_resize", false) {
        return Ok(None);
    }
    let size = config.get("size").ok_or("size is missing")?;
    if let Some(edge) = size.as_u64().and_then(|v| u32::try_from(v).ok()).or_else(|| size_field(size, "shortest_edge"))
    {
        return Ok(Some(Resize::ShortestEdge(edge)));
    }
    match (size_field(size, "width"), size_field(size, "height")) {
        (Some(width), Some(height)) => Ok(Some(Resize::Exact { width, height })),
        _ => Err("size must have shortest_edge, or height and width".into()),
    }
}

fn clip_crop(config: &Value) -> Result<Option<(u32, u32)>, String> {
    if !flag(config, "do_center_crop", false) {
        return Ok(None);
    }
    let crop = config.get("crop_size").ok_or("crop_size is missing")?;
    if let Some(side) = crop.as_u64().and_then(|v| u32::try_from(v).ok()) {
        return Ok(Some((side, side)));
    }
    match (size_field(crop, "width"), size_field(crop, "height")) {
        (Some(width), Some(height)) => Ok(Some((width, height))),
        _ => Err("crop_size must be a number, or have height and width".into()),
    }
}

/// ConvNeXt's rule: below 384, resize the shorter side to `shortest_edge / crop_pct` and crop
/// `shortest_edge`; from 384, resize to a square.
/// The resize, then the `(width, height)` of the crop.
type Geometry = (Option<Resize>, Option<(u32, u32)>);

fn convnext_resize(config: &Value) -> Result<Geometry, String> {
    if !flag(config, "do_resize", true) {
        return Ok((None, None));
    }
    let edge = config.get("size").and_then(|s| size_field(s, "shortest_edge")).ok_or("size must have shortest_edge")?;
    if edge < 384 {
        let crop_pct = config.get("crop_pct").and_then(Value::as_f64).unwrap_or(0.875);
        if crop_pct <= 0.0 {
            return Err("crop_pct must be above 0".into());
        }
        let resize = (f64::from(edge) / crop_pct) as u32;
        Ok((Some(Resize::ShortestEdge(resize)), Some((edge, edge))))
    } else {
        Ok((Some(Resize::Exact { width: edge, height: edge }), None))
    }
}

/// fastembed's `JinaCLIPImageProcessor`: with `resize_mode` `shortest` (the default) the shorter
/// side goes to `size`; then the pad to a `size` square.
fn jina_geometry(config: &Value) -> Result<Geometry, String> {
    let size = config
        .get("size")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .filter(|&v| v > 0)
        .ok_or("size must be a whole number of pixels")?;
    let mode = config.get("resize_mode").and_then(Value::as_str).unwrap_or("shortest");
    let resize = (mode == "shortest").then_some(Resize::ShortestEdge(size));
    Ok((resize, Some((size, size))))
}

/// Pillow's colour for `Image.new("RGB", ..., fill_color)`: a number packs red in its low byte,
/// then green and blue; three numbers are the channels.
fn fill_colour(config: &Value) -> Result<[u8; 3], String> {
    let byte = |v: &Value| v.as_u64().and_then(|b| u8::try_from(b).ok());
    match config.get("fill_color") {
        None | Some(Value::Null) => Ok([0; 3]),
        Some(Value::Number(n)) => {
            let packed = n.as_u64().filter(|&v| v <= 0xff_ffff).ok_or("fill_color must be 0 to 16777215")?;
            Ok([packed as u8, (packed >> 8) as u8, (packed >> 16) as u8])
        }
        Some(Value::Array(values)) if values.len() >= 3 => {
            let mut out = [0u8; 3];
            for (slot, v) in out.iter_mut().zip(values) {
                *slot = byte(v).ok_or("fill_color must hold bytes (0 to 255)")?;
            }
            Ok(out)
        }
        Some(_) => Err("fill_color must be a number or three bytes".into()),
    }
}

fn triple(config: &Value, key: &str) -> Result<[f32; 3], String> {
    match config.get(key) {
        Some(Value::Number(n)) => n.as_f64().map(|v| [v as f32; 3]).ok_or_else(|| format!("{key} is not a number")),
        Some(Value::Array(values)) if values.len() == 3 => {
            let mut out = [0f32; 3];
            for (slot, v) in out.iter_mut().zip(values) {
                *slot = v.as_f64().ok_or_else(|| format!("{key} holds a non-number"))? as f32;
            }
            Ok(out)
        }
        _ => Err(format!("{key} must be a number or three numbers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_shorter_side_goes_to_the_size_and_the_longer_is_truncated() {
        assert_eq!(resized_size(Resize::ShortestEdge(224), 640, 480), (298, 224));
        assert_eq!(resized_size(Resize::ShortestEdge(224), 300, 500), (224, 373));
        assert_eq!(resized_size(Resize::ShortestEdge(224), 32, 32), (224, 224));
    }

    #[test]
    fn torchvision_rounds_the_crop_half_to_even_and_hugging_face_floors() {
        let mut prep = ImagePrep::openai_clip(224);
        assert_eq!(prep.crop_offsets((375, 224), (224, 224)), (76, 0));
        assert_eq!(prep.crop_offsets((373, 224), (224, 224)), (74, 0));
        prep.crop_origin = CropOrigin::Floor;
        assert_eq!(prep.crop_offsets((375, 224), (224, 224)), (75, 0));
        assert_eq!(prep.crop_offsets((221, 224), (224, 224)), (-2, 0));
    }

    #[test]
    fn convnext_configs_resize_past_the_crop() {
        let config = json!({"image_processor_type": "ConvNextFeatureExtractor", "crop_pct": 0.875,
            "size": {"shortest_edge": 224}, "do_normalize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": 0.5});
        let prep = ImagePrep::from_preprocessor_config(&config).unwrap();
        assert_eq!(prep.resize, Some(Resize::ShortestEdge(256)));
        assert_eq!(prep.crop, Some((224, 224)));
        assert_eq!(prep.std, [0.5; 3]);
    }

    #[test]
    fn jina_crops_a_larger_side_half_to_even_and_pads_top_left_with_the_fill() {
        let config = json!({"image_processor_type": "JinaCLIPImageProcessor", "size": 224,
            "interpolation": "bicubic", "fill_color": 0x0a0b0c, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]});
        let prep = ImagePrep::from_preprocessor_config(&config).unwrap();
        assert_eq!(prep.resize, Some(Resize::ShortestEdge(224)));
        assert_eq!((prep.crop, prep.fill, prep.filter), (Some((224, 224)), [12, 11, 10], Filter::Bicubic));
        assert_eq!(prep.crop_offsets((227, 224), (224, 224)), (2, 0));
        assert_eq!(prep.crop_offsets((200, 230), (224, 224)), (0, 3));
        let unresized = json!({"image_processor_type": "JinaCLIPImageProcessor", "size": 4, "resize_mode": "longest"});
        let prep = ImagePrep::from_preprocessor_config(&unresized).unwrap();
        let image = RgbImage::from_pixel(2, 6, image::Rgb([255, 255, 255]));
        let tensor = prep.tensor(&image);
        assert_eq!(tensor.shape(), [1, 3, 4, 4]);
        // Rows 1..5 of the image, on the left; black padding to the right.
        assert_eq!((tensor[[0, 0, 0, 0]], tensor[[0, 0, 3, 1]], tensor[[0, 0, 0, 2]]), (1.0, 1.0, 0.0));
        let e = ImagePrep::from_preprocessor_config(&json!({"image_processor_type": "JinaCLIPImageProcessor",
            "size": 224, "fill_color": "red"}))
        .unwrap_err();
        assert!(e.contains("fill_color"), "{e}");
    }

    #[test]
    fn an_unusable_config_names_its_field() {
        let e = ImagePrep::from_preprocessor_config(&json!({"do_resize": true, "size": {"longest": 3}})).unwrap_err();
        assert!(e.contains("shortest_edge"), "{e}");
        let e = ImagePrep::from_preprocessor_config(&json!({"resample": 9})).unwrap_err();
        assert!(e.contains("resample"), "{e}");
        let e = ImagePrep::from_preprocessor_config(&json!({"image_processor_type": "Idefics3ImageProcessor"}))
            .unwrap_err();
        assert!(e.contains("Idefics3ImageProcessor"), "{e}");
    }
}
