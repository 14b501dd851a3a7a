//! Memory as the server accounts for it: each model's measured `resident_bytes`, the
//! `MAX_MODEL_MEMORY` budget (eviction, then a clean refusal), and the memory series of `/metrics`.

mod common;

use common::*;
use serde_json::{json, Value};

fn resident_of(registry: &Value, id: &str) -> u64 {
    registry["models"].as_array().unwrap().iter().find(|m| m["model_id"] == id).unwrap()["resident_bytes"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_bytes_are_measured_and_exported() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let (status, registry) = server.post_json("/model/add", &json!({"model_id": "shapes/1"})).await;
    assert_eq!(status, 200, "{registry}");
    let resident = resident_of(&registry, "shapes/1");
    let onnx = std::fs::metadata(repo_root().join("assets/models/shapes/1/weights.onnx")).unwrap().len();
    // The weights must be resident, and a 3.7 MB model does not take a hundred times that.
    assert!(resident >= onnx && resident < 100 * onnx, "resident {resident} for {onnx} ONNX bytes");
    let metrics = server.get_text("/metrics").await;
    let line = format!(r#"sightline_model_resident_bytes{{model_id="shapes/1",task="object-detection"}} {resident}"#);
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
    assert!(metrics.contains("process_resident_memory_bytes "), "process memory is exported");
    server.post_json("/model/remove", &json!({"model_id": "shapes/1"})).await;
    assert!(!server.get_text("/metrics").await.contains("sightline_model_resident_bytes{"), "gone with the model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_over_the_memory_budget_is_refused_with_507_and_the_server_goes_on() {
    // 1 MB: shapes/1 (3.7 MB of weights; once in the cache it is estimated from them) cannot fit.
    let server = Server::start(&repo_root().join("assets/models"), &[("MAX_MODEL_MEMORY", "1000000")]).await;
    let (status, body) = server.post_json("/models/pull", &json!({"model_id": "shapes/1"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        server.post_json("/infer/object_detection", &detect_body("shapes/1", "shapes_640x480.png", 0.25, 0.45)).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error_type"], "insufficient_memory");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("shapes/1") && message.contains("MAX_MODEL_MEMORY=1000000"), "{message}");
    let (_, registry) = server.get_json("/model/registry").await;
    assert_eq!(registry["models"], json!([]), "nothing loaded: {registry}");
    let (status, _) = server.get_json("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_evicts_the_least_recently_used_model_to_make_room() {
    let models = TempDir::new("budget");
    copy_model(models.path(), "shapes/1", "a/1", |_| {});
    copy_model(models.path(), "shapes/1", "b/1", |_| {});
    let server = Server::start(models.path(), &[]).await;
    let (_, registry) = server.post_json("/model/add", &json!({"model_id": "a/1"})).await;
    let one = resident_of(&registry, "a/1");
    drop(server);
    // b is estimated from its files (cached, not yet measured); a budget of a's size plus half
    // that estimate cannot hold both, but holds b alone (a measured at more than half of it).
    let onnx = std::fs::metadata(models.path().join("b/1/weights.onnx")).unwrap().len();
    let estimate_b = sightline_models::registry::estimate_from_onnx_bytes(onnx);
    assert!(one > estimate_b / 2, "a measured {one}, b is estimated at {estimate_b}");
    let budget = (one + estimate_b / 2).to_string();
    let server = Server::start(models.path(), &[("MAX_MODEL_MEMORY", budget.as_str())]).await;
    server.post_json("/model/add", &json!({"model_id": "a/1"})).await;
    server.post_json("/models/pull", &json!({"model_id": "b/1"})).await;
    let (status, registry) = server.post_json("/model/add", &json!({"model_id": "b/1"})).await;
    assert_eq!(status, 200, "{registry}");
    let ids: Vec<&str> =
        registry["models"].as_array().unwrap().iter().map(|m| m["model_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["b/1"], "a was evicted for b: {registry}");
    let metrics = server.get_text("/metrics").await;
    assert!(metrics.contains(r#"cause="memory_budget""#) && metrics.contains(r#"model_id="a/1""#), "{metrics}");
}
