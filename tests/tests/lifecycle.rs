//! A server's life under a container runtime or Kubernetes: SIGTERM drains (readiness false at
//! once, requests in flight finish, new connections refused after the drain window, exit 0), and a
//! pinned model that fails keeps the server not ready, named on `/readiness`, until a retry loads it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::future::join_all;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish_then_exits_0() {
    let env = [("SHUTDOWN_DRAIN_SECS", "0.4"), ("SHUTDOWN_TIMEOUT_SECS", "30")];
    let mut server = Server::start(&repo_root().join("assets/models"), &env).await;
    let body = json!({"model_id": "ppocr/4", "image": {"type": "base64", "value": image_b64("ocr/ocr_large_1600x1000_two_lines.jpg")}});
    let (status, _) = server.post_json("/infer/ocr", &body).await;
    assert_eq!(status, 200, "warm up");
    assert_eq!(server.get_json("/readiness").await, (200, json!({"status": "ready"})));

    // Six OCR requests in flight (each a few hundred ms on these cores), then SIGTERM.
    let started = Instant::now();
    let in_flight = join_all((0..6).map(|_| server.post_json("/infer/ocr", &body)));
    let terminate = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.terminate();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Within the drain window: still answering, but no longer ready.
        server.get_json("/readiness").await
    };
    let (answers, readiness) = tokio::join!(in_flight, terminate);
    let answered = started.elapsed();
    assert_eq!(readiness, (503, json!({"status": "shutting down"})));
    // SIGTERM at 0.1 s, connections refused from 0.5 s: requests were still running then.
    assert!(
        answered > Duration::from_millis(700),
        "the requests ended before the stop ({answered:?}); use slower ones"
    );
    assert!(answers.iter().all(|(status, _)| *status == 200), "every request in flight finished: {answers:?}");
    assert!(answers.iter().all(|(_, body)| !body["predictions"].as_array().unwrap().is_empty()));

    let status = server.exit_within(Duration::from_secs(30)).await.expect("exits within the timeout");
    assert!(status.success(), "exit status {status:?}\n{}", server.log_text());
    assert!(started.elapsed() >= Duration::from_millis(500), "the drain window is kept");
    let refused = reqwest::Client::new().get(server.url("/healthz")).send().await;
    assert!(refused.is_err(), "no connections after the stop");
    let log = server.log_text();
    assert!(log.contains("shutting down") && log.contains("stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pinned_model_keeps_the_server_not_ready_until_a_retry_loads_it() {
    let models = TempDir::new("pinned");
    model_folder(models.path(), "shapes/1", |_| {});
    let server = Server::start(models.path(), &[("PINNED_MODELS", "shapes/1,late/1")]).await;
    let mut report = json!(null);
    for _ in 0..100 {
        let (status, body) = server.get_json("/readiness").await;
        assert_eq!(status, 503, "ready although late/1 cannot load: {body}");
        if body["failing_models"]["late/1"].is_string() {
            report = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(report["status"], "not ready", "{report}");
    assert!(report["failing_models"]["late/1"].as_str().unwrap().contains("late/1"), "{report}");
    assert!(report["failing_models"].get("shapes/1").is_none(), "{report}");

    // The model appears in the store: a retry (1 s, then 2 s, 4 s, …) loads it.
    model_folder(models.path(), "late/1", |_| {});
    let mut ready = false;
    for _ in 0..150 {
        if server.get_json("/readiness").await == (200, json!({"status": "ready"})) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "{}", server.log_text());
    let (_, registry) = server.get_json("/model/registry").await;
    let loaded: Vec<&str> =
        registry["models"].as_array().unwrap().iter().map(|m| m["model_id"].as_str().unwrap()).collect();
    assert!(loaded.contains(&"late/1") && loaded.contains(&"shapes/1"), "{registry}");
}

/// `sightline_http_requests_in_flight`, the per-pod load the HorizontalPodAutoscaler scales on.
fn in_flight(metrics: &str) -> u64 {
    let line = metrics.lines().find(|l| l.starts_with("sightline_http_requests_in_flight "));
    line.and_then(|l| l.split(' ').nth(1)).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_counts_the_work_being_served() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let body = json!({"model_id": "ppocr/4", "image": {"type": "base64", "value": image_b64("ocr/ocr_large_1600x1000_two_lines.jpg")}});
    assert_eq!(server.post_json("/infer/ocr", &body).await.0, 200, "warm up");
    assert_eq!(in_flight(&server.get_text("/metrics").await), 0, "probes and scrapes do not count");
    let requests = join_all((0..4).map(|_| server.post_json("/infer/ocr", &body)));
    let scrape = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.get_text("/metrics").await
    };
    let (answers, during) = tokio::join!(requests, scrape);
    assert!(answers.iter().all(|(s, _)| *s == 200));
    assert!((1..=4).contains(&in_flight(&during)), "{during}");
    assert_eq!(in_flight(&server.get_text("/metrics").await), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_cold_load_exits_0_and_leaves_no_partial_entry() {
    use common::model_api::{Fault, ModelApi};
    let api = ModelApi::start(repo_root().join("assets/models")).await;
    api.fail(Fault::SlowWeights(Duration::from_secs(30)), 1);
    let cache = TempDir::new("abandoned-load");
    let cache_dir = cache.path().display().to_string();
    let env = [
        ("MODEL_SOURCES", "api"),
        ("API_BASE_URL", api.base.as_str()),
        ("API_KEY", "sk-test"),
        ("MODEL_CACHE_DIR", cache_dir.as_str()),
        ("SHUTDOWN_DRAIN_SECS", "0.2"),
        ("SHUTDOWN_TIMEOUT_SECS", "1"),
    ];
    let mut server = Server::start(std::path::Path::new("/nonexistent"), &env).await;
    let client = reqwest::Client::new();
    let add = client.post(server.url("/model/add")).json(&json!({"model_id": "shapes/1"})).send();
    let terminate = async {
        // The load is waiting for weights.onnx when the signal comes.
        while api.count("/files/shapes/1/weights.onnx") == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.terminate();
    };
    let (added, ()) = tokio::join!(add, terminate);
    assert!(added.is_err() || !added.unwrap().status().is_success(), "the load cannot have finished");
    let status = server.exit_within(Duration::from_secs(15)).await.expect("exits although a load was in flight");
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    let entry = cache.path().join("shapes/1");
    let visible: Vec<String> = std::fs::read_dir(&entry)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    assert!(!visible.iter().any(|n| n == "manifest.json" || n == "weights.onnx"), "a partial entry: {visible:?}");
}
