//! The served segmentation models (YOLOv8-seg, YOLOv5-seg, YOLO26-seg, RF-DETR-seg) against the Python reference, over real
//! HTTP, for every fixture image and run: boxes as for detection, and each matched mask with
//! IoU >= 0.95 against the reference mask; polygons trace the returned mask.

mod common;

use common::*;
use serde_json::{json, Value};

async fn check_masks(model: &str, reference_file: &str, provider: &str) {
    check_masks_running_on(model, reference_file, provider, ort_name(provider), &ShippedAs::Letterbox).await;
}

/// As [`check_masks`], with the deployment's provider list `providers`, the provider the model
/// must end up running on, and the resize it is shipped with (the other is served from a copy).
async fn check_masks_running_on(
    model: &str,
    reference_file: &str,
    providers: &str,
    runs_on: &str,
    shipped: &ShippedAs,
) {
    let models = TempDir::new("seg");
    let (letterbox, stretch) = copy_resize_variants(models.path(), model, shipped);
    let server = Server::start_on(providers, models.path(), &[]).await;
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(data(&format!("reference/{reference_file}"))).unwrap()).unwrap();
    let mut problems = Vec::new();
    let mut masks_compared = 0;
    let polygon_conf = reference["images"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|entry| entry["runs"].as_object().unwrap().keys().map(|run| parse_run(run).1))
        .fold(f64::INFINITY, f64::min);
    for (image, entry) in reference["images"].as_object().unwrap() {
        for (run, expected) in entry["runs"].as_object().unwrap() {
            let (mode, conf, iou) = parse_run(run);
            let id = if mode == "letterbox" { letterbox.as_str() } else { stretch.as_str() };
            let mut body = detect_body(id, image, conf, iou);
            body["response_mask_format"] = json!("rle");
            let (status, rle_body) = server.post_json("/infer/instance_segmentation", &body).await;
            assert_eq!(status, 200, "{image} {run}: {rle_body}");
            // Polygons are checked on the lowest-confidence runs at IoU 0.45 (the others repeat
            // subsets of them).
            let polygon_body = if conf == polygon_conf && iou == 0.45 {
                body["response_mask_format"] = json!("polygon");
                Some(server.post_json("/infer/instance_segmentation", &body).await.1)
            } else {
                None
            };

            let predictions = rle_body["predictions"].as_array().unwrap();
            let predicted: Vec<Det> = predictions.iter().map(from_response).collect();
            let expected_list = expected.as_array().unwrap();
            let expected_dets: Vec<Det> = expected_list.iter().map(from_reference).collect();
            problems
                .extend(compare(&expected_dets, &predicted, conf).into_iter().map(|p| format!("{image} {run}: {p}")));

            let polygons = polygon_body.as_ref().map(|b| b["predictions"].as_array().unwrap().clone());
            if let Some(p) = &polygons {
                assert_eq!(p.len(), predictions.len());
            }
            for (r, reference_entry) in expected_dets.iter().zip(expected_list) {
                let Some(i) = best_match(r, &predicted) else {
                    continue; // reported by `compare`
                };
                assert_eq!(predictions[i]["mask_format"], "rle");
                let (h, w, ours) = coco_mask(&predictions[i]["rle"]);
                let (rh, rw, theirs) = reference_mask(&reference_entry["mask_rle"]);
                assert_eq!((h, w), (rh, rw), "{image}: mask size is the original image's");
                let m = mask_iou(&ours, &theirs);
                if m < 0.95 {
                    problems.push(format!("{image} {run}: mask IoU {m:.4} for {:?}", r.bbox));
                }
                masks_compared += 1;
                // The polygon traces this mask: every vertex is a mask pixel.
                let Some(polygons) = &polygons else { continue };
                let p = &polygons[i];
                assert_eq!(p["mask_format"], "polygon");
                let points = p["points"].as_array().unwrap();
                // An empty mask has an empty polygon, as Roboflow answers it (RF-DETR's masks
                // are not tied to the box, so a weak query may have none).
                let reference_points = reference_entry["polygon"].as_array().map_or(0, Vec::len);
                assert_eq!(points.is_empty(), reference_points == 0, "{image}: polygon {p}");
                for point in points {
                    let (x, y) = (point["x"].as_f64().unwrap() as usize, point["y"].as_f64().unwrap() as usize);
                    assert!(ours[y * w + x], "{image}: polygon vertex ({x}, {y}) is not a mask pixel");
                }
            }
        }
    }
    assert!(masks_compared > 100, "compared only {masks_compared} masks");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    server.assert_all_run_on(runs_on).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolov8_seg_masks_match_the_reference() {
    check_masks("shapes-seg/1", "shapes-seg-v8.json", "cpu").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolov5_seg_masks_match_the_reference() {
    check_masks("shapes-seg-v5/1", "shapes-seg-v5.json", "cpu").await;
}

/// YOLO11-seg: the v8 head layout, `(4 + C + 32, N)` and prototypes, with NMS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolo11_seg_masks_match_the_reference() {
    check_masks("shapes-seg-y11/1", "shapes-seg-y11.json", "cpu").await;
}

/// YOLO26-seg's one-to-one head: `(300, 6 + 32)` rows and prototypes, no NMS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolo26_seg_masks_match_the_reference() {
    check_masks("shapes-seg-y26/1", "shapes-seg-y26.json", "cpu").await;
}

/// OpenVINO (its plugin provider 1.8.1) cannot compile YOLO26-seg's one-to-one graph: its shape
/// inference refuses the GatherElements that picks the top 300 rows. Listed before the CPU
/// provider, it is passed over for this model, which runs on the CPU provider, says so in the
/// registry, and answers as the reference does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolo26_seg_falls_back_from_openvino_to_the_cpu_provider() {
    check_masks_running_on(
        "shapes-seg-y26/1",
        "shapes-seg-y26.json",
        "openvino,cpu",
        "CPUExecutionProvider",
        &ShippedAs::Letterbox,
    )
    .await;
}

/// RF-DETR-seg: a mask per query over the whole input, the letterbox padding cropped off, resized
/// to the image, `logit > 0`, the polygon the contour with the most points (Roboflow's
/// `RFDETRInstanceSegmentation`); nothing cleared outside the box.
async fn check_rfdetr_masks(providers: &str, runs_on: &str) {
    let shipped = ShippedAs::Stretch { letterbox_env: BLACK_EDGES_144_ENV };
    check_masks_running_on("shapes-rfdetr-seg/1", "shapes-rfdetr-seg.json", providers, runs_on, &shipped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rf_detr_seg_masks_match_roboflows_postprocessing() {
    check_rfdetr_masks("cpu", "CPUExecutionProvider").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_openvino_rf_detr_seg_masks_match_roboflows_postprocessing() {
    check_rfdetr_masks("openvino", "OpenVINOExecutionProvider").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_openvino_every_segmentation_model_matches_its_reference() {
    check_masks("shapes-seg/1", "shapes-seg-v8.json", "openvino").await;
    check_masks("shapes-seg-v5/1", "shapes-seg-v5.json", "openvino").await;
    check_masks("shapes-seg-v5-adapter/1", "shapes-seg-v5-adapter.json", "openvino").await;
    check_masks("shapes-seg-y11/1", "shapes-seg-y11.json", "openvino").await;
}

/// Run by scripts/gpu-check.sh on a host with an NVIDIA GPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an NVIDIA GPU and the make setup-gpu libraries: scripts/gpu-check.sh"]
async fn on_cuda_every_segmentation_model_matches_its_reference() {
    check_masks("shapes-seg/1", "shapes-seg-v8.json", "cuda").await;
    check_masks("shapes-seg-v5/1", "shapes-seg-v5.json", "cuda").await;
    check_masks("shapes-seg-v5-adapter/1", "shapes-seg-v5-adapter.json", "cuda").await;
    check_masks("shapes-seg-y26/1", "shapes-seg-y26.json", "cuda").await;
    check_masks("shapes-seg-y11/1", "shapes-seg-y11.json", "cuda").await;
    check_rfdetr_masks("cuda", "CUDAExecutionProvider").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mask_decode_modes_and_their_errors() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let body = |extra: Value| {
        let mut b = detect_body("shapes-seg/1", "shapes_640x480.png", 0.25, 0.45);
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let bbox_of = |p: &Value| {
        let xs: Vec<f64> = p["points"].as_array().unwrap().iter().map(|q| q["x"].as_f64().unwrap()).collect();
        let ys: Vec<f64> = p["points"].as_array().unwrap().iter().map(|q| q["y"].as_f64().unwrap()).collect();
        [
            xs.iter().cloned().fold(f64::MAX, f64::min),
            ys.iter().cloned().fold(f64::MAX, f64::min),
            xs.iter().cloned().fold(f64::MIN, f64::max),
            ys.iter().cloned().fold(f64::MIN, f64::max),
        ]
    };
    let (_, accurate) = server.post_json("/infer/instance_segmentation", &body(json!({}))).await;
    // One traced pixel in original pixels: 640/256 x 256/64 = 10 for fast (64x64 prototypes),
    // 640/256 x 256/160 = 4 for tradeoff 0.5 (160x160); plus one original pixel, since the accurate
    // polygon's vertices are pixel indices and the others' are traced-pixel centres.
    for (extra, pixel) in [
        (json!({"mask_decode_mode": "fast"}), 11.0),
        (json!({"mask_decode_mode": "tradeoff", "tradeoff_factor": 0.5}), 5.0),
    ] {
        let (status, v) = server.post_json("/infer/instance_segmentation", &body(extra.clone())).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["predictions"].as_array().unwrap().len(), accurate["predictions"].as_array().unwrap().len());
        for (a, b) in accurate["predictions"].as_array().unwrap().iter().zip(v["predictions"].as_array().unwrap()) {
            // Lower-resolution polygons outline the same shape: extents within one traced pixel.
            let (ba, bb) = (bbox_of(a), bbox_of(b));
            assert!(ba.iter().zip(&bb).all(|(x, y)| (x - y).abs() <= pixel), "{extra}: {ba:?} vs {bb:?}");
        }
    }
    for bad in [json!({"mask_decode_mode": "best"}), json!({"mask_decode_mode": "tradeoff", "tradeoff_factor": 1.5})] {
        let (status, v) = server.post_json("/infer/instance_segmentation", &body(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(v["message"].as_str().unwrap().starts_with("Invalid mask decode argument sent."), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masks_of_a_statically_cropped_model_are_in_the_full_frame() {
    let models = TempDir::new("seg-crop");
    copy_model(models.path(), "shapes-seg/1", "seg-crop/1", |d| {
        let env = r#"{"PREPROCESSING": {"resize": {"enabled": true, "format": "Fit (grey edges) in", "width": 256, "height": 256},
                      "static-crop": {"enabled": true, "x_min": 50, "y_min": 0, "x_max": 100, "y_max": 100}}}"#;
        std::fs::write(d.join("environment.json"), env).unwrap();
    });
    let server = Server::start(models.path(), &[]).await;
    let mut body = detect_body("seg-crop/1", "shapes_640x480.png", 0.25, 0.45);
    body["response_mask_format"] = json!("rle");
    let (_, rle) = server.post_json("/infer/instance_segmentation", &body).await;
    body["response_mask_format"] = json!("polygon");
    let (_, polygons) = server.post_json("/infer/instance_segmentation", &body).await;
    let predictions = rle["predictions"].as_array().unwrap();
    assert!(!predictions.is_empty(), "{rle}");
    for (p, q) in predictions.iter().zip(polygons["predictions"].as_array().unwrap()) {
        let (h, w, mask) = coco_mask(&p["rle"]);
        assert_eq!((h, w), (480, 640), "masks cover the full frame");
        assert!(
            mask.iter().enumerate().filter(|(_, on)| **on).all(|(i, _)| i % w >= 320),
            "mask pixels stay in the crop"
        );
        assert!(mask.iter().any(|on| *on));
        for point in q["points"].as_array().unwrap() {
            let (x, y) = (point["x"].as_f64().unwrap() as usize, point["y"].as_f64().unwrap() as usize);
            assert!(x >= 320 && mask[y * w + x], "vertex ({x}, {y}) is a mask pixel in the frame");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolov5_seg_layout_adapter_masks_match_the_reference() {
    check_masks("shapes-seg-v5-adapter/1", "shapes-seg-v5-adapter.json", "cpu").await;
}
