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

/// Every file under `dir` (recursively) whose name starts with `prefix`.
fn files_named(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_named(&path, prefix));
        } else if entry.file_name().to_string_lossy().starts_with(prefix) {
            found.push(path);
        }
    }
    found
}

/// A cache disk with room for the model's files but not for its optimised graph: the model is
/// served from its own file (the graph is an optimisation), and no half-written graph is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cache_disk_serves_the_model_without_its_optimised_graph() {
    let models = TempDir::new("faults-full");
    model_folder(models.path(), "shapes/1", |_| {});
    let cache = TempDir::new("faults-full-cache");
    let cache_dir = cache.path().display().to_string();
    // shapes/1's files take 3.7 MB; its optimised graph as much again.
    let setup = r#"mount -t tmpfs -o size=5m tmpfs "$MODEL_CACHE_DIR""#;
    let server = Server::start_namespaced(setup, models.path(), &[("MODEL_CACHE_DIR", &cache_dir)]).await;
    let (status, body) = server.post_json("/infer/object_detection", &detect("shapes/1")).await;
    assert_eq!(status, 200, "{body}\n{}", server.log_text());
    assert!(!body["predictions"].as_array().unwrap().is_empty(), "{body}");
    let log = server.log_text();
    assert!(log.contains("cannot save the optimised graph"), "the failed save is a warning:\n{log}");
    assert!(!log.contains("ERROR"), "a full disk is not an error of the model:\n{log}");
    let (_, listing) = server.get_json("/model_store/cache").await;
    let entry = server.seen_by_server(cache.path());
    assert!(entry.join("shapes/1/weights.onnx").is_file(), "the mount is seen through the server: {listing}");
    assert_eq!(files_named(&entry, ".saving-"), Vec::<std::path::PathBuf>::new(), "nothing left half written");
}

/// Graphs a crashed process left half written are removed when the next one starts; one that a
/// live process is writing is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_written_graphs_of_a_dead_process_are_swept_at_start_up() {
    let models = TempDir::new("faults-sweep");
    model_folder(models.path(), "shapes/1", |_| {});
    let cache = TempDir::new("faults-sweep-cache");
    let keyed = cache.path().join("shapes/1/ort-optimized/cpu-ort1.31.1-avx2");
    std::fs::create_dir_all(&keyed).unwrap();
    // No process has pid 4194304 (above Linux's pid_max); this test's own pid is alive.
    std::fs::write(keyed.join(".saving-4194304-0"), vec![0u8; 1 << 20]).unwrap();
    let live = format!(".saving-{}-0", std::process::id());
    std::fs::write(keyed.join(&live), b"being written").unwrap();
    let cache_dir = cache.path().display().to_string();
    let server = Server::start(models.path(), &[("MODEL_CACHE_DIR", &cache_dir)]).await;
    assert_eq!(files_named(cache.path(), ".saving-"), [keyed.join(&live)], "{}", server.log_text());
}

/// A read-only cache (a pre-filled image layer, a read-only volume) serves what it holds; a model
/// it does not hold fails with the directory named, and a pinned one keeps the server not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_cache_serves_what_it_holds() {
    let models = TempDir::new("faults-ro");
    model_folder(models.path(), "shapes/1", |_| {});
    model_folder(models.path(), "shapes-b/1", |_| {});
    let cache = TempDir::new("faults-ro-cache");
    let cache_dir = cache.path().display().to_string();
    {
        let filler = Server::start(models.path(), &[("MODEL_CACHE_DIR", &cache_dir)]).await;
        let (status, _) = filler.post_json("/model/add", &json!({"model_id": "shapes/1"})).await;
        assert_eq!(status, 200);
    }
    let setup = r#"mount --bind "$MODEL_CACHE_DIR" "$MODEL_CACHE_DIR" && mount -o remount,bind,ro "$MODEL_CACHE_DIR""#;
    let env = [("MODEL_CACHE_DIR", cache_dir.as_str()), ("PINNED_MODELS", "shapes/1")];
    let server = Server::start_namespaced(setup, models.path(), &env).await;
    let (status, body) = server.post_json("/infer/object_detection", &detect("shapes/1")).await;
    assert_eq!(status, 200, "{body}\n{}", server.log_text());
    assert!(!body["predictions"].as_array().unwrap().is_empty());
    assert_eq!(server.client.get(server.url("/readiness")).send().await.unwrap().status().as_u16(), 200);
    let (status, body) = server.post_json("/infer/object_detection", &detect("shapes-b/1")).await;
    assert_eq!(status, 500, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(&cache_dir) && message.contains("cannot be written"), "{message}");
    assert_eq!(loaded(&server).await, ["shapes/1"]);

    let env = [("MODEL_CACHE_DIR", cache_dir.as_str()), ("PINNED_MODELS", "shapes-b/1")];
    let unready = Server::start_namespaced(setup, models.path(), &env).await;
    let mut status = 0;
    for _ in 0..50 {
        status = unready.client.get(unready.url("/readiness")).send().await.unwrap().status().as_u16();
        if unready.log_text().contains("pinned model failed to load") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 503, "a pinned model the read-only cache lacks: not ready\n{}", unready.log_text());
}
