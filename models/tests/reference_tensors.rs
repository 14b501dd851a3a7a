//! Each stage against the reference pipeline's own tensors (`tests/data/raw`): preprocessing against
//! its input tensor, ONNX Runtime against its raw output, decode + NMS + back-mapping against its detections.

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, Axis, IxDyn};
use serde_json::Value;
use sightline_engine::{build_session, init_runtime};
use sightline_models::image::decode::decode_image;
use sightline_models::image::letterbox::{Placement, ResizeMode};
use sightline_models::image::tensor::to_input_tensor;
use sightline_models::tasks::yolo::nms::non_max_suppression;
use sightline_models::tasks::yolo::output::{decode_candidates, YoloLayout};
use sightline_models::DecodeLimits;

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data").join(p)
}

/// Reads a little-endian float32 C-order `.npy` file.
fn read_npy(path: &Path) -> ArrayD<f32> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"), "{header}");
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> = shape_text.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let values: Vec<f32> =
        bytes[10 + header_len..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap()
}

fn reference_detections(run: &str) -> Vec<Value> {
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(data("reference/shapes-det-v8.json")).unwrap()).unwrap();
    r["images"]["shapes_640x480.png"]["runs"][run].as_array().unwrap().clone()
}

#[test]
fn preprocessing_matches_the_reference_input_tensor() {
    let expected = read_npy(&data("raw/input_letterbox_shapes_640x480.npy"));
    let image = decode_image(&std::fs::read(data("images/shapes_640x480.png")).unwrap(), true, DecodeLimits::default())
        .unwrap();
    let (tensor, placement) = to_input_tensor(&image, ResizeMode::Letterbox { pad: 114 }, 256, 256);
    assert_eq!((placement.new_w, placement.new_h, placement.left, placement.top), (256, 192, 0, 32));
    assert_eq!(tensor.shape(), expected.shape());
    let diffs: Vec<f32> = tensor.iter().zip(expected.iter()).map(|(a, b)| (a - b).abs()).collect();
    let max = diffs.iter().cloned().fold(0.0, f32::max);
    let off = diffs.iter().filter(|d| **d > 1e-6).count();
    // OpenCV's SIMD and scalar paths round differently in a few places: at most one grey level.
    assert!(max <= 1.0 / 255.0 + 1e-6, "max difference {max}");
    assert!((off as f64) < 0.01 * diffs.len() as f64, "{off} of {} values differ", diffs.len());
}

#[test]
fn onnx_runtime_reproduces_the_reference_raw_output() {
    let dylib =
        std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH is not set: run `make test` (it runs `make setup`)");
    init_runtime(Path::new(&dylib)).unwrap();
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/shapes/1/weights.onnx");
    let (mut session, shape) = build_session(&weights, 1).unwrap();
    assert_eq!(shape.input_dims, [1, 3, 256, 256]);
    assert_eq!(shape.output_dims, [vec![1, 7, 1344]]);
    let input = read_npy(&data("raw/input_letterbox_shapes_640x480.npy")).into_dimensionality().unwrap();
    let outputs = session.run(&input).unwrap();
    let expected = read_npy(&data("raw/shapes-det-v8__shapes_640x480__output0.npy"));
    assert_eq!(outputs[0].shape(), expected.shape());
    let max = outputs[0].iter().zip(expected.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(max < 1e-3, "max difference {max}");
}

#[test]
fn decode_and_nms_on_the_reference_raw_output_give_the_reference_detections() {
    let raw = read_npy(&data("raw/shapes-det-v8__shapes_640x480__output0.npy"));
    let output = raw.index_axis(Axis(0), 0).into_dimensionality().unwrap();
    let placement = Placement::new(ResizeMode::Letterbox { pad: 114 }, 640, 480, 256, 256);
    for (run, conf, iou) in [("letterbox/conf0.25/iou0.45", 0.25, 0.45), ("letterbox/conf0.5/iou0.7", 0.5, 0.7)] {
        let kept = non_max_suppression(decode_candidates(YoloLayout::V8, output, 3, conf), iou, false, 3000, 300);
        let expected = reference_detections(run);
        assert_eq!(kept.len(), expected.len(), "{run}");
        for (k, e) in kept.iter().zip(&expected) {
            let b = placement.box_to_original(k.bbox);
            let eb: Vec<f64> = e["bbox_xyxy"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            for i in 0..4 {
                assert!((f64::from(b[i]) - eb[i]).abs() < 0.01, "{run}: {b:?} vs {eb:?}");
            }
            assert!((f64::from(k.score) - e["confidence"].as_f64().unwrap()).abs() < 1e-4);
            assert_eq!(k.class_id as u64, e["class_id"].as_u64().unwrap());
        }
    }
}
