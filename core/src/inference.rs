//! What a request asks of a model and what comes back, independent of HTTP and of ONNX Runtime.

use std::fmt;

use serde::Serialize;

/// The task families Sightline serves. The string forms are Roboflow's `task_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Task {
    #[serde(rename = "object-detection")]
    ObjectDetection,
    #[serde(rename = "instance-segmentation")]
    InstanceSegmentation,
    #[serde(rename = "keypoint-detection")]
    KeypointDetection,
    #[serde(rename = "classification")]
    Classification,
    #[serde(rename = "ocr")]
    Ocr,
    /// A plain ONNX model with no task of its own, served tensor in, tensor out (never read from
    /// `model_type.json`).
    #[serde(rename = "tensor")]
    Tensor,
    /// Vectors for images or texts (CLIP's towers, fastembed's models); Roboflow's `task_type`
    /// for CLIP.
    #[serde(rename = "embedding")]
    Embedding,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::ObjectDetection => "object-detection",
            Task::InstanceSegmentation => "instance-segmentation",
            Task::KeypointDetection => "keypoint-detection",
            Task::Classification => "classification",
            Task::Ocr => "ocr",
            Task::Tensor => "tensor",
            Task::Embedding => "embedding",
        }
    }

    pub fn parse(s: &str) -> Option<Task> {
        match s {
            "object-detection" => Some(Task::ObjectDetection),
            "instance-segmentation" => Some(Task::InstanceSegmentation),
            "keypoint-detection" => Some(Task::KeypointDetection),
            "classification" => Some(Task::Classification),
            "ocr" => Some(Task::Ocr),
            _ => None,
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Post-processing knobs of detection-like tasks (Roboflow's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionParams {
    /// Keep candidates whose score is strictly above this.
    pub confidence: f32,
    /// NMS suppresses a box whose IoU with a kept box is strictly above this.
    pub iou_threshold: f32,
    pub class_agnostic_nms: bool,
    /// Top-k by score before NMS (Roboflow accepts but ignores it; we enforce it).
    pub max_candidates: usize,
    pub max_detections: usize,
    /// Keep only these class names (after NMS); `None` keeps all.
    pub class_filter: Option<Vec<String>>,
}

impl Default for DetectionParams {
    fn default() -> Self {
        DetectionParams {
            confidence: 0.4,
            iou_threshold: 0.3,
            class_agnostic_nms: false,
            max_candidates: 3000,
            max_detections: 300,
            class_filter: None,
        }
    }
}

/// Resolution at which instance masks are thresholded and traced (Roboflow's `mask_decode_mode`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaskDecodeMode {
    /// At the original image's resolution (what the reference pipeline and `retina_masks` do).
    Accurate,
    /// At the prototype resolution (e.g. 64x64 for a 256 model), polygon scaled up.
    Fast,
    /// Between the prototype (0) and the model input (1) resolution.
    Tradeoff(f32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MaskParams {
    pub decode_mode: MaskDecodeMode,
    /// Also return the mask as COCO run-length encoding (`response_mask_format: "rle"`).
    pub rle: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationParams {
    /// Single-label: classes below it are hidden; multi-label: a class is predicted when strictly above it.
    pub confidence: f32,
}

impl Default for ClassificationParams {
    fn default() -> Self {
        ClassificationParams { confidence: 0.4 }
    }
}

/// What a detection-like model (boxes, masks, keypoints) is asked beyond its image.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    pub detection: DetectionParams,
    /// Instance segmentation: how masks are decoded and returned.
    pub mask: Option<MaskParams>,
    /// Keypoint detection: keypoints whose confidence is below this are dropped.
    pub keypoint_confidence: f32,
}

impl DetectOptions {
    /// Plain object detection, with `detection`'s knobs.
    pub fn boxes(detection: DetectionParams) -> DetectOptions {
        DetectOptions { detection, mask: None, keypoint_confidence: 0.0 }
    }
}

/// Which of the model's preprocessing steps a request keeps (Roboflow's `disable_preproc_*` negated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreprocessingFlags {
    /// Apply the EXIF orientation tag.
    pub auto_orient: bool,
    pub contrast: bool,
    pub grayscale: bool,
    pub static_crop: bool,
}

impl Default for PreprocessingFlags {
    fn default() -> Self {
        PreprocessingFlags { auto_orient: true, contrast: true, grayscale: true, static_crop: true }
    }
}

/// Drawing the predictions onto the image (Roboflow's `visualize_predictions`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VisualizeParams {
    pub stroke_width: u32,
    pub labels: bool,
}

/// One image (still encoded: decoding is the model's job, so it can run off the HTTP threads) and
/// what the capability that serves it is asked (`P`: its own options).
#[derive(Debug)]
pub struct ImageRequest<P = ()> {
    pub image: Vec<u8>,
    pub preprocessing: PreprocessingFlags,
    pub options: P,
    /// `Some` to get `visualization` back.
    pub visualize: Option<VisualizeParams>,
    /// The image's place in the model's queue, where the request was admitted as a whole (a list);
    /// `None`: the model admits the image itself.
    pub ticket: Option<crate::Ticket>,
}

/// A copy is a new request: it is admitted by itself, without the original's ticket.
impl<P: Clone> Clone for ImageRequest<P> {
    fn clone(&self) -> Self {
        ImageRequest {
            image: self.image.clone(),
            preprocessing: self.preprocessing,
            options: self.options.clone(),
            visualize: self.visualize,
            ticket: None,
        }
    }
}

/// A keypoint in original-image pixels; `class_id` is its index in the model's keypoint list.
#[derive(Debug, Clone, PartialEq)]
pub struct Keypoint {
    pub x: f32,
    pub y: f32,
    pub confidence: f32,
    pub class_id: usize,
    pub class_name: String,
}

/// COCO run-length encoding (column-major, compressed string), as pycocotools writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoRle {
    /// `[height, width]`
    pub size: [u32; 2],
    pub counts: String,
}

/// An instance mask: the largest external contour, in original-image pixels, and optionally the RLE.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceMask {
    pub polygon: Vec<[f32; 2]>,
    pub rle: Option<CocoRle>,
}

/// A detection in original-image pixels, corners unrounded.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub confidence: f32,
    pub class_id: usize,
    pub class_name: String,
    /// Empty unless the model predicts keypoints.
    pub keypoints: Vec<Keypoint>,
    /// Instance segmentation models only.
    pub mask: Option<InstanceMask>,
}

#[derive(Debug, Clone)]
pub struct DetectionOutput {
    /// Size of the decoded image after EXIF orientation.
    pub image_width: u32,
    pub image_height: u32,
    /// Sorted by descending confidence.
    pub predictions: Vec<Detection>,
    /// JPEG of the image with the predictions drawn, when asked for.
    pub visualization: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassScore {
    pub class_id: usize,
    pub class_name: String,
    pub confidence: f32,
}

#[derive(Debug, Clone)]
pub struct ClassificationOutput {
    pub image_width: u32,
    pub image_height: u32,
    /// Every class, by descending confidence.
    pub scores: Vec<ClassScore>,
    /// Multi-label (independent sigmoid per class) rather than one softmax over the classes.
    pub multi_label: bool,
    /// JPEG of the image with the result drawn, when asked for.
    pub visualization: Option<Vec<u8>>,
}

/// One line of text: its quadrilateral (top-left, top-right, bottom-right, bottom-left) in image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrLine {
    pub text: String,
    pub confidence: f32,
    pub quad: [[f32; 2]; 4],
}

#[derive(Debug, Clone)]
pub struct OcrOutput {
    pub image_width: u32,
    pub image_height: u32,
    /// In reading order: top to bottom, then left to right.
    pub lines: Vec<OcrLine>,
}
