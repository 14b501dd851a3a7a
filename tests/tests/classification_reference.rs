//! The served classifier against the Python reference (stretch preprocessing, as `shapes-cls/1`
//! ships), over real HTTP, for every classification fixture image; plus the response shapes of
//! single- and multi-label models.

mod common;

use common::*;
use serde_json::{json, Value};

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data("reference/shapes-cls-v8.json")).unwrap()).unwrap()
}

fn classify(model: &str, image: &str, confidence: f64) -> Value {
    json!({"model_id": model, "image": {"type": "base64", "value": image_b64(&format!("cls/{image}"))}, "confidence": confidence})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top1_and_confidences_match_the_reference_for_every_image() {
    check_against_reference("cpu").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_openvino_top1_and_confidences_match_the_reference() {
    check_against_reference("openvino").await;
}

/// Run by scripts/gpu-check.sh on a host with an NVIDIA GPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an NVIDIA GPU and the make setup-gpu libraries: scripts/gpu-check.sh"]
async fn on_cuda_top1_and_confidences_match_the_reference() {
    check_against_reference("cuda").await;
}

async fn check_against_reference(provider: &str) {
    let server = Server::start_on(provider, &repo_root().join("assets/models"), &[]).await;
    let reference = reference();
    let images = reference["images"].as_object().unwrap();
    assert_eq!(images.len(), 12);
    for (image, entry) in images {
        let expected = &entry["stretch"];
        let (status, v) = server.post_json("/infer/classification", &classify("shapes-cls/1", image, 0.0)).await;
        assert_eq!(status, 200, "{image}: {v}");
        assert_eq!(v["top"], expected["top1"]["class_name"], "{image}: top-1");
        assert_eq!(v["image"], json!({"width": entry["orig_wh"][0], "height": entry["orig_wh"][1]}));
        let predictions = v["predictions"].as_array().unwrap();
        assert_eq!(predictions.len(), 3, "threshold 0 shows every class: {v}");
        for p in predictions {
            let class_id = p["class_id"].as_u64().unwrap() as usize;
            let want = expected["probs"][class_id].as_f64().unwrap();
            let got = p["confidence"].as_f64().unwrap();
            assert!((got - want).abs() <= 0.005, "{image} class {class_id}: {got} vs reference {want}");
        }
        assert_eq!(v["confidence"], predictions[0]["confidence"]);
    }
    server.assert_all_run_on(ort_name(provider)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_and_multi_label_response_shapes() {
    let models = TempDir::new("cls");
    copy_model(models.path(), "shapes-cls/1", "shapes-cls/1", |_| {});
    copy_model(models.path(), "shapes-cls/1", "shapes-multi/1", |d| {
        let env = std::fs::read_to_string(d.join("environment.json"))
            .unwrap()
            .replace("\"MULTICLASS\": false", "\"MULTICLASS\": true");
        std::fs::write(d.join("environment.json"), env).unwrap();
    });
    let server = Server::start(models.path(), &[]).await;

    // Default threshold 0.4: only the winning class is listed, rounded to 4 decimals.
    let body = json!({"model_id": "shapes-cls/1", "image": {"type": "base64", "value": image_b64("cls/cls_200x150_square.png")}});
    let (status, v) = server.post_json("/infer/classification", &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["top"], "square");
    assert_eq!(v["predictions"].as_array().unwrap().len(), 1, "{v}");
    let c = v["confidence"].as_f64().unwrap();
    assert_eq!(c, (c * 1e4).round() / 1e4, "rounded to 4 decimals");
    assert_eq!(v["image"], json!({"width": 200, "height": 150}));

    // A threshold above every score: nothing listed, empty top.
    let (_, v) =
        server.post_json("/infer/classification", &classify("shapes-cls/1", "cls_200x150_square.png", 1.0)).await;
    assert_eq!(
        (v["top"].as_str(), v["confidence"].as_f64(), v["predictions"].as_array().map(Vec::len)),
        (Some(""), Some(0.0), Some(0))
    );

    // Multi-label: every class by name, predicted classes strictly above the threshold,
    // width and height not swapped (Roboflow's legacy backend swaps them).
    let (status, v) =
        server.post_json("/infer/classification", &classify("shapes-multi/1", "cls_200x150_square.png", 0.5)).await;
    assert_eq!(status, 200, "{v}");
    let predictions = v["predictions"].as_object().expect("an object keyed by class name");
    assert_eq!(predictions.len(), 3);
    assert_eq!(predictions["square"]["class_id"], 1);
    assert!(predictions["square"]["confidence"].as_f64().unwrap() > 0.99);
    assert_eq!(v["predicted_classes"], json!(["square"]));
    assert_eq!(v["image"], json!({"width": 200, "height": 150}));

    // A classifier on the detection route is a clear 400.
    let (status, v) =
        server.post_json("/infer/object_detection", &classify("shapes-cls/1", "cls_200x150_square.png", 0.5)).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("classification"), "{v}");
}
