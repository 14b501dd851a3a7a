//! The PP-OCR pipeline (`ppocr/4`, the default OCR model) against the rapidocr reference, over real
//! HTTP: every line the reference read correctly is read the same, in the same place; and the
//! `/doctr/ocr` response shape.

mod common;

use common::*;
use serde_json::{json, Value};

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data("reference/ocr.json")).unwrap()).unwrap()
}

fn ocr_body(image: &str) -> Value {
    json!({"image": {"type": "base64", "value": image_b64(&format!("ocr/{image}"))}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_the_reference_read_correctly_is_read_the_same() {
    check_against_reference("cpu").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_openvino_every_line_the_reference_read_correctly_is_read_the_same() {
    check_against_reference("openvino").await;
}

/// Run by scripts/gpu-check.sh on a host with an NVIDIA GPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an NVIDIA GPU and the make setup-gpu libraries: scripts/gpu-check.sh"]
async fn on_cuda_every_line_the_reference_read_correctly_is_read_the_same() {
    check_against_reference("cuda").await;
}

async fn check_against_reference(provider: &str) {
    let server = Server::start_on(provider, &repo_root().join("assets/models"), &[]).await;
    let reference = reference();
    let images = reference["images"].as_object().unwrap();
    assert_eq!(images.len(), 11);
    let mut problems = Vec::new();
    let (mut checked, mut read_correctly) = (0, 0);
    for (image, entry) in images {
        let (status, v) = server.post_json("/infer/ocr", &ocr_body(image)).await;
        assert_eq!(status, 200, "{image}: {v}");
        let lines = v["predictions"].as_array().unwrap();
        for truth in entry["vs_ground_truth"].as_array().unwrap() {
            if truth["edit_distance"] != 0 {
                continue; // the reference itself misread this line
            }
            read_correctly += 1;
            let text = truth["pred"].as_str().unwrap();
            if truth["n_pred_boxes"] != 1 {
                // The reference read this line as several boxes: the same words must be read.
                let words: Vec<String> = lines
                    .iter()
                    .flat_map(|l| l["text"].as_str().unwrap().split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                    .collect();
                let missing: Vec<&str> = text.split_whitespace().filter(|w| !words.iter().any(|o| o == w)).collect();
                if missing.is_empty() {
                    checked += 1;
                } else {
                    problems.push(format!("{image}: words {missing:?} of {text:?} not read; got {words:?}"));
                }
                continue;
            }
            let ours = lines.iter().find(|l| l["text"] == text);
            let Some(ours) = ours else {
                problems.push(format!(
                    "{image}: {text:?} not read; got {:?}",
                    lines.iter().map(|l| &l["text"]).collect::<Vec<_>>()
                ));
                continue;
            };
            checked += 1;
            // In the same place: each corner within 3 px of the reference's quad.
            let quad =
                entry["pipeline"].as_array().unwrap().iter().find(|p| p["text"] == text).unwrap()["quad"].clone();
            for (corner, point) in ours["points"].as_array().unwrap().iter().enumerate() {
                let (dx, dy) = (
                    point["x"].as_f64().unwrap() - quad[corner][0].as_f64().unwrap(),
                    point["y"].as_f64().unwrap() - quad[corner][1].as_f64().unwrap(),
                );
                if dx.abs() > 3.0 || dy.abs() > 3.0 {
                    problems.push(format!("{image}: {text:?} corner {corner} off by ({dx}, {dy})"));
                }
            }
        }
        // Reading order: top to bottom.
        let tops: Vec<f64> = lines.iter().map(|l| l["points"][0]["y"].as_f64().unwrap()).collect();
        assert!(tops.windows(2).all(|w| w[1] > w[0] - 10.0), "{image}: reading order {tops:?}");
    }
    assert!(read_correctly >= 10, "the reference reads {read_correctly} lines exactly");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(checked, read_correctly);
    server.assert_all_run_on(ort_name(provider)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctr_route_answers_in_roboflow_shape() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let (status, v) = server.post_json("/doctr/ocr", &ocr_body("ocr_block_3lines_serif_30.png")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"], "account limit 34.18 description #177 order Shipping version amount customer");
    assert!(
        v.as_object().unwrap().contains_key("parent_id") && v["parent_id"].is_null(),
        "parent_id is always present: {v}"
    );
    assert!(v.get("inference_id").is_none() && v.get("predictions").is_none());
    assert!(v["time"].as_f64().unwrap() > 0.0);

    let mut body = ocr_body("ocr_line_sans_32.png");
    body["generate_bounding_boxes"] = json!(true);
    body["doctr_version_id"] = json!("default");
    let (_, v) = server.post_json("/doctr/ocr", &body).await;
    assert_eq!(v["image"], json!({"width": 640, "height": 120}));
    let p = &v["predictions"][0];
    assert_eq!((p["class"].as_str(), p["class_id"].as_u64()), (Some("Customer speed"), Some(0)));
    // The reference quad is 47..317 x 45..85.
    assert!(
        (p["x"].as_f64().unwrap() - 182.0).abs() <= 3.0 && (p["width"].as_f64().unwrap() - 270.0).abs() <= 6.0,
        "{p}"
    );

    // Lists answer lists; a model that is not OCR is a clear 400.
    let body =
        json!({"image": [ocr_body("ocr_line_sans_32.png")["image"], ocr_body("ocr_line_serif_20.png")["image"]]});
    let (_, v) = server.post_json("/doctr/ocr", &body).await;
    assert_eq!(
        v.as_array().map(|a| a.iter().map(|i| i["result"].as_str().unwrap().to_owned()).collect::<Vec<_>>()),
        Some(vec!["Customer speed".to_owned(), "TOTAL REFERENCE PAYMENT FOR".to_owned()])
    );
    let mut body = ocr_body("ocr_line_sans_32.png");
    body["model_id"] = json!("shapes/1");
    assert_eq!(server.post_json("/doctr/ocr", &body).await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direction_classifier_is_optional() {
    let models = TempDir::new("ocr");
    copy_model(models.path(), "ppocr/4", "ppocr-nocls/4", |d| std::fs::remove_file(d.join("cls.onnx")).unwrap());
    let server = Server::start(models.path(), &[]).await;
    let mut body = ocr_body("ocr_line_sans_32.png");
    body["model_id"] = json!("ppocr-nocls/4");
    let (status, v) = server.post_json("/infer/ocr", &body).await;
    assert_eq!((status, v["result"].as_str()), (200, Some("Customer speed")), "{v}");
    // Without it an upside-down line is not turned: the reference's correct reading is lost.
    let mut body = ocr_body("ocr_rot_180_line.png");
    body["model_id"] = json!("ppocr-nocls/4");
    let (_, v) = server.post_json("/infer/ocr", &body).await;
    assert!(!v["result"].as_str().unwrap().contains("serial closed"), "{v}");
}
