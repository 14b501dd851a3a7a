//! Roboflow's own client, `inference-sdk` (installed into .venv by `make setup`), against the real
//! binary: server info, the model-management calls, `infer` on one image and on a list for every
//! CV task, `ocr_image`, and the v0 (legacy route) flow. Answers are checked against the fixture
//! references as the task-model tests check them.

mod common;

use common::*;
use serde_json::{json, Value};

/// Runs the calls through the SDK (tests/python/sdk_driver.py); one result per call.
fn sdk(server: &Server, mut spec: Value) -> Vec<Value> {
    spec["api_url"] = json!(server.base);
    let driver = repo_root().join("tests/python/sdk_driver.py");
    let out = venv_python(&[driver.to_str().unwrap()], spec.to_string().as_bytes());
    assert!(out.status.success(), "sdk driver failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ok(result: &Value) -> &Value {
    result.get("ok").unwrap_or_else(|| panic!("the client raised: {result}"))
}

fn image_path(name: &str) -> String {
    data(&format!("images/{name}")).display().to_string()
}

fn reference(file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data(&format!("reference/{file}"))).unwrap()).unwrap()
}

/// Boxes (and keypoints) of one answer against the reference run `run` for `image`.
fn detection_problems(answer: &Value, reference: &Value, image: &str, run: &str) -> Vec<String> {
    let entry = &reference["images"][image];
    assert_eq!(answer["image"], json!({"width": entry["orig_wh"][0], "height": entry["orig_wh"][1]}), "{image}");
    let expected: Vec<Det> = entry["runs"][run].as_array().unwrap().iter().map(from_reference).collect();
    let predicted: Vec<Det> = answer["predictions"].as_array().unwrap().iter().map(from_response).collect();
    let (_, conf, _) = parse_run(run);
    compare(&expected, &predicted, conf).into_iter().map(|p| format!("{image} {run}: {p}")).collect()
}

const RUN: &str = "letterbox/conf0.25/iou0.45";
const IMAGES: [&str; 3] = ["shapes_640x480.png", "shapes_256_03.png", "shapes_exif6_480x640.jpg"];

fn configuration() -> Value {
    json!({"confidence_threshold": 0.25, "iou_threshold": 0.45})
}

fn single_and_list(model: &str, extra: Value) -> Value {
    let mut configuration = configuration();
    configuration.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!({"calls": [
        {"method": "infer", "args": [image_path(IMAGES[0])], "kwargs": {"model_id": model}, "configuration": configuration},
        {"method": "infer", "args": [IMAGES.map(image_path)], "kwargs": {"model_id": model}},
    ]})
}

async fn assets_server() -> Server {
    Server::start(&repo_root().join("assets/models"), &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_info_and_model_management() {
    let server = assets_server().await;
    let results = sdk(
        &server,
        json!({"calls": [
            {"method": "get_server_info"},
            {"method": "list_loaded_models"},
            {"method": "load_model", "args": ["shapes/1"]},
            {"method": "load_model", "args": ["shapes-cls/1"]},
            {"method": "list_loaded_models"},
            {"method": "unload_model", "args": ["shapes/1"]},
            {"method": "unload_all_models"},
            {"method": "load_model", "args": ["missing/1"]},
        ]}),
    );
    let info = ok(&results[0]);
    for field in ["name", "version", "uuid"] {
        assert!(info[field].as_str().is_some_and(|s| !s.is_empty()), "{info}");
    }
    let ids = |r: &Value| -> Vec<(String, String)> {
        ok(r)["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["model_id"].as_str().unwrap().to_owned(), m["task_type"].as_str().unwrap().to_owned()))
            .collect()
    };
    assert!(ids(&results[1]).is_empty());
    assert_eq!(ids(&results[2]), [("shapes/1".into(), "object-detection".into())]);
    let both = [("shapes/1".into(), "object-detection".into()), ("shapes-cls/1".into(), "classification".into())];
    assert_eq!(ids(&results[3]), both);
    assert_eq!(ids(&results[4]), both);
    assert_eq!(ids(&results[5]), [("shapes-cls/1".into(), "classification".into())]);
    assert!(ids(&results[6]).is_empty());
    assert_eq!(results[7]["status"], 404, "{}", results[7]);
    assert!(results[7]["message"].as_str().unwrap().contains("missing/1"), "{}", results[7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_and_keypoints_match_the_references_in_v1_and_v0_modes() {
    let server = assets_server().await;
    let mut problems = Vec::new();
    // RF-DETR is shipped as Roboflow exports it, stretched: its reference run is the stretch one.
    let models = [
        ("shapes/1", "shapes-det-v8.json", RUN),
        ("shapes-pose/1", "shapes-pose-v8.json", RUN),
        ("shapes-y26/1", "shapes-det-y26.json", RUN),
        ("shapes-rfdetr/1", "shapes-rfdetr.json", "stretch/conf0.25/iou0.45"),
    ];
    for (model, reference_file, run) in models {
        let reference = reference(reference_file);
        let results = sdk(&server, single_and_list(model, json!({})));
        problems.extend(detection_problems(ok(&results[0]), &reference, IMAGES[0], run));
        let list = ok(&results[1]).as_array().unwrap();
        assert_eq!(list.len(), 3, "one answer per image, in order");
        for (answer, image) in list.iter().zip(IMAGES) {
            problems.extend(detection_problems(answer, &reference, image, run));
        }
    }
    // v0: the legacy route, bare base64 body, options in the query.
    let mut spec = single_and_list("shapes/1", json!({}));
    spec["v0"] = json!(true);
    spec["api_key"] = json!("any-key");
    let results = sdk(&server, spec);
    let metrics = server.get_text("/metrics").await;
    let legacy_posts = metric_value(
        &metrics,
        r#"sightline_http_requests_total{handler="/{dataset_id}/{version_id}",method="POST",status="2xx"}"#,
    );
    assert_eq!(legacy_posts, Some(4.0), "v0 mode sends one legacy request per image:\n{metrics}");
    let reference = reference("shapes-det-v8.json");
    problems.extend(detection_problems(ok(&results[0]), &reference, IMAGES[0], RUN));
    for (answer, image) in ok(&results[1]).as_array().unwrap().iter().zip(IMAGES) {
        problems.extend(detection_problems(answer, &reference, image, RUN));
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segmentation_boxes_and_masks_match_the_reference() {
    let server = assets_server().await;
    let reference = reference("shapes-seg-v8.json");
    let results = sdk(&server, single_and_list("shapes-seg/1", json!({"response_mask_format": "rle"})));
    let mut answers = vec![(ok(&results[0]).clone(), IMAGES[0])];
    answers.extend(ok(&results[1]).as_array().unwrap().iter().cloned().zip(IMAGES));
    let (mut problems, mut masks) = (Vec::new(), 0);
    for (answer, image) in &answers {
        problems.extend(detection_problems(answer, &reference, image, RUN));
        let expected = reference["images"][*image]["runs"][RUN].as_array().unwrap();
        let predictions = answer["predictions"].as_array().unwrap();
        let predicted: Vec<Det> = predictions.iter().map(from_response).collect();
        for entry in expected {
            let Some(i) = best_match(&from_reference(entry), &predicted) else { continue };
            let (_, _, ours) = coco_mask(&predictions[i]["rle"]);
            let (_, _, theirs) = reference_mask(&entry["mask_rle"]);
            let m = mask_iou(&ours, &theirs);
            if m < 0.95 {
                problems.push(format!("{image}: mask IoU {m:.4}"));
            }
            masks += 1;
        }
    }
    assert!(masks >= 8, "compared only {masks} masks");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classification_matches_the_reference() {
    let server = assets_server().await;
    let reference = reference("shapes-cls-v8.json");
    let images = ["cls/cls_128_00_circle.png", "cls/cls_200x150_square.png", "cls/cls_300x300_triangle.jpg"];
    let results = sdk(
        &server,
        json!({"calls": [
            {"method": "infer", "args": [image_path(images[0])], "kwargs": {"model_id": "shapes-cls/1"},
             "configuration": {"confidence_threshold": 0.0}},
            {"method": "infer", "args": [images.map(image_path)], "kwargs": {"model_id": "shapes-cls/1"}},
        ]}),
    );
    let mut answers = vec![(ok(&results[0]).clone(), images[0])];
    answers.extend(ok(&results[1]).as_array().unwrap().iter().cloned().zip(images));
    for (answer, image) in answers {
        let expected = &reference["images"][image.trim_start_matches("cls/")]["stretch"];
        assert_eq!(answer["top"], expected["top1"]["class_name"], "{image}: {answer}");
        for p in answer["predictions"].as_array().unwrap() {
            let want = expected["probs"][p["class_id"].as_u64().unwrap() as usize].as_f64().unwrap();
            assert!((p["confidence"].as_f64().unwrap() - want).abs() <= 0.005, "{image}: {p} vs {want}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocr_image_reads_what_the_reference_reads() {
    let server = assets_server().await;
    let reference = reference("ocr.json");
    let images = ["ocr_line_sans_32.png", "ocr_block_4lines_sans_24.png"];
    let calls: Vec<Value> =
        images.iter().map(|i| json!({"method": "ocr_image", "args": [image_path(&format!("ocr/{i}"))]})).collect();
    let results = sdk(&server, json!({ "calls": calls }));
    for (result, image) in results.iter().zip(images) {
        let expected: Vec<&str> = reference["images"][image]["pipeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line["text"].as_str().unwrap())
            .collect();
        assert_eq!(ok(result)["result"], expected.join(" "), "{image}");
    }
}
