//! The fault suite: what a hostile client, a bogus model id, a full or read-only disk and a slow
//! client do to a real server on loopback, each checked by its outcome (statuses, the loaded
//! models, load counts, files left on disk), never by a time.

mod common;

use common::*;
use serde_json::{json, Value};

/// `sightline_model_loads_total` of `model` with `outcome`, from `/metrics`.
async fn loads(server: &Server, model: &str, outcome: &str) -> f64 {
    let text = server.get_text("/metrics").await;
    text.lines()
        .filter(|l| l.starts_with("sightline_model_loads_total{"))
        .filter(|l| l.contains(&format!("model_id=\"{model}\"")) && l.contains(&format!("outcome=\"{outcome}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn loaded(server: &Server) -> Vec<String> {
    let (_, registry) = server.get_json("/model/registry").await;
    registry["models"].as_array().unwrap().iter().map(|m| m["model_id"].as_str().unwrap().to_owned()).collect()
}

fn detect(model: &str) -> Value {
    json!({"model_id": model, "image": {"type": "base64", "value": image_b64("shapes_640x480.png")}})
}

/// With one model slot taken by `shapes/1`, loads that fail in every way, on every route, leave it
/// loaded: it is never loaded a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_fails_costs_no_serving_model() {
    let models = TempDir::new("faults-loads");
    model_folder(models.path(), "shapes/1", |_| {});
    model_folder(models.path(), "garbage/1", |d| std::fs::write(d.join("weights.onnx"), b"not an onnx file").unwrap());
    model_folder(models.path(), "detr/1", |d| {
        let kind = r#"{"project_task_type": "object-detection", "model_type": "detr-resnet50"}"#;
        std::fs::write(d.join("model_type.json"), kind).unwrap()
    });
    let server = Server::start(models.path(), &[("MAX_ACTIVE_MODELS", "1")]).await;
    let (status, body) = server.post_json("/infer/object_detection", &detect("shapes/1")).await;
    assert_eq!(status, 200, "{body}");

    let image = image_b64("shapes_640x480.png").into_bytes();
    let legacy = server.client.post(server.url("/nope/8")).body(image).send().await.unwrap();
    assert_eq!(legacy.status().as_u16(), 404, "legacy route, unknown id");
    let v2 = server.client.get(server.url("/v2/models/nope/versions/8")).send().await.unwrap();
    assert_eq!(v2.status().as_u16(), 404, "v2 metadata, unknown id");
    let (status, _) = server.post_json("/infer/object_detection", &detect("nope/8")).await;
    assert_eq!(status, 404, "Roboflow route, unknown id");
    let (status, body) = server.post_json("/model/add", &json!({"model_id": "detr/1"})).await;
    assert_eq!(status, 500, "an unsupported architecture: {body}");
    let (status, body) = server.post_json("/model/add", &json!({"model_id": "garbage/1"})).await;
    assert_eq!(status, 500, "weights that do not build: {body}");
    assert_eq!(loaded(&server).await, ["shapes/1"], "the serving model stayed loaded");

    let (status, _) = server.post_json("/infer/object_detection", &detect("shapes/1")).await;
    assert_eq!(status, 200);
    assert_eq!(loads(&server, "shapes/1", "success").await, 1.0, "shapes/1 was never loaded again");
    assert_eq!(loads(&server, "other", "error").await, 3.0, "unknown ids share one label");
    assert_eq!(loads(&server, "garbage/1", "error").await, 1.0);

    // A model that loads does take the slot, once it has loaded.
    model_folder(models.path(), "shapes-b/1", |_| {});
    let (status, _) = server.post_json("/model/add", &json!({"model_id": "shapes-b/1"})).await;
    assert_eq!(status, 200);
    assert_eq!(loaded(&server).await, ["shapes-b/1"]);
}
