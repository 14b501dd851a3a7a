//! What a model folder says about its model: task, architecture, classes and preprocessing.
//!
//! Layout (Roboflow's, one folder per `dataset/version`): `weights.onnx`, `model_type.json`
//! (`project_task_type`, `model_type`), `environment.json` (`PREPROCESSING`, `CLASS_MAP`) and
//! optionally `class_names.txt` (one name per line, preferred over `CLASS_MAP`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sightline_core::{ModelDescription, ModelId, Task};

use crate::image::adjust::{Adjustments, Contrast, StaticCrop};
use crate::image::letterbox::ResizeMode;
use crate::ModelError;

pub const WEIGHTS_FILE: &str = "weights.onnx";
pub const MODEL_TYPE_FILE: &str = "model_type.json";
pub const ENVIRONMENT_FILE: &str = "environment.json";
pub const CLASS_NAMES_FILE: &str = "class_names.txt";

pub const KEYPOINTS_METADATA_FILE: &str = "keypoints_metadata.json";

/// Output layouts this build can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// ultralytics YOLOv8 / YOLO11 / YOLOv12 heads (`(4 + C + E, N)`).
    YoloV8,
    /// YOLOv5 / YOLOv7 heads (`(N, 5 + C + E)`).
    YoloV5,
    /// YOLO26 and YOLOv10: their one-to-one head (`(N, 6 + E)`: corners, score, class; no NMS),
    /// or, exported with the one-to-many head, the v8 layout; the output's shape tells which at load.
    YoloEndToEnd,
    /// Any image classifier with one `(1, C)` output.
    Classifier,
    /// RF-DETR: `(Q, 4)` boxes and `(Q, C)` class logits (and `(Q, h, w)` mask logits), no NMS.
    RfDetr,
}

/// YOLO26's and YOLOv10's sizes as Roboflow's registry names them, per task (its `ROBOFLOW_MODEL_TYPES`).
const YOLO26_DETECTION: &[&str] = &["yolo26", "yolo26n", "yolo26s", "yolo26b", "yolo26m", "yolo26l", "yolo26x"];
const YOLOV10_DETECTION: &[&str] = &["yolov10", "yolov10s", "yolov10n", "yolov10b", "yolov10m", "yolov10l", "yolov10x"];
const YOLOV12_DETECTION: &[&str] = &["yolov12", "yolov12s", "yolov12n", "yolov12m", "yolov12l", "yolov12x"];
const YOLO26_KEYPOINTS: &[&str] = &[
    "yolo26n",
    "yolo26s",
    "yolo26m",
    "yolo26l",
    "yolo26x",
    "yolo26n-pose",
    "yolo26s-pose",
    "yolo26m-pose",
    "yolo26l-pose",
    "yolo26x-pose",
];
/// RF-DETR's sizes per task: Roboflow's registry, and the bare `rfdetr` and the larger sizes its
/// training platform also writes.
const RFDETR_DETECTION: &[&str] = &[
    "rfdetr",
    "rfdetr-nano",
    "rfdetr-small",
    "rfdetr-base",
    "rfdetr-medium",
    "rfdetr-large",
    "rfdetr-xlarge",
    "rfdetr-2xlarge",
];
const RFDETR_SEGMENTATION: &[&str] = &[
    "rfdetr",
    "rfdetr-seg-preview",
    "rfdetr-seg-nano",
    "rfdetr-seg-small",
    "rfdetr-seg-medium",
    "rfdetr-seg-large",
    "rfdetr-seg-xlarge",
    "rfdetr-seg-xxlarge",
    "rfdetr-seg-2xlarge",
];
const YOLO26_SEGMENTATION: &[&str] = &[
    "yolo26n",
    "yolo26s",
    "yolo26m",
    "yolo26l",
    "yolo26x",
    "yolo26n-seg",
    "yolo26s-seg",
    "yolo26m-seg",
    "yolo26l-seg",
    "yolo26x-seg",
];

impl Architecture {
    fn for_task(task: Task, model_type: &str) -> Option<Architecture> {
        let m = model_type.to_ascii_lowercase();
        let listed = |types: &[&str]| types.contains(&m.as_str());
        let v8 = m.starts_with("yolov8") || m.starts_with("yolov11") || m.starts_with("yolo11");
        let v5 = m.starts_with("yolov5") || m.starts_with("yolov7");
        match task {
            Task::ObjectDetection if listed(YOLO26_DETECTION) || listed(YOLOV10_DETECTION) => {
                Some(Architecture::YoloEndToEnd)
            }
            Task::ObjectDetection if listed(YOLOV12_DETECTION) => Some(Architecture::YoloV8),
            Task::ObjectDetection if listed(RFDETR_DETECTION) => Some(Architecture::RfDetr),
            Task::InstanceSegmentation if listed(YOLO26_SEGMENTATION) => Some(Architecture::YoloEndToEnd),
            Task::InstanceSegmentation if listed(RFDETR_SEGMENTATION) => Some(Architecture::RfDetr),
            Task::KeypointDetection if listed(YOLO26_KEYPOINTS) => Some(Architecture::YoloEndToEnd),
            Task::ObjectDetection | Task::InstanceSegmentation | Task::KeypointDetection if v8 => {
                Some(Architecture::YoloV8)
            }
            Task::ObjectDetection | Task::InstanceSegmentation if v5 => Some(Architecture::YoloV5),
            Task::Classification => Some(Architecture::Classifier),
            _ => None,
        }
    }

    /// The model types `task` is served for, for the error that refuses another.
    fn known(task: Task) -> String {
        let listed: Vec<&[&str]> = match task {
            Task::ObjectDetection => vec![YOLOV10_DETECTION, YOLOV12_DETECTION, YOLO26_DETECTION, RFDETR_DETECTION],
            Task::InstanceSegmentation => vec![YOLO26_SEGMENTATION, RFDETR_SEGMENTATION],
            Task::KeypointDetection => vec![YOLO26_KEYPOINTS],
            _ => Vec::new(),
        };
        let families = match task {
            Task::ObjectDetection | Task::InstanceSegmentation => "yolov5*, yolov7*, yolov8*, yolov11*, yolo11*",
            Task::KeypointDetection => "yolov8*, yolov11*, yolo11*",
            Task::Classification => "any",
            Task::Ocr | Task::Tensor | Task::Embedding => "none",
        };
        std::iter::once(families.to_owned())
            .chain(listed.concat().into_iter().map(str::to_owned))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub weights: PathBuf,
    pub task: Task,
    pub model_type: String,
    pub architecture: Architecture,
    pub class_names: Vec<String>,
    pub resize: ResizeMode,
    pub adjustments: Adjustments,
    /// Keypoint names for each object class (pose models), from `keypoints_metadata.json`.
    pub keypoint_names: Vec<Vec<String>>,
    /// `MULTICLASS: true` in `environment.json`: a multi-label classifier.
    pub multi_label: bool,
    /// `COLORS` from `environment.json`: class name → `#RRGGBB`.
    pub colors: HashMap<String, String>,
}

impl ModelConfig {
    /// What the registry routes report for this model, with the facts read off its session.
    pub fn description(&self, id: &ModelId, batch_size: Option<usize>, width: u32, height: u32) -> ModelDescription {
        ModelDescription {
            task: self.task,
            architecture: self.model_type.clone(),
            batch_size,
            input_width: Some(width),
            input_height: Some(height),
            class_names: self.class_names.clone(),
            ..ModelDescription::unplaced(id.clone())
        }
    }
}

fn broken(file: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::BrokenModel { file: file.to_path_buf(), reason: reason.into() }
}

fn read_json(path: &Path) -> Result<Value, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| broken(path, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| broken(path, format!("invalid JSON: {e}")))
}

/// The task and `model_type` named by the folder's `model_type.json`.
pub fn read_task(dir: &Path) -> Result<(Task, String), ModelError> {
    let model_type_path = dir.join(MODEL_TYPE_FILE);
    let model_type_json = read_json(&model_type_path)?;
    let field = |name: &str| -> Result<String, ModelError> {
        model_type_json
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| broken(&model_type_path, format!("missing string field {name:?}")))
    };
    let task_name = field("project_task_type")?;
    let task = Task::parse(&task_name).ok_or_else(|| {
        ModelError::Unsupported(format!("task {task_name:?} ({}) is not supported", model_type_path.display()))
    })?;
    Ok((task, field("model_type")?))
}

/// Reads and checks the folder's metadata (the weights themselves are checked when the session is built).
pub fn read_model_dir(dir: &Path) -> Result<ModelConfig, ModelError> {
    let model_type_path = dir.join(MODEL_TYPE_FILE);
    let (task, model_type) = read_task(dir)?;
    let architecture = Architecture::for_task(task, &model_type).ok_or_else(|| {
        ModelError::Unsupported(format!(
            "architecture {model_type:?} is not supported for {task} ({}); known model types: {}",
            model_type_path.display(),
            Architecture::known(task)
        ))
    })?;

    let environment_path = dir.join(ENVIRONMENT_FILE);
    let environment = if environment_path.exists() { Some(read_json(&environment_path)?) } else { None };
    let resize = resize_mode(environment.as_ref(), &environment_path)?;
    let adjustments = adjustments(environment.as_ref(), &environment_path)?;
    let class_names = class_names(dir, environment.as_ref())?;
    let keypoint_names = if task == Task::KeypointDetection {
        keypoint_names(&dir.join(KEYPOINTS_METADATA_FILE), class_names.len())?
    } else {
        vec![]
    };
    let multi_label = environment
        .as_ref()
        .and_then(|e| e.get("MULTICLASS"))
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true")));
    let colors = environment
        .as_ref()
        .and_then(|e| e.get("COLORS"))
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.is_file() {
        return Err(broken(&weights, "missing"));
    }
    Ok(ModelConfig {
        weights,
        task,
        model_type,
        architecture,
        class_names,
        resize,
        adjustments,
        keypoint_names,
        multi_label,
        colors,
    })
}

/// `PREPROCESSING` may be an object or (as Roboflow's API serves it) a JSON-encoded string.
fn preprocessing(environment: Option<&Value>, path: &Path) -> Result<Option<Value>, ModelError> {
    match environment.and_then(|e| e.get("PREPROCESSING")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            serde_json::from_str(s).map(Some).map_err(|e| broken(path, format!("PREPROCESSING is not JSON: {e}")))
        }
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(broken(path, "PREPROCESSING must be an object")),
    }
}

fn resize_mode(environment: Option<&Value>, path: &Path) -> Result<ResizeMode, ModelError> {
    let Some(resize) = preprocessing(environment, path)?.and_then(|p| p.get("resize").cloned()) else {
        return Ok(ResizeMode::Stretch);
    };
    if resize.get("enabled").and_then(Value::as_bool) == Some(false) {
        return Ok(ResizeMode::Stretch);
    }
    match resize.get("format").and_then(Value::as_str).unwrap_or("Stretch to") {
        "Stretch to" => Ok(ResizeMode::Stretch),
        "Fit (grey edges) in" => Ok(ResizeMode::Letterbox { pad: 114 }),
        "Fit (black edges) in" => Ok(ResizeMode::Letterbox { pad: 0 }),
        "Fit (white edges) in" => Ok(ResizeMode::Letterbox { pad: 255 }),
        other => Err(ModelError::Unsupported(format!(
            "resize format {other:?} in {} is not supported (use \"Stretch to\" or \"Fit (grey|black|white edges) in\")",
            path.display()
        ))),
    }
}

/// `static-crop` (percent box), `contrast` and `grayscale` from `PREPROCESSING`, when enabled.
fn adjustments(environment: Option<&Value>, path: &Path) -> Result<Adjustments, ModelError> {
    let Some(pre) = preprocessing(environment, path)? else { return Ok(Adjustments::default()) };
    let enabled = |key: &str| pre.get(key).filter(|v| v.get("enabled").and_then(Value::as_bool) == Some(true));
    let static_crop = match enabled("static-crop") {
        Some(c) => {
            let field = |name: &str| {
                c.get(name)
                    .and_then(Value::as_f64)
                    .map(|v| v as f32)
                    .ok_or_else(|| broken(path, format!("static-crop.{name} must be a number")))
            };
            let crop = StaticCrop {
                x_min: field("x_min")?,
                y_min: field("y_min")?,
                x_max: field("x_max")?,
                y_max: field("y_max")?,
            };
            if crop.x_max <= crop.x_min || crop.y_max <= crop.y_min {
                return Err(broken(path, "static-crop must have x_min < x_max and y_min < y_max"));
            }
            Some(crop)
        }
        None => None,
    };
    let contrast = match enabled("contrast").map(|c| c.get("type").and_then(Value::as_str).unwrap_or("")) {
        None => None,
        Some("Contrast Stretching") => Some(Contrast::Stretching),
        Some("Histogram Equalization") => Some(Contrast::HistogramEqualization),
        Some("Adaptive Equalization") => Some(Contrast::AdaptiveEqualization),
        Some(other) => {
            return Err(ModelError::Unsupported(format!(
                "contrast type {other:?} in {} is not supported",
                path.display()
            )))
        }
    };
    let auto_orient = pre.get("auto-orient").and_then(|v| v.get("enabled")).and_then(Value::as_bool) != Some(false);
    Ok(Adjustments { auto_orient, static_crop, contrast, grayscale: enabled("grayscale").is_some() })
}

/// Roboflow's keypoint metadata: `[{"object_class_id": 0, "keypoints": {"0": "nose", ...}}, ...]`.
fn keypoint_names(path: &Path, num_classes: usize) -> Result<Vec<Vec<String>>, ModelError> {
    let json = read_json(path)?;
    let entries = json.as_array().ok_or_else(|| broken(path, "expected a list of {object_class_id, keypoints}"))?;
    let mut names = vec![Vec::new(); num_classes];
    for entry in entries {
        let class_id = entry
            .get("object_class_id")
            .and_then(Value::as_u64)
            .map(|c| c as usize)
            .filter(|&c| c < num_classes)
            .ok_or_else(|| broken(path, format!("object_class_id must be a class index below {num_classes}")))?;
        let map = entry
            .get("keypoints")
            .and_then(Value::as_object)
            .ok_or_else(|| broken(path, "keypoints must be an object"))?;
        let mut indexed = map
            .iter()
            .map(|(k, v)| match (k.parse::<usize>(), v.as_str()) {
                (Ok(i), Some(name)) => Ok((i, name.to_owned())),
                _ => Err(broken(path, format!("keypoint entry {k:?} must map an index to a name"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        indexed.sort();
        if indexed.iter().enumerate().any(|(i, (index, _))| i != *index) {
            return Err(broken(path, "keypoint indices must be 0..K without gaps"));
        }
        names[class_id] = indexed.into_iter().map(|(_, name)| name).collect();
    }
    Ok(names)
}

fn class_names(dir: &Path, environment: Option<&Value>) -> Result<Vec<String>, ModelError> {
    let txt = dir.join(CLASS_NAMES_FILE);
    if txt.exists() {
        let text = std::fs::read_to_string(&txt).map_err(|e| broken(&txt, format!("cannot read: {e}")))?;
        let names: Vec<String> = text.lines().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect();
        if names.is_empty() {
            return Err(broken(&txt, "no class names"));
        }
        return Ok(names);
    }
    let env_path = dir.join(ENVIRONMENT_FILE);
    let Some(map) = environment.and_then(|e| e.get("CLASS_MAP")).and_then(Value::as_object) else {
        return Err(broken(&txt, format!("missing, and {} has no CLASS_MAP", env_path.display())));
    };
    let mut entries = map
        .iter()
        .map(|(k, v)| {
            let index =
                k.parse::<usize>().map_err(|_| broken(&env_path, format!("CLASS_MAP key {k:?} is not an index")))?;
            let name = v.as_str().ok_or_else(|| broken(&env_path, format!("CLASS_MAP[{k:?}] is not a string")))?;
            Ok((index, name.to_owned()))
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    entries.sort();
    if entries.iter().enumerate().any(|(i, (index, _))| i != *index) {
        return Err(broken(&env_path, "CLASS_MAP indices must be 0..N without gaps"));
    }
    Ok(entries.into_iter().map(|(_, name)| name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempdir::Dir {
        let dir = tempdir::Dir::new();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        dir
    }

    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let p = std::env::temp_dir().join(format!("sightline-cfg-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const DET: &str = r#"{"project_task_type": "object-detection", "model_type": "yolov8n"}"#;

    #[test]
    fn reads_the_shipped_model_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/shapes/1");
        let c = read_model_dir(&dir).unwrap();
        assert_eq!(c.task, Task::ObjectDetection);
        assert_eq!(c.architecture, Architecture::YoloV8);
        assert_eq!(c.class_names, ["circle", "square", "triangle"]);
        assert_eq!(c.resize, ResizeMode::Letterbox { pad: 114 });
    }

    #[test]
    fn class_map_and_string_encoded_preprocessing() {
        let env = r#"{"PREPROCESSING": "{\"resize\": {\"enabled\": true, \"format\": \"Fit (black edges) in\"}}",
                      "CLASS_MAP": {"1": "dog", "0": "cat"}}"#;
        let dir = folder(&[("model_type.json", DET), ("environment.json", env), ("weights.onnx", "x")]);
        let c = read_model_dir(dir.path()).unwrap();
        assert_eq!(c.class_names, ["cat", "dog"]);
        assert_eq!(c.resize, ResizeMode::Letterbox { pad: 0 });
        assert_eq!(c.adjustments, Adjustments::default());
    }

    #[test]
    fn reads_crop_contrast_and_grayscale() {
        let env = r#"{"PREPROCESSING": {
            "static-crop": {"enabled": true, "x_min": 10, "y_min": 20, "x_max": 90, "y_max": 80},
            "contrast": {"enabled": true, "type": "Adaptive Equalization"},
            "grayscale": {"enabled": true}}}"#;
        let dir = folder(&[
            ("model_type.json", DET),
            ("environment.json", env),
            ("weights.onnx", "x"),
            ("class_names.txt", "a"),
        ]);
        let a = read_model_dir(dir.path()).unwrap().adjustments;
        assert_eq!(a.static_crop, Some(StaticCrop { x_min: 10.0, y_min: 20.0, x_max: 90.0, y_max: 80.0 }));
        assert_eq!((a.contrast, a.grayscale), (Some(Contrast::AdaptiveEqualization), true));
        let off =
            r#"{"PREPROCESSING": {"grayscale": {"enabled": false}, "contrast": {"enabled": false, "type": "x"}}}"#;
        let dir = folder(&[
            ("model_type.json", DET),
            ("environment.json", off),
            ("weights.onnx", "x"),
            ("class_names.txt", "a"),
        ]);
        assert_eq!(read_model_dir(dir.path()).unwrap().adjustments, Adjustments::default());
    }

    #[test]
    fn errors_name_the_file() {
        let dir = folder(&[("model_type.json", "{not json"), ("weights.onnx", "x")]);
        let e = read_model_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("model_type.json") && e.contains("invalid JSON"), "{e}");

        let dir = folder(&[("model_type.json", DET), ("weights.onnx", "x")]);
        let e = read_model_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("class_names.txt"), "{e}");

        let dir = folder(&[("model_type.json", DET), ("class_names.txt", "a\n")]);
        let e = read_model_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("weights.onnx"), "{e}");
    }

    #[test]
    fn yolo26_and_yolov10_are_known_by_roboflow_s_model_types_per_task() {
        let of = |task, model_type| Architecture::for_task(task, model_type);
        assert_eq!(of(Task::ObjectDetection, "yolo26n"), Some(Architecture::YoloEndToEnd));
        assert_eq!(of(Task::ObjectDetection, "yolo26"), Some(Architecture::YoloEndToEnd));
        assert_eq!(of(Task::InstanceSegmentation, "yolo26s-seg"), Some(Architecture::YoloEndToEnd));
        assert_eq!(of(Task::InstanceSegmentation, "yolo26"), None, "Roboflow lists no bare yolo26 for segmentation");
        assert_eq!(of(Task::ObjectDetection, "yolo26n-seg"), None);
        assert_eq!(of(Task::ObjectDetection, "yolov11n"), Some(Architecture::YoloV8));
        assert_eq!(of(Task::ObjectDetection, "yolov10n"), Some(Architecture::YoloEndToEnd));
        assert_eq!(of(Task::InstanceSegmentation, "yolov10n"), None, "Roboflow serves YOLOv10 for detection only");
    }

    #[test]
    fn yolov12_rf_detr_and_the_keypoint_types_are_known_per_task() {
        let of = |task, model_type| Architecture::for_task(task, model_type);
        assert_eq!(of(Task::ObjectDetection, "yolov12n"), Some(Architecture::YoloV8));
        assert_eq!(of(Task::InstanceSegmentation, "yolov12n"), None, "Roboflow serves YOLOv12 for detection only");
        assert_eq!(of(Task::KeypointDetection, "yolo26s-pose"), Some(Architecture::YoloEndToEnd));
        assert_eq!(of(Task::KeypointDetection, "yolo26s"), Some(Architecture::YoloEndToEnd));
        assert_eq!(of(Task::KeypointDetection, "yolov11n-pose"), Some(Architecture::YoloV8));
        assert_eq!(of(Task::KeypointDetection, "yolov5s"), None);
        for t in ["rfdetr", "rfdetr-nano", "rfdetr-base", "rfdetr-2xlarge"] {
            assert_eq!(of(Task::ObjectDetection, t), Some(Architecture::RfDetr), "{t}");
        }
        for t in ["rfdetr", "rfdetr-seg-nano", "rfdetr-seg-preview", "rfdetr-seg-xxlarge"] {
            assert_eq!(of(Task::InstanceSegmentation, t), Some(Architecture::RfDetr), "{t}");
        }
        assert_eq!(of(Task::ObjectDetection, "rfdetr-seg-nano"), None);
        assert_eq!(of(Task::InstanceSegmentation, "rfdetr-nano"), None);
        assert_eq!(of(Task::KeypointDetection, "rfdetr"), None);
        let known = Architecture::known(Task::InstanceSegmentation);
        assert!(known.contains("rfdetr-seg-small") && known.contains("yolo26n-seg"), "{known}");
    }

    #[test]
    fn unknown_architecture_and_resize_are_clear_errors() {
        let dir = folder(&[("model_type.json", r#"{"project_task_type": "object-detection", "model_type": "detr"}"#)]);
        let e = read_model_dir(dir.path()).unwrap_err();
        assert!(matches!(&e, ModelError::Unsupported(m) if m.contains("\"detr\"") && m.contains("yolo26n")), "{e}");

        let env = r#"{"PREPROCESSING": {"resize": {"enabled": true, "format": "Fill (with center crop) in"}}}"#;
        let dir = folder(&[("model_type.json", DET), ("environment.json", env), ("class_names.txt", "a")]);
        assert!(matches!(read_model_dir(dir.path()), Err(ModelError::Unsupported(m)) if m.contains("Fill")));
    }
}
