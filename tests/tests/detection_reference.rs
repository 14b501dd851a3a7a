//! The served detection-like models against the Python reference outputs, over real HTTP, for every
//! fixture image (all sizes, the EXIF-rotated one, the empty one) and every reference run:
//! YOLOv8, YOLOv8 with a dynamic batch axis, YOLOv5, YOLO11, YOLOv10, YOLOv12, YOLO26 with its
//! one-to-one (NMS-free) and its one-to-many head, RF-DETR, and YOLOv8-, YOLO11- and YOLO26-pose
//! (keypoints within 1.5 px).

mod common;

use common::*;
use serde_json::{json, Value};

fn reference_of(file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data(&format!("reference/{file}"))).unwrap()).unwrap()
}

fn reference() -> Value {
    reference_of("shapes-det-v8.json")
}

/// Posts every image of `reference_file` under every run to `model` (letterbox, as shipped) and to a
/// stretch copy of it, and compares with the reference.
async fn check_against_reference(model: &str, reference_file: &str, route: &str, provider: &str) {
    check_variants_against_reference(model, reference_file, route, provider, ort_name(provider), &ShippedAs::Letterbox)
        .await;
}

/// As [`check_against_reference`], with the deployment's provider list `providers`, the provider
/// the model must end up running on, and the resize it is shipped with (the other one is served
/// from a copy of the folder with that environment).
async fn check_variants_against_reference(
    model: &str,
    reference_file: &str,
    route: &str,
    providers: &str,
    runs_on: &str,
    shipped: &ShippedAs,
) {
    let models = TempDir::new("ref");
    let (letterbox, stretch) = copy_resize_variants(models.path(), model, shipped);
    let server = Server::start_on(providers, models.path(), &[]).await;
    let reference = reference_of(reference_file);
    let images = reference["images"].as_object().unwrap();
    assert_eq!(images.len(), 15, "every fixture image is covered");

    let mut problems = Vec::new();
    let mut compared = 0;
    for (image, entry) in images {
        let (orig_w, orig_h) = (entry["orig_wh"][0].as_u64().unwrap(), entry["orig_wh"][1].as_u64().unwrap());
        for (run, expected) in entry["runs"].as_object().unwrap() {
            let (mode, conf, iou) = parse_run(run);
            let id = if mode == "letterbox" { letterbox.as_str() } else { stretch.as_str() };
            let (status, body) = server.post_json(route, &detect_body(id, image, conf, iou)).await;
            assert_eq!(status, 200, "{model} {image} {run}: {body}");
            assert_eq!(body["image"], json!({"width": orig_w, "height": orig_h}), "{image}: original-frame size");
            let predicted: Vec<Det> = body["predictions"].as_array().unwrap().iter().map(from_response).collect();
            let expected: Vec<Det> = expected.as_array().unwrap().iter().map(from_reference).collect();
            let confidences: Vec<f64> = predicted.iter().map(|d| d.confidence).collect();
            assert!(confidences.windows(2).all(|w| w[0] >= w[1]), "{image} {run}: sorted by confidence");
            for p in &predicted {
                // The response's centre and size give the corners back within float rounding.
                let inside = p.bbox[0] >= -1e-3
                    && p.bbox[1] >= -1e-3
                    && p.bbox[2] <= orig_w as f64 + 1e-3
                    && p.bbox[3] <= orig_h as f64 + 1e-3;
                assert!(inside, "{image}: box clipped to the image: {p:?}");
            }
            problems.extend(
                compare(&expected, &predicted, conf).into_iter().map(|p| format!("{model} {image} {run}: {p}")),
            );
            compared += expected.len();
        }
    }
    assert!(compared >= 80, "compared only {compared} reference detections");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    server.assert_all_run_on(runs_on).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolov8_detections_match_the_reference_for_every_image_and_run() {
    check_against_reference("shapes/1", "shapes-det-v8.json", "/infer/object_detection", "cpu").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolov8_with_a_dynamic_batch_axis_matches_its_reference() {
    check_against_reference("shapes-dyn/1", "shapes-det-v8-dyn.json", "/infer/object_detection", "cpu").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolov5_detections_match_the_reference_for_every_image_and_run() {
    check_against_reference("shapes-det-v5/1", "shapes-det-v5.json", "/infer/object_detection", "cpu").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolo11_detections_match_the_reference() {
    check_against_reference("shapes-y11/1", "shapes-det-y11.json", "/infer/object_detection", "cpu").await;
}

/// YOLOv12: area-attention blocks, the v8 head layout, NMS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolov12_detections_match_the_reference() {
    check_against_reference("shapes-v12/1", "shapes-det-v12.json", "/infer/object_detection", "cpu").await;
}

/// The one-to-one head: no NMS, the graph's own selection above the confidence (two classes on one
/// box stay two answers, as ultralytics gives them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolo26_end_to_end_detections_match_the_reference() {
    check_against_reference("shapes-y26/1", "shapes-det-y26.json", "/infer/object_detection", "cpu").await;
}

/// The same weights exported with the one-to-many head: told apart by the output's shape, and
/// decoded with NMS like v8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolo26_one_to_many_detections_match_the_reference() {
    check_against_reference("shapes-y26-o2m/1", "shapes-det-y26-o2m.json", "/infer/object_detection", "cpu").await;
}

/// YOLOv10's one-to-one head, the same layout as YOLO26's: no NMS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolov10_end_to_end_detections_match_the_reference() {
    check_against_reference("shapes-v10/1", "shapes-det-v10.json", "/infer/object_detection", "cpu").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_openvino_yolo11_yolov12_yolo26_and_yolov10_detections_match_their_references() {
    check_against_reference("shapes-y11/1", "shapes-det-y11.json", "/infer/object_detection", "openvino").await;
    check_against_reference("shapes-y26/1", "shapes-det-y26.json", "/infer/object_detection", "openvino").await;
    check_against_reference("shapes-y26-o2m/1", "shapes-det-y26-o2m.json", "/infer/object_detection", "openvino").await;
    check_against_reference("shapes-v12/1", "shapes-det-v12.json", "/infer/object_detection", "openvino").await;
    check_against_reference("shapes-v10/1", "shapes-det-v10.json", "/infer/object_detection", "openvino").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolov8_pose_boxes_and_keypoints_match_the_reference() {
    check_against_reference("shapes-pose/1", "shapes-pose-v8.json", "/infer/keypoints_detection", "cpu").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_openvino_yolov8_v5_and_dynamic_batch_detections_match_their_references() {
    check_against_reference("shapes/1", "shapes-det-v8.json", "/infer/object_detection", "openvino").await;
    check_against_reference("shapes-dyn/1", "shapes-det-v8-dyn.json", "/infer/object_detection", "openvino").await;
    check_against_reference("shapes-det-v5/1", "shapes-det-v5.json", "/infer/object_detection", "openvino").await;
}

/// Run by scripts/gpu-check.sh on a host with an NVIDIA GPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an NVIDIA GPU and the make setup-gpu libraries: scripts/gpu-check.sh"]
async fn on_cuda_every_detection_model_matches_its_reference() {
    check_against_reference("shapes/1", "shapes-det-v8.json", "/infer/object_detection", "cuda").await;
    check_against_reference("shapes-dyn/1", "shapes-det-v8-dyn.json", "/infer/object_detection", "cuda").await;
    check_against_reference("shapes-det-v5/1", "shapes-det-v5.json", "/infer/object_detection", "cuda").await;
    check_against_reference("shapes-pose/1", "shapes-pose-v8.json", "/infer/keypoints_detection", "cuda").await;
    check_against_reference("shapes-y11/1", "shapes-det-y11.json", "/infer/object_detection", "cuda").await;
    check_against_reference("shapes-y26/1", "shapes-det-y26.json", "/infer/object_detection", "cuda").await;
    check_against_reference("shapes-y26-o2m/1", "shapes-det-y26-o2m.json", "/infer/object_detection", "cuda").await;
    check_against_reference("shapes-v10/1", "shapes-det-v10.json", "/infer/object_detection", "cuda").await;
    check_against_reference("shapes-v12/1", "shapes-det-v12.json", "/infer/object_detection", "cuda").await;
    check_against_reference("shapes-pose-y11/1", "shapes-pose-y11.json", "/infer/keypoints_detection", "cuda").await;
    check_against_reference("shapes-pose-y26/1", "shapes-pose-y26.json", "/infer/keypoints_detection", "cuda").await;
    check_rfdetr("cuda", "CUDAExecutionProvider").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_openvino_pose_boxes_and_keypoints_match_the_reference() {
    check_against_reference("shapes-pose/1", "shapes-pose-v8.json", "/infer/keypoints_detection", "openvino").await;
}

/// YOLO11-pose: the v8 head layout, `(4 + C + 3k, N)`, with NMS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolo11_pose_boxes_and_keypoints_match_the_reference() {
    check_against_reference("shapes-pose-y11/1", "shapes-pose-y11.json", "/infer/keypoints_detection", "cpu").await;
}

/// YOLO26-pose's one-to-one head, `(300, 6 + 3k)`: keypoints after the box, score and class, no NMS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolo26_end_to_end_pose_boxes_and_keypoints_match_the_reference() {
    check_against_reference("shapes-pose-y26/1", "shapes-pose-y26.json", "/infer/keypoints_detection", "cpu").await;
}

/// OpenVINO compiles YOLO11-pose; it refuses YOLO26-pose's one-to-one head (a `GatherElements`
/// whose shapes it cannot infer, as for YOLO26-seg), so `openvino,cpu` serves that one on the CPU
/// provider, still matching the reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_openvino_yolo11_and_yolo26_pose_match_their_references() {
    check_against_reference("shapes-pose-y11/1", "shapes-pose-y11.json", "/infer/keypoints_detection", "openvino")
        .await;
    let (model, route, shipped) = ("shapes-pose-y26/1", "/infer/keypoints_detection", &ShippedAs::Letterbox);
    check_variants_against_reference(
        model,
        "shapes-pose-y26.json",
        route,
        "openvino,cpu",
        "CPUExecutionProvider",
        shipped,
    )
    .await;
}

/// RF-DETR as Roboflow exports it: stretched to its input, ImageNet-normalised, no NMS (the best
/// query x class pairs), Roboflow's background class dropped; the letterbox copy is served with
/// "Fit (black edges) in".
async fn check_rfdetr(providers: &str, runs_on: &str) {
    let shipped = ShippedAs::Stretch { letterbox_env: BLACK_EDGES_128_ENV };
    let (model, route) = ("shapes-rfdetr/1", "/infer/object_detection");
    check_variants_against_reference(model, "shapes-rfdetr.json", route, providers, runs_on, &shipped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rf_detr_detections_match_roboflows_postprocessing() {
    check_rfdetr("cpu", "CPUExecutionProvider").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_openvino_rf_detr_detections_match_roboflows_postprocessing() {
    check_rfdetr("openvino", "OpenVINOExecutionProvider").await;
}

/// Roboflow's exports made before rfdetr dropped the dataset's root category list it first, as
/// `background_class83422`: the same weights served with such a list answer as Roboflow's
/// `is_one_indexed` path does (that column dropped, the classes after it shifted down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rf_detr_with_roboflows_background_class_drops_it_and_shifts_the_rest() {
    let models = TempDir::new("bg");
    copy_model(models.path(), "shapes-rfdetr/1", "shapes-rfdetr-bg/1", |d| {
        std::fs::write(d.join("class_names.txt"), "background_class83422\ncircle\nsquare\ntriangle\n").unwrap();
    });
    let server = Server::start(models.path(), &[]).await;
    let reference = reference_of("shapes-rfdetr-background.json");
    let (mut problems, mut compared) = (Vec::new(), 0);
    for (image, entry) in reference["images"].as_object().unwrap() {
        for (run, expected) in entry["runs"].as_object().unwrap() {
            let (mode, conf, iou) = parse_run(run);
            if mode != "stretch" {
                continue; // the folder is shipped stretched
            }
            let (status, body) =
                server.post_json("/infer/object_detection", &detect_body("shapes-rfdetr-bg/1", image, conf, iou)).await;
            assert_eq!(status, 200, "{image}: {body}");
            let predicted: Vec<Det> = body["predictions"].as_array().unwrap().iter().map(from_response).collect();
            assert!(predicted.iter().all(|p| p.class_name != "background_class83422"), "{image}: {body}");
            let expected: Vec<Det> = expected.as_array().unwrap().iter().map(from_reference).collect();
            compared += expected.len();
            problems.extend(compare(&expected, &predicted, conf).into_iter().map(|p| format!("{image} {run}: {p}")));
        }
    }
    assert!(compared >= 30, "compared only {compared} detections");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_images_returns_a_list_in_order() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let names = ["shapes_640x480.png", "shapes_empty_256.png", "shapes_exif6_480x640.jpg"];
    let body = json!({
        "model_id": "shapes/1",
        "image": names.iter().map(|n| json!({"type": "base64", "value": image_b64(n)})).collect::<Vec<_>>(),
        "confidence": 0.25, "iou_threshold": 0.45, "id": "batch-1",
    });
    let (status, response) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(status, 200, "{response}");
    let items = response.as_array().expect("a list in, a list out");
    assert_eq!(items.len(), 3);
    let reference = reference();
    for (name, item) in names.iter().zip(items) {
        assert_eq!(item["inference_id"], "batch-1");
        let expected: Vec<Det> = reference_detections(&reference, name, "letterbox/conf0.25/iou0.45");
        let predicted: Vec<Det> = item["predictions"].as_array().unwrap().iter().map(from_response).collect();
        assert_eq!(compare(&expected, &predicted, 0.25), Vec::<String>::new(), "{name}");
    }
    assert_eq!(items[1]["predictions"], json!([]), "the empty image has no detections");
    assert_eq!(items[2]["image"], json!({"width": 480, "height": 640}), "EXIF orientation applied");

    // A one-element list still answers a list; a single object answers an object with every field.
    let one = json!({"model_id": "shapes/1", "image": [{"type": "base64", "value": image_b64(names[0])}]});
    let (_, r) = server.post_json("/infer/object_detection", &one).await;
    assert_eq!(r.as_array().map(Vec::len), Some(1));
    let (_, r) = server.post_json("/infer/object_detection", &detect_body("shapes/1", names[0], 0.5, 0.5)).await;
    let p = &r["predictions"][0];
    for key in ["x", "y", "width", "height", "confidence", "class", "class_id", "detection_id"] {
        assert!(!p[key].is_null(), "prediction field {key} missing: {p}");
    }
    assert!(r["time"].as_f64().unwrap() > 0.0);
    assert_eq!(r["inference_id"].as_str().unwrap().len(), 36, "a UUID when no id is given");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_parameters_are_honoured() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let image = "shapes_640x480.png";
    let count = |v: &Value| v["predictions"].as_array().unwrap().len();
    let (_, all) = server.post_json("/infer/object_detection", &detect_body("shapes/1", image, 0.25, 0.45)).await;
    assert!(count(&all) >= 3, "{all}");

    let mut body = detect_body("shapes/1", image, 0.25, 0.45);
    body["max_detections"] = json!(2);
    let (_, capped) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(count(&capped), 2);
    assert_eq!(capped["predictions"][0]["confidence"], all["predictions"][0]["confidence"]);

    let mut body = detect_body("shapes/1", image, 0.25, 0.45);
    body["class_filter"] = json!(["circle"]);
    let (_, filtered) = server.post_json("/infer/object_detection", &body).await;
    let circles = all["predictions"].as_array().unwrap().iter().filter(|p| p["class"] == "circle").count();
    assert_eq!(count(&filtered), circles);
    assert!(filtered["predictions"].as_array().unwrap().iter().all(|p| p["class"] == "circle"));

    let mut body = detect_body("shapes/1", image, 0.0001, 0.45);
    body["max_candidates"] = json!(1);
    let (_, top1) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(count(&top1), 1, "max_candidates is a top-k before NMS");

    // At a low threshold this image has boxes of different classes on the same shape: class-aware
    // NMS keeps them, class-agnostic NMS does not.
    let cross_class_overlaps = |v: &Value| {
        let d: Vec<Det> = v["predictions"].as_array().unwrap().iter().map(from_response).collect();
        (0..d.len())
            .flat_map(|i| (0..i).map(move |j| (i, j)))
            .filter(|&(i, j)| d[i].class_id != d[j].class_id && iou(d[i].bbox, d[j].bbox) > 0.45)
            .count()
    };
    let (_, aware) =
        server.post_json("/infer/object_detection", &detect_body("shapes/1", "shapes_256_01.png", 0.01, 0.45)).await;
    let mut body = detect_body("shapes/1", "shapes_256_01.png", 0.01, 0.45);
    body["class_agnostic_nms"] = json!(true);
    let (_, agnostic) = server.post_json("/infer/object_detection", &body).await;
    assert!(cross_class_overlaps(&aware) > 0, "{aware}");
    assert_eq!(cross_class_overlaps(&agnostic), 0, "{agnostic}");
    assert!(count(&agnostic) < count(&aware));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypoint_confidence_drops_keypoints_below_it() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let mut body = detect_body("shapes-pose/1", "shapes_256_00.png", 0.25, 0.45);
    let (status, all) = server.post_json("/infer/keypoints_detection", &body).await;
    assert_eq!(status, 200, "{all}");
    let keypoints = |v: &Value| -> Vec<(String, f64)> {
        v["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["keypoints"].as_array().unwrap().clone())
            .map(|k| (k["class"].as_str().unwrap().to_owned(), k["confidence"].as_f64().unwrap()))
            .collect()
    };
    let every = keypoints(&all);
    assert!(every.len() >= 3 && every.iter().take(3).map(|k| k.0.as_str()).eq(["apex", "bottom_right", "bottom_left"]));
    let mut confidences: Vec<f64> = every.iter().map(|k| k.1).collect();
    confidences.sort_by(f64::total_cmp);
    let threshold = confidences[confidences.len() / 2];
    body["keypoint_confidence"] = json!(threshold);
    let (_, some) = server.post_json("/infer/keypoints_detection", &body).await;
    let kept = keypoints(&some);
    assert_eq!(kept.len(), every.iter().filter(|k| k.1 >= threshold).count());
    assert!(kept.iter().all(|k| k.1 >= threshold));
    // "best" is refused on this route, as Roboflow's validator does.
    body["confidence"] = json!("best");
    assert_eq!(server.post_json("/infer/keypoints_detection", &body).await.0, 422);
}
