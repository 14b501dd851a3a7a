//! The newer families (YOLO11, YOLOv12, YOLOv10, YOLO26 both heads, their segmentation and
//! keypoint models, RF-DETR and RF-DETR-seg) through every surface the older ones have, with no
//! special case: the legacy route, `visualize_predictions`, KServe v2 metadata and tensors,
//! `/model/registry` and the metrics.

mod common;

use base64::Engine;
use common::*;
use serde_json::{json, Value};

/// (model, reference file, route of its task, the reference run its shipped folder answers).
const FAMILIES: [(&str, &str, &str, &str); 11] = [
    ("shapes-y11/1", "shapes-det-y11.json", "object_detection", "letterbox/conf0.25/iou0.45"),
    ("shapes-v12/1", "shapes-det-v12.json", "object_detection", "letterbox/conf0.25/iou0.45"),
    ("shapes-v10/1", "shapes-det-v10.json", "object_detection", "letterbox/conf0.25/iou0.45"),
    ("shapes-y26/1", "shapes-det-y26.json", "object_detection", "letterbox/conf0.25/iou0.45"),
    ("shapes-y26-o2m/1", "shapes-det-y26-o2m.json", "object_detection", "letterbox/conf0.25/iou0.45"),
    ("shapes-seg-y11/1", "shapes-seg-y11.json", "instance_segmentation", "letterbox/conf0.25/iou0.45"),
    ("shapes-seg-y26/1", "shapes-seg-y26.json", "instance_segmentation", "letterbox/conf0.25/iou0.45"),
    ("shapes-pose-y11/1", "shapes-pose-y11.json", "keypoints_detection", "letterbox/conf0.25/iou0.45"),
    ("shapes-pose-y26/1", "shapes-pose-y26.json", "keypoints_detection", "letterbox/conf0.25/iou0.45"),
    ("shapes-rfdetr/1", "shapes-rfdetr.json", "object_detection", "stretch/conf0.25/iou0.45"),
    ("shapes-rfdetr-seg/1", "shapes-rfdetr-seg.json", "instance_segmentation", "stretch/conf0.2/iou0.45"),
];

const IMAGE: &str = "shapes_640x480.png";

fn task_type(route: &str) -> &'static str {
    match route {
        "object_detection" => "object-detection",
        "instance_segmentation" => "instance-segmentation",
        _ => "keypoint-detection",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_newer_family_answers_on_the_legacy_route_and_draws_its_predictions() {
    // All eleven stay loaded (the default keeps 8), so the registry lists each at the end.
    let server = Server::start(&repo_root().join("assets/models"), &[("MAX_ACTIVE_MODELS", "16")]).await;
    let mut problems = Vec::new();
    for (model, reference_file, route, run) in FAMILIES {
        let reference: Value =
            serde_json::from_str(&std::fs::read_to_string(data(&format!("reference/{reference_file}"))).unwrap())
                .unwrap();
        let expected: Vec<Det> = reference_detections(&reference, IMAGE, run);
        let (_, conf, iou) = parse_run(run);
        // The legacy route: a bare base64 body, the options in the query (percentages).
        let query = format!("/{model}?confidence={}&overlap={}", conf * 100.0, iou * 100.0);
        let (status, body) = server.post_raw(&query, "text/plain", image_b64(IMAGE).into()).await;
        assert_eq!(status, 200, "{model}: {body}");
        let predicted: Vec<Det> = body["predictions"].as_array().unwrap().iter().map(from_response).collect();
        problems.extend(compare(&expected, &predicted, conf).into_iter().map(|p| format!("{model} legacy: {p}")));

        let mut request = detect_body(model, IMAGE, conf, iou);
        request["visualize_predictions"] = json!(true);
        let (status, body) = server.post_json(&format!("/infer/{route}"), &request).await;
        assert_eq!(status, 200, "{model}: {body}");
        let jpeg = base64::engine::general_purpose::STANDARD
            .decode(body["visualization"].as_str().unwrap_or_else(|| panic!("{model}: no visualization")))
            .unwrap();
        let picture = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((picture.width(), picture.height()), (640, 480), "{model}: drawn on the original frame");
        let predicted: Vec<Det> = body["predictions"].as_array().unwrap().iter().map(from_response).collect();
        problems.extend(compare(&expected, &predicted, conf).into_iter().map(|p| format!("{model} visualized: {p}")));
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));

    let (_, registry) = server.get_json("/model/registry").await;
    let metrics = server.get_text("/metrics").await;
    for (model, _, route, _) in FAMILIES {
        let entry = registry["models"].as_array().unwrap().iter().find(|m| m["model_id"] == model);
        let entry = entry.unwrap_or_else(|| panic!("{model} not in the registry: {registry}"));
        assert_eq!(entry["task_type"], task_type(route), "{entry}");
        assert_eq!(entry["state"], "ready", "{entry}");
        assert_eq!(entry["execution_provider"], "CPUExecutionProvider", "{entry}");
        assert_eq!(entry["device"], "cpu", "{entry}");
        assert!(entry["input_width"].as_u64().is_some_and(|w| w >= 128), "{entry}");
        let info = format!(
            r#"sightline_model_info{{device="cpu",execution_provider="CPUExecutionProvider",model_id="{model}",task="{}"}} 1"#,
            task_type(route)
        );
        assert!(metrics.contains(&info), "{info} missing");
        let inferred = format!(r#"sightline_stage_duration_seconds_count{{model_id="{model}",stage="inference"}} 2"#);
        assert!(metrics.lines().any(|l| l == inferred), "{inferred} missing");
    }
}

/// KServe v2: each model's metadata names its real input and outputs, and a tensor request runs
/// the graph as it is (RF-DETR's `dets` / `labels` / `masks`, YOLO's `output0` and prototypes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_newer_family_serves_its_tensors_over_kserve_v2() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    for (model, _, _, _) in FAMILIES {
        let (name, version) = model.split_once('/').unwrap();
        let path = format!("/v2/models/{name}/versions/{version}");
        let (status, metadata) = server.get_json(&path).await;
        assert_eq!(status, 200, "{model}: {metadata}");
        let input = &metadata["inputs"][0];
        let shape: Vec<i64> = input["shape"].as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect();
        assert_eq!(shape.len(), 4, "{model}: {metadata}");
        let (h, w) = (shape[2] as usize, shape[3] as usize);
        let body = json!({"inputs": [{
            "name": input["name"], "datatype": "FP32", "shape": [1, 3, h, w], "data": vec![0.0f32; 3 * h * w],
        }]});
        let (status, answer) = server.post_json(&format!("{path}/infer"), &body).await;
        assert_eq!(status, 200, "{model}: {answer}");
        let outputs: Vec<&str> =
            answer["outputs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
        let declared: Vec<&str> =
            metadata["outputs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
        assert_eq!(outputs, declared, "{model}: every output, in the graph's order");
        if model.starts_with("shapes-rfdetr") {
            assert_eq!(&outputs[..2], ["dets", "labels"], "{model}");
            assert_eq!(answer["outputs"][0]["shape"], json!([1, 100, 4]), "{model}: 100 queries");
        }
    }
}
