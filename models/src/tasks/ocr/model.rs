//! The OCR pipeline as one model: detector, direction classifier and recogniser sessions, each on
//! its own inference thread. Preprocessing as rapidocr's defaults: BGR, `(v / 255 - 0.5) / 0.5`.

use std::path::Path;

use async_trait::async_trait;
use image::RgbImage;
use ndarray::{s, Array4, Axis, Ix2, Ix3, Ix4};
use sightline_core::{CoreError, ImageRequest, Model, ModelDescription, ModelId, OcrLine, OcrOutput, ReadText, Task};
use sightline_engine::{run_blocking, ModelSession, ModelSessions, OnnxWorker, Outputs, Place};

use super::ctc::greedy_decode;
use super::db_postprocess::{order_and_filter, text_boxes};
use super::perspective::crop_quad;
use crate::image::decode::{decode_image, DecodeLimits};
use crate::image::resize::resize_bilinear;
use crate::load_options::LoadOptions;
use crate::ModelError;

pub const DETECTOR_FILE: &str = "det.onnx";
pub const CLASSIFIER_FILE: &str = "cls.onnx";
pub const RECOGNIZER_FILE: &str = "rec.onnx";
pub const KEYS_FILE: &str = "keys.txt";

/// The detector's input: the shorter side scaled up to this, both sides to multiples of 32.
const DET_MIN_SIDE: f64 = 736.0;
/// ... but never a longer side than this: a 1x1000 strip must not become a 736x736000 input.
const DET_MAX_SIDE: f64 = 8192.0;

/// The detector's input size for a `w x h` image (rapidocr's `limit_type: min`, bounded).
fn detector_size(w: u32, h: u32) -> (u32, u32) {
    let (w, h) = (f64::from(w), f64::from(h));
    let ratio = (DET_MIN_SIDE / w.min(h)).max(1.0).min(DET_MAX_SIDE / w.max(h));
    (multiple_of_32(f64::from((w * ratio) as u32)), multiple_of_32(f64::from((h * ratio) as u32)))
}
const LINE_HEIGHT: u32 = 48;
const CLS_WIDTH: u32 = 192;
const CLS_THRESHOLD: f32 = 0.9;
const REC_MIN_RATIO: f64 = 320.0 / 48.0;
const BATCH: usize = 6;
/// Lines read with a lower score are dropped (rapidocr's `text_score`).
const TEXT_SCORE: f32 = 0.5;

pub struct OcrModel {
    description: ModelDescription,
    detector: OnnxWorker,
    /// The optional 180° direction classifier (`cls.onnx`).
    classifier: Option<OnnxWorker>,
    recognizer: OnnxWorker,
    /// Index 0 is the CTC blank; then the dictionary; then a space.
    characters: Vec<String>,
    decode_limits: DecodeLimits,
}

fn broken(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::BrokenModel { file: path.to_path_buf(), reason: reason.into() }
}

/// A session checked with one blank input of `shape`; returns the first output's shape.
fn checked_session(
    sessions: &mut ModelSessions<'_>,
    path: &Path,
    shape: (usize, usize, usize, usize),
) -> Result<(ModelSession, Vec<usize>), ModelError> {
    let (session, outputs) = sessions.varying_shapes(path, &Array4::zeros(shape))?;
    let dims = outputs.first().map(|o| o.shape().to_vec()).ok_or_else(|| broken(path, "no output"))?;
    Ok((session, dims))
}

/// `(v / 255 - 0.5) / 0.5` in BGR order, written at the left of `tensor[index]` (the rest stays 0).
fn write_bgr(tensor: &mut Array4<f32>, index: usize, image: &RgbImage) {
    for (x, y, p) in image.enumerate_pixels() {
        for c in 0..3 {
            tensor[[index, c, y as usize, x as usize]] = (f32::from(p.0[2 - c]) / 255.0 - 0.5) / 0.5;
        }
    }
}

/// Python's `round` (ties to even) of `v / 32`, times 32, at least 32.
fn multiple_of_32(v: f64) -> u32 {
    (((v / 32.0).round_ties_even() * 32.0) as u32).max(32)
}

/// Resizes a line crop to height 48 and at most `max_width` (`ceil(48 * w / h)`).
fn line_image(crop: &RgbImage, max_width: u32) -> RgbImage {
    let ratio = f64::from(crop.width()) / f64::from(crop.height());
    let width = ((f64::from(LINE_HEIGHT) * ratio).ceil() as u32).clamp(1, max_width);
    resize_bilinear(crop, width, LINE_HEIGHT)
}

/// Indices of `crops` by width/height ratio, in batches of six (as rapidocr batches them).
fn batches(crops: &[RgbImage]) -> Vec<Vec<usize>> {
    let ratio = |c: &RgbImage| f64::from(c.width()) / f64::from(c.height());
    let mut order: Vec<usize> = (0..crops.len()).collect();
    order.sort_by(|&a, &b| ratio(&crops[a]).total_cmp(&ratio(&crops[b])));
    order.chunks(BATCH).map(<[usize]>::to_vec).collect()
}

impl OcrModel {
    /// Blocking: loads the three sessions and the dictionary, checking each on a blank input.
    pub fn load(
        id: &ModelId,
        dir: &Path,
        model_type: &str,
        options: &LoadOptions,
        sessions: &mut ModelSessions<'_>,
    ) -> Result<Self, ModelError> {
        let keys_path = dir.join(KEYS_FILE);
        let keys = std::fs::read_to_string(&keys_path).map_err(|e| broken(&keys_path, format!("cannot read: {e}")))?;
        let mut characters = vec![String::new()];
        characters.extend(keys.lines().map(str::to_owned));
        characters.push(" ".into());
        let (detector, _) = checked_session(sessions, &dir.join(DETECTOR_FILE), (1, 3, 32, 32))?;
        let cls_path = dir.join(CLASSIFIER_FILE);
        let classifier = if cls_path.exists() {
            let (session, dims) = checked_session(sessions, &cls_path, (1, 3, 48, 192))?;
            if dims != [1, 2] {
                return Err(broken(&cls_path, format!("expected a (1, 2) output, got {dims:?}")));
            }
            Some(session)
        } else {
            None
        };
        let rec_path = dir.join(RECOGNIZER_FILE);
        let (recognizer, rec_dims) = checked_session(sessions, &rec_path, (1, 3, 48, 320))?;
        if rec_dims.len() != 3 || rec_dims[2] != characters.len() {
            return Err(broken(
                &rec_path,
                format!(
                    "{rec_dims:?} does not fit {} characters (blank, {}, space)",
                    characters.len(),
                    keys_path.display()
                ),
            ));
        }
        let name = id.to_string();
        let description = ModelDescription {
            task: Task::Ocr,
            architecture: model_type.to_owned(),
            ..ModelDescription::unplaced(id.clone())
        };
        // Each session's inputs change shape with every image or line batch: no dynamic batching
        // (the recogniser batches its own lines, as rapidocr does).
        let mut worker = |session, path: &Path, part: &str| -> Result<OnnxWorker, ModelError> {
            let instances = sessions.instances(path, session, true)?;
            let name = format!("{name}-{part}");
            Ok(OnnxWorker::start(instances, &name, options.worker(&name, 1, true))?)
        };
        let detector = worker(detector, &dir.join(DETECTOR_FILE), "det")?;
        let classifier = classifier.map(|c| worker(c, &cls_path, "cls")).transpose()?;
        let recognizer = worker(recognizer, &rec_path, "rec")?;
        Ok(OcrModel { description, detector, classifier, recognizer, characters, decode_limits: options.decode_limits })
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, ModelError> + Send + 'static,
    ) -> Result<T, CoreError> {
        run_blocking("OCR", f).await?.map_err(CoreError::from)
    }

    /// Text quads and the upright crops of each.
    async fn detect(
        &self,
        image: RgbImage,
        place: Place,
    ) -> Result<(RgbImage, Vec<([[f32; 2]; 4], RgbImage)>), CoreError> {
        let (w, h) = image.dimensions();
        let (input, image) = Self::blocking(move || {
            let (rw, rh) = detector_size(w, h);
            let resized = resize_bilinear(&image, rw, rh);
            let mut input = Array4::zeros((1, 3, rh as usize, rw as usize));
            write_bgr(&mut input, 0, &resized);
            Ok((input, image))
        })
        .await?;
        let outputs = self.detector.run(input, place).await?;
        Self::blocking(move || {
            let map = outputs.first().ok_or_else(|| ModelError::Inference("detector returned nothing".into()))?;
            let map = map
                .view()
                .into_dimensionality::<Ix4>()
                .map_err(|_| ModelError::Inference(format!("detector output {:?}", map.shape())))?;
            let pred = map.slice(s![0, 0, .., ..]);
            let quads = order_and_filter(text_boxes(pred, w, h), w, h);
            let crops = quads.into_iter().filter_map(|(q, _)| Some((q, crop_quad(&image, &q)?))).collect();
            Ok((image, crops))
        })
        .await
    }

    /// Turns crops the classifier reads as upside down.
    async fn orient(&self, crops: &mut [RgbImage]) -> Result<(), CoreError> {
        let Some(classifier) = &self.classifier else { return Ok(()) };
        for batch in batches(crops) {
            let mut input = Array4::zeros((batch.len(), 3, LINE_HEIGHT as usize, CLS_WIDTH as usize));
            for (slot, &i) in batch.iter().enumerate() {
                write_bgr(&mut input, slot, &line_image(&crops[i], CLS_WIDTH));
            }
            let outputs: Outputs = classifier.run_now(input).await?;
            let scores = outputs
                .first()
                .and_then(|o| o.view().into_dimensionality::<Ix2>().ok())
                .ok_or_else(|| CoreError::Inference("classifier output".into()))?;
            for (slot, &i) in batch.iter().enumerate() {
                let row = scores.index_axis(Axis(0), slot);
                if row.len() == 2 && row[1] > row[0] && row[1] > CLS_THRESHOLD {
                    image::imageops::rotate180_in_place(&mut crops[i]);
                }
            }
        }
        Ok(())
    }

    /// Text and score of each crop.
    async fn recognize(&self, crops: &[RgbImage]) -> Result<Vec<(String, f32)>, CoreError> {
        let mut results = vec![(String::new(), 0.0); crops.len()];
        for batch in batches(crops) {
            let widest = batch
                .iter()
                .map(|&i| f64::from(crops[i].width()) / f64::from(crops[i].height()))
                .fold(REC_MIN_RATIO, f64::max);
            let width = (f64::from(LINE_HEIGHT) * widest) as u32;
            let mut input = Array4::zeros((batch.len(), 3, LINE_HEIGHT as usize, width as usize));
            for (slot, &i) in batch.iter().enumerate() {
                write_bgr(&mut input, slot, &line_image(&crops[i], width));
            }
            let outputs = self.recognizer.run_now(input).await?;
            let probabilities = outputs
                .first()
                .and_then(|o| o.view().into_dimensionality::<Ix3>().ok())
                .ok_or_else(|| CoreError::Inference("recogniser output".into()))?;
            for (slot, &i) in batch.iter().enumerate() {
                results[i] = greedy_decode(probabilities.index_axis(Axis(0), slot), &self.characters);
            }
        }
        Ok(results)
    }
}

impl Model for OcrModel {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn text_reader(&self) -> Option<&dyn ReadText> {
        Some(self)
    }

    fn image_queue(&self) -> Option<std::sync::Arc<sightline_core::ModelQueue>> {
        Some(self.detector.queue().clone())
    }
}

#[async_trait]
impl ReadText for OcrModel {
    async fn read_text(&self, request: ImageRequest) -> Result<OcrOutput, CoreError> {
        let _in_flight = self.detector.in_flight();
        let place = self.detector.place(request.ticket).await?;
        let (bytes, auto_orient, limits) = (request.image, request.preprocessing.auto_orient, self.decode_limits);
        let image = Self::blocking(move || decode_image(&bytes, auto_orient, limits)).await?;
        let (image_width, image_height) = image.dimensions();
        let (_, found) = self.detect(image, place).await?;
        let (quads, mut crops): (Vec<_>, Vec<_>) = found.into_iter().unzip();
        self.orient(&mut crops).await?;
        let texts = self.recognize(&crops).await?;
        let lines = quads
            .into_iter()
            .zip(texts)
            .filter(|(_, (_, score))| *score >= TEXT_SCORE)
            .map(|(quad, (text, confidence))| OcrLine { text, confidence, quad })
            .collect();
        Ok(OcrOutput { image_width, image_height, lines })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detector_input_sizes_follow_rapidocr() {
        // (w, h) -> det input (w, h): reference `det_input_hw` values for three fixtures.
        let size = detector_size;
        assert_eq!(size(1600, 1000), (1600, 992));
        assert_eq!(size(640, 120), (3936, 736));
        assert_eq!(size(480, 80), (4416, 736));
        // Extreme strips stay bounded.
        assert_eq!(size(1, 1000), (32, 8192));
        assert_eq!(size(20000, 900), (8192, 384));
    }
}
