//! Execution providers as a deployment sees them: which are used, which are refused and why, and
//! what the server reports. CUDA and TensorRT are exercised here as they behave on a host without
//! a GPU (this one); OpenVINO runs for real (the reference tests run every fixture model on it).

mod common;

use common::*;
use serde_json::{json, Value};

fn assets() -> std::path::PathBuf {
    repo_root().join("assets/models")
}

#[test]
fn cuda_alone_on_a_host_without_it_refuses_to_start_naming_the_library_and_the_setup_step() {
    let (status, log) = run_to_exit(&assets(), &[("EXECUTION_PROVIDERS", "cuda")]);
    assert!(!status.success(), "must not start:\n{log}");
    assert!(log.contains("none of the execution providers listed can be used"), "{log}");
    assert!(log.contains("CUDAExecutionProvider"), "names the provider: {log}");
    assert!(log.contains("libonnxruntime_providers_cuda.so"), "names the missing library: {log}");
    assert!(log.contains("make setup-gpu"), "names the setup step: {log}");
}

#[test]
fn tensorrt_alone_refuses_to_start_too() {
    let (status, log) = run_to_exit(&assets(), &[("EXECUTION_PROVIDERS", "tensorrt")]);
    assert!(!status.success(), "must not start:\n{log}");
    assert!(log.contains("TensorrtExecutionProvider") && log.contains("make setup-gpu"), "{log}");
}

#[test]
fn an_unknown_provider_or_gpu_id_is_a_start_up_error() {
    let (status, log) = run_to_exit(&assets(), &[("EXECUTION_PROVIDERS", "cuda,gpu")]);
    assert!(!status.success());
    assert!(log.contains("EXECUTION_PROVIDERS") && log.contains("\"gpu\""), "{log}");
    let (status, log) = run_to_exit(&assets(), &[("EXECUTION_PROVIDERS", "cpu"), ("DEVICE_IDS", "1")]);
    assert!(!status.success(), "DEVICE_IDS without a GPU:\n{log}");
    assert!(log.contains("DEVICE_IDS") && log.contains("NVML"), "{log}");
}

async fn infer_shapes(server: &Server) {
    let (status, body) =
        server.post_json("/infer/object_detection", &detect_body("shapes/1", "shapes_640x480.png", 0.25, 0.45)).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body["predictions"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuda_then_cpu_serves_on_cpu_and_the_log_says_why_cuda_was_not_used() {
    let server = Server::start(&assets(), &[("EXECUTION_PROVIDERS", "cuda,cpu")]).await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["onnxruntime"]["execution_providers"], json!(["CPUExecutionProvider"]), "{info}");
    let unavailable = &info["onnxruntime"]["unavailable_providers"][0];
    assert_eq!(unavailable["execution_provider"], "CUDAExecutionProvider", "{info}");
    assert!(unavailable["cause"].as_str().unwrap().contains("libonnxruntime_providers_cuda.so"), "{info}");

    infer_shapes(&server).await;
    assert_eq!(server.placements().await, [("shapes/1".into(), "CPUExecutionProvider".into(), "cpu".into())]);
    let log = server.log_text();
    let line = log.lines().find(|l| l.contains("CUDAExecutionProvider")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("cannot be used") && line.contains("make setup-gpu"), "{line}");

    let (_, registry) = server.get_json("/model/registry").await;
    assert_eq!(registry["models"][0]["vram_bytes"], Value::Null, "no GPU, no VRAM figure");
    assert_eq!(registry["gpu_memory_total"], Value::Null);
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"sightline_model_info{device="cpu",execution_provider="CPUExecutionProvider",model_id="shapes/1",task="object-detection"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains("sightline_gpu_"), "GPU series are absent, not zero, without a GPU");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roboflows_setting_is_read_in_its_own_format_when_ours_is_unset() {
    let server = Server::start(
        &assets(),
        &[
            ("EXECUTION_PROVIDERS", ""),
            ("ONNXRUNTIME_EXECUTION_PROVIDERS", "[CUDAExecutionProvider,CoreMLExecutionProvider,CPUExecutionProvider]"),
        ],
    )
    .await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["onnxruntime"]["execution_providers"], json!(["CPUExecutionProvider"]), "{info}");
    assert_eq!(info["onnxruntime"]["unavailable_providers"][0]["execution_provider"], "CUDAExecutionProvider");
    assert!(server.log_text().contains("CoreMLExecutionProvider"), "the skipped provider is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openvino_device_the_host_lacks_falls_back_to_the_next_provider() {
    let server = Server::start_on("openvino,cpu", &assets(), &[("OPENVINO_DEVICE", "NPU")]).await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["onnxruntime"]["execution_providers"], json!(["CPUExecutionProvider"]), "{info}");
    let cause = info["onnxruntime"]["unavailable_providers"][0]["cause"].as_str().unwrap().to_owned();
    assert!(cause.contains("no NPU device"), "{cause}");
    // The CPU session must hold no OpenVINO nodes although the plugin is registered (ort's default
    // device policy would hand it the graph): its optimised graph is then saved, which ONNX
    // Runtime refuses for compiled nodes.
    infer_shapes(&server).await;
    server.assert_all_run_on("CPUExecutionProvider").await;
    assert!(!server.log_text().contains("cannot save the optimised graph"), "{}", server.log_text());
    assert!(server.cache_dir().join("shapes/1/ort-optimized").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openvino_reports_its_device_and_keeps_compiled_models_in_the_cache_entry() {
    let server = Server::start_on("openvino", &assets(), &[]).await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["onnxruntime"]["execution_providers"], json!(["OpenVINOExecutionProvider"]), "{info}");
    infer_shapes(&server).await;
    assert_eq!(
        server.placements().await,
        [("shapes/1".into(), "OpenVINOExecutionProvider".into(), "openvino:CPU".into())]
    );
    let metrics = server.get_text("/metrics").await;
    assert!(metrics.contains(r#"device="openvino:CPU",execution_provider="OpenVINOExecutionProvider""#), "{metrics}");
    let compiled = server.cache_dir().join("shapes/1/openvino/CPU-f32");
    let blobs = std::fs::read_dir(&compiled).map(|d| d.flatten().count()).unwrap_or(0);
    assert!(blobs > 0, "OpenVINO's compiled model is cached in {}", compiled.display());
}

/// CPU sessions run the graph with the exact rewrites by default: the load logs it and the saved
/// optimised graph is keyed by the rewrite's version; `ORT_GRAPH_REWRITES=false` runs the graph as
/// exported (the outputs are the same bit for bit: `engine/tests/graph_rewrite.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_sessions_run_the_rewritten_graph_unless_rewrites_are_off() {
    for (env, rewritten) in [(vec![], true), (vec![("ORT_GRAPH_REWRITES", "false")], false)] {
        let server = Server::start_on("cpu", &assets(), &env).await;
        infer_shapes(&server).await;
        let log = server.log_text();
        assert_eq!(log.contains("graph rewritten"), rewritten, "{env:?}:\n{log}");
        let keyed: Vec<String> = std::fs::read_dir(server.cache_dir().join("shapes/1/ort-optimized"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(keyed.len(), 1, "{keyed:?}");
        assert_eq!(keyed[0].ends_with(&format!("-{}", sightline_engine::REWRITES_VERSION)), rewritten, "{keyed:?}");
    }
}

/// A model folder holding `tests/data/models/det-classifier` (an operator OpenVINO lacks) as
/// `det-classifier/1`.
fn det_classifier() -> TempDir {
    let dir = TempDir::new("det-classifier");
    let to = dir.path().join("det-classifier/1");
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(data("models/det-classifier")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    dir
}

fn classify_body() -> Value {
    json!({"model_id": "det-classifier/1", "image": {"type": "base64", "value": image_b64("shapes_256_00.png")}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_openvino_cannot_run_wholly_goes_to_the_next_provider_with_the_cause_logged() {
    let models = det_classifier();
    let server = Server::start_on("openvino,cpu", models.path(), &[]).await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(
        info["onnxruntime"]["execution_providers"],
        json!(["OpenVINOExecutionProvider", "CPUExecutionProvider"]),
        "both usable at start-up: {info}"
    );
    let (status, body) = server.post_json("/infer/classification", &classify_body()).await;
    assert_eq!(status, 200, "{body}");
    server.assert_all_run_on("CPUExecutionProvider").await;
    let log = server.log_text();
    let refused = log
        .lines()
        .find(|l| l.contains("execution provider not used for this session") && l.contains("OpenVINOExecutionProvider"))
        .unwrap_or_else(|| panic!("the OpenVINO refusal is logged:\n{log}"));
    assert!(
        refused.contains("fallback to CPU EP has been explicitly disabled"),
        "with ONNX Runtime's cause: {refused}"
    );
    assert!(log.contains("session fell back to cpu"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_no_listed_provider_can_run_fails_to_load_with_the_cause() {
    let models = det_classifier();
    let server = Server::start_on("openvino", models.path(), &[]).await;
    let (status, body) = server.post_json("/infer/classification", &classify_body()).await;
    assert_eq!(status, 500, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("weights.onnx") && message.contains("fallback to CPU EP has been explicitly disabled"),
        "{message}"
    );
    let (_, registry) = server.get_json("/model/registry").await;
    assert_eq!(registry["models"], json!([]), "nothing half-loaded: {registry}");
    // No broken entry is kept: a retry loads again and fails the same way.
    let (status, body) = server.post_json("/infer/classification", &classify_body()).await;
    assert_eq!(status, 500, "{body}");
}
