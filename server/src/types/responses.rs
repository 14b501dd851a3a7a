//! The JSON shapes the inference routes answer (Roboflow's HTTP API). Handlers build these types
//! and the OpenAPI document is generated from them, so the two cannot drift apart.

use std::collections::BTreeMap;

use serde::Serialize;
use sightline_core::{ClassificationOutput, Detection, DetectionOutput, OcrLine, OcrOutput};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeypointPrediction {
    pub x: f32,
    pub y: f32,
    pub confidence: f32,
    pub class_id: usize,
    /// The keypoint's name from `keypoints_metadata.json`.
    pub class: String,
}

/// pycocotools' compressed RLE (column-major).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RleMask {
    /// `[height, width]`.
    pub size: [u32; 2],
    pub counts: String,
}

/// A detection as Roboflow returns it: centre and size in original-image pixels, unrounded.
/// `keypoints` only on the keypoints route; `points` (or `rle`) and `mask_format` only on the
/// segmentation route.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DetectionPrediction {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    pub confidence: f32,
    pub class: String,
    pub class_id: usize,
    pub detection_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keypoints: Option<Vec<KeypointPrediction>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<Vec<Point>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rle: Option<RleMask>,
    /// `polygon` or `rle`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_format: Option<&'static str>,
}

impl DetectionPrediction {
    /// A box from its corners, with a fresh `detection_id` and nothing else.
    fn boxed([x1, y1, x2, y2]: [f32; 4], confidence: f32, class: String, class_id: usize) -> Self {
        DetectionPrediction {
            x: (x1 + x2) / 2.0,
            y: (y1 + y2) / 2.0,
            width: x2 - x1,
            height: y2 - y1,
            confidence,
            class,
            class_id,
            detection_id: uuid::Uuid::new_v4().to_string(),
            keypoints: None,
            points: None,
            rle: None,
            mask_format: None,
        }
    }

    pub fn new(d: &Detection, with_keypoints: bool) -> Self {
        let keypoints = with_keypoints.then(|| {
            d.keypoints
                .iter()
                .map(|k| KeypointPrediction {
                    x: k.x,
                    y: k.y,
                    confidence: k.confidence,
                    class_id: k.class_id,
                    class: k.class_name.clone(),
                })
                .collect()
        });
        let mut prediction =
            DetectionPrediction::boxed([d.x1, d.y1, d.x2, d.y2], d.confidence, d.class_name.clone(), d.class_id);
        prediction.keypoints = keypoints;
        if let Some(mask) = &d.mask {
            match &mask.rle {
                Some(rle) => {
                    prediction.rle = Some(RleMask { size: rle.size, counts: rle.counts.clone() });
                    prediction.mask_format = Some("rle");
                }
                None => {
                    prediction.points = Some(mask.polygon.iter().map(|[x, y]| Point { x: *x, y: *y }).collect());
                    prediction.mask_format = Some("polygon");
                }
            }
        }
        prediction
    }
}

/// What every `/infer/*` answer carries besides its predictions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Timing {
    /// Seconds in the model pipeline (decode to post-processing), as Roboflow reports it.
    pub time: f64,
    /// The request's `id`, or a generated one.
    pub inference_id: String,
    /// Base64 JPEG, when `visualize_predictions` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visualization: Option<String>,
}

/// `/infer/object_detection`, `/infer/instance_segmentation`, `/infer/keypoints_detection`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DetectionResponse {
    pub image: ImageSize,
    pub predictions: Vec<DetectionPrediction>,
    #[serde(flatten)]
    pub timing: Timing,
}

impl DetectionResponse {
    pub fn new(output: &DetectionOutput, with_keypoints: bool, timing: Timing) -> Self {
        DetectionResponse {
            image: ImageSize { width: output.image_width, height: output.image_height },
            predictions: output.predictions.iter().map(|d| DetectionPrediction::new(d, with_keypoints)).collect(),
            timing,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClassPrediction {
    pub class: String,
    pub class_id: usize,
    /// Rounded to 4 decimals, as Roboflow does.
    pub confidence: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClassScore {
    pub confidence: f32,
    pub class_id: usize,
}

/// `/infer/classification`: single-label models.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClassificationResponse {
    pub image: ImageSize,
    /// Classes at or above the threshold, best first.
    pub predictions: Vec<ClassPrediction>,
    /// The best class if at or above the threshold, else empty.
    pub top: String,
    pub confidence: f64,
    #[serde(flatten)]
    pub timing: Timing,
}

/// `/infer/classification`: multi-label models (`MULTICLASS: true`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MultiLabelClassificationResponse {
    pub image: ImageSize,
    /// Every class by name.
    pub predictions: BTreeMap<String, ClassScore>,
    /// Classes strictly above the threshold.
    pub predicted_classes: Vec<String>,
    #[serde(flatten)]
    pub timing: Timing,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ClassificationAnswer {
    Single(ClassificationResponse),
    Multi(MultiLabelClassificationResponse),
}

impl ClassificationAnswer {
    pub fn new(output: &ClassificationOutput, threshold: f32, timing: Timing) -> Self {
        let image = ImageSize { width: output.image_width, height: output.image_height };
        if output.multi_label {
            let predictions = output
                .scores
                .iter()
                .map(|s| (s.class_name.clone(), ClassScore { confidence: s.confidence, class_id: s.class_id }))
                .collect();
            let predicted_classes =
                output.scores.iter().filter(|s| s.confidence > threshold).map(|s| s.class_name.clone()).collect();
            return ClassificationAnswer::Multi(MultiLabelClassificationResponse {
                image,
                predictions,
                predicted_classes,
                timing,
            });
        }
        let round4 = |v: f32| (f64::from(v) * 1e4).round() / 1e4;
        let predictions = output
            .scores
            .iter()
            .filter(|s| s.confidence >= threshold)
            .map(|s| ClassPrediction {
                class: s.class_name.clone(),
                class_id: s.class_id,
                confidence: round4(s.confidence),
            })
            .collect();
        let top = output.scores.first().filter(|s| s.confidence >= threshold);
        ClassificationAnswer::Single(ClassificationResponse {
            image,
            predictions,
            top: top.map(|s| s.class_name.clone()).unwrap_or_default(),
            confidence: top.map(|s| round4(s.confidence)).unwrap_or(0.0),
            timing,
        })
    }
}

/// One text line of `/infer/ocr`: its box, its quadrilateral and what it reads.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OcrLinePrediction {
    pub text: String,
    pub confidence: f32,
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    /// The line's quadrilateral, clockwise from top-left.
    pub points: Vec<Point>,
}

impl OcrLinePrediction {
    fn new(line: &OcrLine) -> Self {
        let [x0, y0, x1, y1] = quad_bounds(line);
        OcrLinePrediction {
            text: line.text.clone(),
            confidence: line.confidence,
            x: (x0 + x1) / 2.0,
            y: (y0 + y1) / 2.0,
            width: x1 - x0,
            height: y1 - y0,
            points: line.quad.iter().map(|p| Point { x: p[0], y: p[1] }).collect(),
        }
    }
}

/// The axis-aligned box `[x0, y0, x1, y1]` around a line's quadrilateral.
fn quad_bounds(line: &OcrLine) -> [f32; 4] {
    let (xs, ys) = (line.quad.map(|p| p[0]), line.quad.map(|p| p[1]));
    let (x0, x1) = (xs.iter().copied().fold(f32::MAX, f32::min), xs.iter().copied().fold(f32::MIN, f32::max));
    let (y0, y1) = (ys.iter().copied().fold(f32::MAX, f32::min), ys.iter().copied().fold(f32::MIN, f32::max));
    [x0, y0, x1, y1]
}

fn joined_text(o: &OcrOutput) -> String {
    o.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join(" ")
}

/// `/infer/ocr` (ours).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OcrResponse {
    pub image: ImageSize,
    /// The lines' texts joined by spaces, in reading order.
    pub result: String,
    pub predictions: Vec<OcrLinePrediction>,
    #[serde(flatten)]
    pub timing: Timing,
}

impl OcrResponse {
    pub fn new(o: &OcrOutput, timing: Timing) -> Self {
        OcrResponse {
            image: ImageSize { width: o.image_width, height: o.image_height },
            result: joined_text(o),
            predictions: o.lines.iter().map(OcrLinePrediction::new).collect(),
            timing,
        }
    }
}

/// `/doctr/ocr`: `image` and `predictions` (one per line, `class` = its text) only with
/// `generate_bounding_boxes`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DoctrResponse {
    pub result: String,
    pub time: f64,
    /// Always null (workflow field).
    pub parent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictions: Option<Vec<DetectionPrediction>>,
}

impl DoctrResponse {
    pub fn new(o: &OcrOutput, time: f64, boxes: bool) -> Self {
        let predictions = boxes.then(|| {
            o.lines
                .iter()
                .map(|line| DetectionPrediction::boxed(quad_bounds(line), line.confidence, line.text.clone(), 0))
                .collect()
        });
        DoctrResponse {
            result: joined_text(o),
            time,
            parent_id: None,
            image: boxes.then_some(ImageSize { width: o.image_width, height: o.image_height }),
            predictions,
        }
    }
}

/// One answer for one image, a list for a list of images (documentation of the routes' shapes).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum OneOrList<T: ToSchema> {
    One(T),
    List(Vec<T>),
}

/// Any `/infer/*` answer for one image.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Answer {
    Detection(DetectionResponse),
    Classification(ClassificationAnswer),
    Ocr(OcrResponse),
}

impl Answer {
    pub fn visualization(&self) -> Option<&str> {
        let timing = match self {
            Answer::Detection(a) => &a.timing,
            Answer::Classification(ClassificationAnswer::Single(a)) => &a.timing,
            Answer::Classification(ClassificationAnswer::Multi(a)) => &a.timing,
            Answer::Ocr(a) => &a.timing,
        };
        timing.visualization.as_deref()
    }
}
