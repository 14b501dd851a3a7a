//! Dynamic batching, instances and isolated loads through the server: batched answers equal the
//! reference (images of different sizes, so different letterboxing, in one batch), a list request
//! takes the same path, loads run at a lower priority than the threads that serve, and a model's
//! second load starts from the optimised graph its first load saved.

mod common;

use common::*;
use futures::future::join_all;
use serde_json::{json, Value};

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data("reference/shapes-det-v8.json")).unwrap()).unwrap()
}

/// Sum and count of `sightline_batch_size` for `model`.
async fn batches(server: &Server, model: &str) -> (f64, f64) {
    histogram(server, "sightline_batch_size", model).await
}

/// Sum and count of the histogram `family` for `model`.
async fn histogram(server: &Server, family: &str, model: &str) -> (f64, f64) {
    let text = server.get_text("/metrics").await;
    let value = |name: &str| {
        let prefix = format!("{family}_{name}{{model_id=\"{model}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0.0, |v| v.parse().unwrap())
    };
    (value("sum"), value("count"))
}

fn letterbox_runs(entry: &Value) -> Vec<(f64, f64, Vec<Det>)> {
    entry["runs"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(run, expected)| {
            let (mode, conf, iou) = parse_run(run);
            let expected = expected.as_array().unwrap().iter().map(from_reference).collect();
            (mode == "letterbox").then_some((conf, iou, expected))
        })
        .collect()
}

const BATCHING: &[(&str, &str)] =
    &[("MAX_BATCH_SIZE", "8"), ("BATCH_MAX_DELAY_US", "200000"), ("MODEL_INSTANCES", "1")];

#[tokio::test]
async fn concurrent_requests_are_batched_and_each_answer_matches_the_reference() {
    let server = Server::start(&repo_root().join("assets/models"), BATCHING).await;
    let reference = reference();
    let images = reference["images"].as_object().unwrap();
    assert_eq!(images.len(), 15);
    for run in 0..4 {
        let requests = images.iter().map(|(image, entry)| {
            let (conf, iou, expected) = letterbox_runs(entry).swap_remove(run);
            let body = detect_body("shapes-dyn/1", image, conf, iou);
            let server = &server;
            async move {
                let (status, body) = server.post_json("/infer/object_detection", &body).await;
                assert_eq!(status, 200, "{image}: {body}");
                let predicted: Vec<Det> = body["predictions"].as_array().unwrap().iter().map(from_response).collect();
                compare(&expected, &predicted, conf)
                    .into_iter()
                    .map(|p| format!("{image} conf {conf} iou {iou}: {p}"))
                    .collect::<Vec<_>>()
            }
        });
        let problems: Vec<String> = join_all(requests).await.into_iter().flatten().collect();
        assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    }
    let (images_run, runs) = batches(&server, "shapes-dyn/1").await;
    assert_eq!(images_run, 60.0, "every image ran once");
    assert!(runs <= 20.0, "60 images in {runs} runs: concurrent requests were not batched");
    let metrics = server.get_text("/metrics").await;
    for stage in ["decode", "preprocess", "queue", "inference", "postprocess"] {
        let count = format!("sightline_stage_duration_seconds_count{{model_id=\"shapes-dyn/1\",stage=\"{stage}\"}} 60");
        assert!(metrics.lines().any(|l| l == count), "{count} missing from:\n{metrics}");
    }
}

#[tokio::test]
async fn a_list_of_images_is_batched_and_answered_in_order() {
    let server = Server::start(&repo_root().join("assets/models"), BATCHING).await;
    let reference = reference();
    let names = ["shapes_256_00.png", "shapes_300x500.png", "shapes_1920x1080.jpg", "shapes_320_01.png"];
    let body = json!({
        "model_id": "shapes-dyn/1",
        "image": names.iter().map(|n| json!({"type": "base64", "value": image_b64(n)})).collect::<Vec<_>>(),
        "confidence": 0.25,
        "iou_threshold": 0.45,
    });
    let (status, answers) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(status, 200, "{answers}");
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), names.len());
    for (name, answer) in names.iter().zip(answers) {
        let expected: Vec<Det> = reference_detections(&reference, name, "letterbox/conf0.25/iou0.45");
        let predicted: Vec<Det> = answer["predictions"].as_array().unwrap().iter().map(from_response).collect();
        let problems = compare(&expected, &predicted, 0.25);
        assert!(problems.is_empty(), "{name}: {problems:?}");
    }
    let (images_run, runs) = batches(&server, "shapes-dyn/1").await;
    assert_eq!(images_run, 4.0);
    assert!(runs < 4.0, "a list of 4 images ran in {runs} runs");
}

#[tokio::test]
async fn a_fixed_batch_axis_is_never_batched() {
    let server = Server::start(&repo_root().join("assets/models"), BATCHING).await;
    let body = detect_body("shapes/1", "shapes_640x480.png", 0.25, 0.45);
    let answers = join_all((0..6).map(|_| server.post_json("/infer/object_detection", &body))).await;
    assert!(answers.iter().all(|(status, _)| *status == 200));
    assert_eq!(batches(&server, "shapes/1").await, (6.0, 6.0), "six runs of one image each");
}

/// By default a model's two instances divide the cores, and a request that finds the model idle runs
/// on its solo session of all of them: each lone request's run reports every core, and the runs of a
/// list, whose images wait behind each other, go to the instances. Every answer is the reference's.
#[tokio::test]
async fn a_request_alone_runs_on_every_core_and_a_crowd_on_the_instances() {
    let adaptive = [("MODEL_INSTANCES", "2"), ("ORT_INTRA_OP_THREADS", "0")];
    alone_on_every_core_and_a_crowd_on_the_instances("cpu", &adaptive).await;
}

/// OpenVINO's CPU device divides the host's cores as the CPU provider does, by default: two
/// instances of half the cores each and a solo session of all of them.
#[tokio::test]
async fn on_openvinos_cpu_device_too_by_default() {
    alone_on_every_core_and_a_crowd_on_the_instances("openvino", &[("ORT_INTRA_OP_THREADS", "0")]).await;
}

async fn alone_on_every_core_and_a_crowd_on_the_instances(provider: &str, env: &[(&str, &str)]) {
    let cores = std::thread::available_parallelism().unwrap().get();
    let server = Server::start_on(provider, &repo_root().join("assets/models"), env).await;
    let threads = (cores / 2).max(1);
    let alone = if cores > threads { cores } else { threads };
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["onnxruntime"]["intra_op_threads"], json!({"shared": false, "threads": threads, "alone": alone}));
    let reference = reference();
    let names = ["shapes_256_00.png", "shapes_300x500.png", "shapes_1920x1080.jpg", "shapes_320_01.png"];
    let run = "letterbox/conf0.25/iou0.45";
    for name in names {
        let (status, answer) =
            server.post_json("/infer/object_detection", &detect_body("shapes/1", name, 0.25, 0.45)).await;
        assert_eq!(status, 200, "{answer}");
        let predicted: Vec<Det> = answer["predictions"].as_array().unwrap().iter().map(from_response).collect();
        let problems = compare(&reference_detections(&reference, name, run), &predicted, 0.25);
        assert!(problems.is_empty(), "{name} alone: {problems:?}");
    }
    let lone = histogram(&server, "sightline_run_intra_op_threads", "shapes/1").await;
    assert_eq!(lone, (4.0 * alone as f64, 4.0), "each lone request ran with {alone} threads");

    // shapes/1 has a fixed batch axis: a list of twelve runs image by image, the first while the
    // other eleven wait.
    let listed: Vec<&str> = names.iter().cycle().take(12).copied().collect();
    let body = json!({
        "model_id": "shapes/1",
        "image": listed.iter().map(|n| json!({"type": "base64", "value": image_b64(n)})).collect::<Vec<_>>(),
        "confidence": 0.25,
        "iou_threshold": 0.45,
    });
    let (status, answers) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(status, 200, "{answers}");
    for (name, answer) in listed.iter().zip(answers.as_array().unwrap()) {
        let predicted: Vec<Det> = answer["predictions"].as_array().unwrap().iter().map(from_response).collect();
        let problems = compare(&reference_detections(&reference, name, run), &predicted, 0.25);
        assert!(problems.is_empty(), "{name} in the list: {problems:?}");
    }
    let (sum, count) = histogram(&server, "sightline_run_intra_op_threads", "shapes/1").await;
    assert_eq!(count, 16.0);
    let instance_runs = ((16 * alone) as f64 - sum) / (alone - threads).max(1) as f64;
    if cores > 1 {
        assert!(instance_runs >= 1.0, "the list's first image ran on an instance ({sum} threads in {count} runs)");
    }
}

/// The intra-op helper threads (ONNX Runtime's pool threads, named by the spawner) and their CPU time.
fn intra_op_helpers(server: &Server) -> Vec<u64> {
    server.thread_cpu_ticks().into_iter().filter(|(name, _)| name == "ort-intra-op").map(|(_, t)| t).collect()
}

/// With the shared pool and no per-session thread count, every CPU session runs on one pool of all the cores: two
/// models of two instances each add no thread to it, and a request alone is worked on by its
/// helper threads (their CPU time grows), where one-thread instances would leave a core idle.
#[tokio::test]
async fn a_request_alone_runs_on_the_shared_pool_of_all_the_cores() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let models = repo_root().join("assets/models");
    let shared = [("MODEL_INSTANCES", "2"), ("ORT_INTRA_OP_THREADS", "0"), ("ORT_SHARED_THREAD_POOL", "true")];
    let server = Server::start_on("cpu", &models, &shared).await;
    for model in ["shapes/1", "shapes-dyn/1"] {
        let (status, body) = server.post_json("/model/add", &json!({"model_id": model})).await;
        assert_eq!(status, 200, "{body}");
    }
    let before = intra_op_helpers(&server);
    assert_eq!(before.len(), cores - 1, "one shared pool, the caller's thread being the last core");
    let (_, info) = server.get_json("/info").await;
    assert_eq!(
        info["onnxruntime"]["intra_op_threads"],
        json!({"shared": true, "threads": cores, "alone": cores}),
        "{info}"
    );
    let body = detect_body("shapes-dyn/1", "shapes_1920x1080.jpg", 0.25, 0.45);
    for _ in 0..40 {
        let (status, _) = server.post_json("/infer/object_detection", &body).await;
        assert_eq!(status, 200);
    }
    let after: u64 = intra_op_helpers(&server).iter().sum();
    if cores > 1 {
        assert!(after > before.iter().sum::<u64>(), "lone requests ran on the helper threads: {before:?} -> {after}");
    }

    // A fixed count, or the default without the shared pool, gives each session its own pool.
    let fixed = [("MODEL_INSTANCES", "2"), ("ORT_INTRA_OP_THREADS", "2")];
    let server = Server::start_on("cpu", &models, &fixed).await;
    for model in ["shapes/1", "shapes-dyn/1"] {
        let (status, body) = server.post_json("/model/add", &json!({"model_id": model})).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(intra_op_helpers(&server).len(), 4, "two models, two sessions each, one helper each");
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["onnxruntime"]["intra_op_threads"], json!({"shared": false, "threads": 2, "alone": 2}), "{info}");
}

#[tokio::test]
async fn loads_run_below_the_priority_of_the_threads_that_serve() {
    loads_run_below_serving_priority("cpu").await;
}

#[tokio::test]
async fn openvino_loads_run_below_the_priority_of_the_threads_that_serve() {
    loads_run_below_serving_priority("openvino").await;
}

async fn loads_run_below_serving_priority(provider: &str) {
    let models = repo_root().join("assets/models");
    let server = Server::start_on(provider, &models, &[("MODEL_INSTANCES", "2")]).await;
    for model in ["shapes/1", "ppocr/4"] {
        let (status, body) = server.post_json("/model/add", &json!({"model_id": model})).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) =
        server.post_json("/infer/object_detection", &detect_body("shapes/1", "shapes_640x480.png", 0.25, 0.45)).await;
    assert_eq!(status, 200);
    let threads = server.thread_priorities();
    let loaders: Vec<_> = threads.iter().filter(|(name, _)| name.starts_with("model-load")).collect();
    assert_eq!(loaders.len(), 1, "MODEL_LOAD_CONCURRENCY=1: {threads:?}");
    assert!(loaders.iter().all(|(_, nice)| *nice == 19), "load threads at nice 19: {threads:?}");
    let idle = server.idle_policy_threads();
    assert!(idle.iter().any(|name| name.starts_with("model-load")), "loads run under SCHED_IDLE: {idle:?}");
    assert!(idle.iter().all(|name| name.starts_with("model-")), "only load and retire threads are idle: {idle:?}");
    let instances = threads.iter().filter(|(name, _)| name.starts_with("ort-")).count();
    assert!(instances >= 2 * 4, "two instances of shapes/1 and of each OCR session: {threads:?}");
    let lowered: Vec<_> = threads.iter().filter(|(name, nice)| !name.starts_with("model-") && *nice != 0).collect();
    assert!(lowered.is_empty(), "threads made during loads must serve at normal priority: {lowered:?}");
    server.assert_all_run_on(ort_name(provider)).await;
}

#[tokio::test]
async fn a_second_load_starts_from_the_saved_optimised_graph_with_the_same_answers() {
    // One instance, so that the first load builds one session from the original file.
    let env = [("LOG_LEVEL", "info,ort=warn,sightline_engine=debug"), ("MODEL_INSTANCES", "1")];
    let server = Server::start(&repo_root().join("assets/models"), &env).await;
    let body = detect_body("shapes/1", "shapes_640x480.png", 0.25, 0.45);
    let (status, first) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(status, 200, "{first}");
    let saved: Vec<_> = walk(&server.cache_dir().join("shapes/1/ort-optimized"));
    assert_eq!(saved.len(), 1, "one optimised graph saved: {saved:?}");
    assert!(saved[0].ends_with("weights.onnx") && std::fs::metadata(&saved[0]).unwrap().len() > 1 << 20);
    assert!(!server.log_text().contains("saved optimised graph"), "first load builds it: {}", server.log_text());
    let (status, _) = server.post_json("/model/remove", &json!({"model_id": "shapes/1"})).await;
    assert_eq!(status, 200);
    let (status, second) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(status, 200, "{second}");
    assert!(server.log_text().contains("session started from its saved optimised graph"), "{}", server.log_text());
    assert_eq!(without_ids(&first["predictions"]), without_ids(&second["predictions"]));

    // A damaged saved graph is rebuilt, not served.
    std::fs::write(&saved[0], b"not a model").unwrap();
    let (status, _) = server.post_json("/model/remove", &json!({"model_id": "shapes/1"})).await;
    assert_eq!(status, 200);
    let (status, third) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(status, 200, "{third}");
    assert!(server.log_text().contains("saved optimised graph does not load; rebuilding it"));
    assert_eq!(without_ids(&first["predictions"]), without_ids(&third["predictions"]));
    assert!(std::fs::metadata(&saved[0]).unwrap().len() > 1 << 20, "rebuilt");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            files.extend(walk(&entry.path()));
        } else {
            files.push(entry.path());
        }
    }
    files
}

/// Every image of `reference_file` under every `mode` run, all posted at once to `model`; the
/// problems found against the reference, and how many requests were posted.
async fn several_clients_at_once(
    server: &Server,
    model: &str,
    reference_file: &str,
    route: &str,
    mode: &str,
) -> (Vec<String>, usize) {
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(data(&format!("reference/{reference_file}"))).unwrap()).unwrap();
    let mut requests = Vec::new();
    for (image, entry) in reference["images"].as_object().unwrap() {
        for (run, expected) in entry["runs"].as_object().unwrap() {
            let (run_mode, conf, iou) = parse_run(run);
            if run_mode != mode {
                continue;
            }
            let expected: Vec<Det> = expected.as_array().unwrap().iter().map(from_reference).collect();
            let body = detect_body(model, image, conf, iou);
            requests.push(async move {
                let (status, body) = server.post_json(route, &body).await;
                assert_eq!(status, 200, "{model} {image}: {body}");
                let predicted: Vec<Det> = body["predictions"].as_array().unwrap().iter().map(from_response).collect();
                compare(&expected, &predicted, conf)
                    .into_iter()
                    .map(|p| format!("{model} {image} {run}: {p}"))
                    .collect::<Vec<_>>()
            });
        }
    }
    let posted = requests.len();
    assert!(posted >= 30, "{model}: only {posted} requests");
    (join_all(requests).await.into_iter().flatten().collect(), posted)
}

/// RF-DETR exported with a dynamic batch axis: concurrent requests share runs, and each answer is
/// still Roboflow's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rf_detr_requests_from_several_clients_are_batched_and_match_the_reference() {
    let server = Server::start(&repo_root().join("assets/models"), BATCHING).await;
    let mut problems = Vec::new();
    for (model, reference_file, route) in [
        ("shapes-rfdetr/1", "shapes-rfdetr.json", "/infer/object_detection"),
        ("shapes-rfdetr-seg/1", "shapes-rfdetr-seg.json", "/infer/instance_segmentation"),
    ] {
        let (found, posted) = several_clients_at_once(&server, model, reference_file, route, "stretch").await;
        problems.extend(found);
        let (images_run, runs) = batches(&server, model).await;
        assert_eq!(images_run, posted as f64, "{model}: every request ran once");
        assert!(
            runs <= posted as f64 / 2.0,
            "{model}: {posted} images in {runs} runs: concurrent requests were not batched"
        );
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// The newer YOLO families (fixed batch axis, so not batched) served to several clients at once
/// by two instances each: every answer is still the reference's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newer_yolo_families_answer_several_clients_at_once() {
    let server = Server::start(&repo_root().join("assets/models"), &[("MODEL_INSTANCES", "2")]).await;
    let mut problems = Vec::new();
    for (model, reference_file, route) in [
        ("shapes-y11/1", "shapes-det-y11.json", "/infer/object_detection"),
        ("shapes-v12/1", "shapes-det-v12.json", "/infer/object_detection"),
        ("shapes-v10/1", "shapes-det-v10.json", "/infer/object_detection"),
        ("shapes-y26/1", "shapes-det-y26.json", "/infer/object_detection"),
        ("shapes-y26-o2m/1", "shapes-det-y26-o2m.json", "/infer/object_detection"),
        ("shapes-seg-y11/1", "shapes-seg-y11.json", "/infer/instance_segmentation"),
        ("shapes-seg-y26/1", "shapes-seg-y26.json", "/infer/instance_segmentation"),
        ("shapes-pose-y11/1", "shapes-pose-y11.json", "/infer/keypoints_detection"),
        ("shapes-pose-y26/1", "shapes-pose-y26.json", "/infer/keypoints_detection"),
    ] {
        problems.extend(several_clients_at_once(&server, model, reference_file, route, "letterbox").await.0);
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}
