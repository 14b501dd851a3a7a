//! The metrics in the manner of Triton move as known traffic says they must: downloads and cache
//! lookups, loads by source and outcome, requests and failures by reason (image and tensor
//! routes), stage timings, inference against execution counts, the per-model gauges, and the
//! process's own figures; and the exposition passes `promtool check metrics`.

mod common;

use common::*;
use serde_json::json;

/// The value of one series; 0 when absent.
fn value(metrics: &str, series: &str) -> f64 {
    metric_value(metrics, series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_known_traffic() {
    let dir = TempDir::new("metrics");
    copy_model(dir.path(), "shapes/1", "shapes/1", |_| {});
    let server = Server::start(dir.path(), &[]).await;
    let model_bytes: u64 =
        std::fs::read_dir(dir.path().join("shapes/1")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();

    // A cold load from the local source, three images, one undecodable image.
    for image in ["shapes_256_03.png", "shapes_640x480.png", "shapes_256_03.png"] {
        let (status, answer) =
            server.post_json("/infer/object_detection", &detect_body("shapes/1", image, 0.25, 0.45)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let bad = json!({"model_id": "shapes/1", "image": {"type": "base64", "value": "aGVsbG8="}});
    assert_eq!(server.post_json("/infer/object_detection", &bad).await.0, 400);
    // One tensor request, one with a wrong shape.
    let zeros = vec![0.0f32; 3 * 256 * 256];
    let tensor = |h: usize| json!({"inputs": [{"name": "images", "shape": [1, 3, h, 256], "datatype": "FP32", "data": &zeros[..3 * h * 256]}]});
    assert_eq!(server.post_json("/v2/models/shapes/versions/1/infer", &tensor(256)).await.0, 200);
    assert_eq!(server.post_json("/v2/models/shapes/versions/1/infer", &tensor(128)).await.0, 400);
    // A model no source has.
    assert_eq!(server.post_json("/model/add", &json!({"model_id": "missing/1"})).await.0, 404);

    let m = server.get_text("/metrics").await;
    assert_eq!(value(&m, r#"sightline_model_cache_lookups_total{result="miss"}"#), 2.0, "shapes/1 and missing/1\n{m}");
    assert_eq!(value(&m, r#"sightline_model_cache_lookups_total{result="hit"}"#), 0.0);
    assert_eq!(value(&m, r#"sightline_model_download_attempts_total{source="local"}"#), 2.0);
    assert_eq!(value(&m, r#"sightline_model_download_failures_total{kind="model_not_found",source="local"}"#), 1.0);
    assert_eq!(value(&m, r#"sightline_model_download_bytes_total{source="local"}"#), model_bytes as f64);
    let loads = |source: &str, outcome: &str, task: &str, id: &str| {
        value(
            &m,
            &format!(
                r#"sightline_model_load_duration_seconds_count{{model_id="{id}",outcome="{outcome}",source="{source}",task="{task}"}}"#
            ),
        )
    };
    assert_eq!(loads("local", "success", "object-detection", "shapes/1"), 1.0);
    // An id no source has is counted under one label, whatever the client typed.
    assert_eq!(loads("unknown", "error", "unknown", "other"), 1.0);
    let shapes = |name: &str, task: &str| value(&m, &format!(r#"{name}{{model_id="shapes/1",task="{task}"}}"#));
    assert_eq!(shapes("sightline_inference_requests_total", "object-detection"), 4.0);
    assert_eq!(shapes("sightline_inference_requests_total", "tensor"), 2.0);
    assert_eq!(
        value(&m, r#"sightline_inference_errors_total{kind="bad_image",model_id="shapes/1",task="object-detection"}"#),
        1.0
    );
    assert_eq!(
        value(&m, r#"sightline_inference_errors_total{kind="invalid_tensor",model_id="shapes/1",task="tensor"}"#),
        1.0
    );
    let stage =
        |s: &str| value(&m, &format!(r#"sightline_stage_duration_seconds_count{{model_id="shapes/1",stage="{s}"}}"#));
    assert_eq!((stage("decode"), stage("preprocess")), (3.0, 3.0), "the undecodable image never reached preprocess");
    assert_eq!((stage("queue"), stage("inference")), (4.0, 4.0), "three images and one tensor request ran");
    assert_eq!(stage("postprocess"), 3.0);
    let id = |name: &str| value(&m, &format!(r#"{name}{{model_id="shapes/1"}}"#));
    assert_eq!(id("sightline_inference_count_total"), 4.0);
    assert_eq!(id("sightline_inference_exec_count_total"), 4.0, "one at a time: one run each");
    assert_eq!(id("sightline_batch_size_count"), 4.0);
    assert_eq!(
        (id("sightline_model_requests_in_flight"), id("sightline_model_queue_depth")),
        (0.0, 0.0),
        "all answered"
    );
    assert!(value(&m, "process_resident_memory_bytes") > 10e6, "{m}");
    // Whole seconds in this exporter: present, but it may still read 0 this early.
    assert!(m.lines().any(|l| l.starts_with("process_cpu_seconds_total ")), "{m}");
    promtool_check(&m);

    // Unloaded and loaded again: a cache hit. Damaged on disk: a refetch from the source.
    assert_eq!(server.post_json("/model/remove", &json!({"model_id": "shapes/1"})).await.0, 200);
    assert_eq!(server.post_json("/model/add", &json!({"model_id": "shapes/1"})).await.0, 200);
    assert_eq!(server.post_json("/model/remove", &json!({"model_id": "shapes/1"})).await.0, 200);
    let cached = server.cache_dir().join("shapes/1/class_names.txt");
    std::fs::write(&cached, "damaged, and of another size").unwrap();
    assert_eq!(server.post_json("/model/add", &json!({"model_id": "shapes/1"})).await.0, 200);
    let m = server.get_text("/metrics").await;
    assert_eq!(value(&m, r#"sightline_model_cache_lookups_total{result="hit"}"#), 1.0, "{m}");
    assert_eq!(value(&m, r#"sightline_model_cache_lookups_total{result="refetch"}"#), 1.0);
    assert_eq!(value(&m, r#"sightline_model_download_attempts_total{source="local"}"#), 3.0);
    assert_eq!(value(&m, r#"sightline_model_download_bytes_total{source="local"}"#), 2.0 * model_bytes as f64);
    let loads = |source: &str| {
        value(
            &m,
            &format!(
                r#"sightline_model_load_duration_seconds_count{{model_id="shapes/1",outcome="success",source="{source}",task="object-detection"}}"#
            ),
        )
    };
    assert_eq!((loads("local"), loads("cache")), (2.0, 1.0));
    promtool_check(&m);
}

/// Every metric family the README's metrics table names, read from its first column (GPU families
/// aside: documented as absent where NVML sees no GPU).
fn documented_families() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let mut families = Vec::new();
    for line in readme.lines().filter(|l| l.starts_with("| `sightline_") || l.starts_with("| `process_")) {
        let first = line.split('|').nth(1).unwrap_or("");
        for name in first.split('`').skip(1).step_by(2) {
            if !name.contains("gpu") && !name.contains("...") && !name.is_empty() {
                families.push(name.to_owned());
            }
        }
    }
    assert!(families.len() > 20, "the README's metrics table was not found: {families:?}");
    families
}

/// Alerts and panels read 0, not "no data": on a server that has served nothing, every documented
/// family is exported (a model's own series from its load, here a pinned model's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_server_exports_every_documented_family() {
    let dir = TempDir::new("metrics-fresh");
    copy_model(dir.path(), "shapes/1", "shapes/1", |_| {});
    let grpc = free_port().to_string();
    let server = Server::start(dir.path(), &[("PINNED_MODELS", "shapes/1"), ("GRPC_PORT", &grpc)]).await;
    for _ in 0..200 {
        if server.client.get(server.url("/readiness")).send().await.unwrap().status().is_success() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let metrics = server.get_text("/metrics").await;
    let missing: Vec<String> = documented_families()
        .into_iter()
        .filter(|family| !metrics.lines().any(|l| l.starts_with(&format!("# TYPE {family} "))))
        .collect();
    assert!(missing.is_empty(), "documented but not exported on a fresh server: {missing:?}");
    // At 0, with their known labels.
    for series in [
        "sightline_model_cache_lookups_total{result=\"stale\"} 0",
        "sightline_model_download_failures_total{kind=\"source_unavailable\",source=\"local\"} 0",
        "sightline_inference_errors_total{kind=\"overloaded\",model_id=\"shapes/1\",task=\"object-detection\"} 0",
        "sightline_grpc_requests_total{code=\"OK\",method=\"RepositoryIndex\"} 0",
        "sightline_http_requests_total{handler=\"/infer/object_detection\",method=\"POST\",status=\"5xx\"} 0",
        "sightline_requests_refused_total{cause=\"too_many_images\",model_id=\"other\"} 0",
        "sightline_model_evictions_total{cause=\"capacity\",model_id=\"shapes/1\",task=\"object-detection\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == series), "{series} is not exported:\n{metrics}");
    }
    promtool_check(&metrics);
}
