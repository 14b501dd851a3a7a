//! The HTTP contract around inference: errors and their statuses, model management, LRU over
//! HTTP, single-flight loading, readiness with pinned models, and `/metrics` linted by promtool.

mod common;

use std::process::Command;

use base64::Engine;
use common::*;
use serde_json::{json, Value};

/// A model folder with every kind of breakage next to a good model.
fn models_with_broken_ones() -> TempDir {
    let dir = TempDir::new("contract");
    model_folder(dir.path(), "shapes/1", |_| {});
    model_folder(dir.path(), "shapes-stretch/1", |d| std::fs::write(d.join("environment.json"), STRETCH_ENV).unwrap());
    model_folder(dir.path(), "garbage/1", |d| std::fs::write(d.join("weights.onnx"), b"not an onnx file").unwrap());
    model_folder(dir.path(), "two-classes/1", |d| {
        std::fs::write(d.join("class_names.txt"), "circle\nsquare\n").unwrap()
    });
    model_folder(dir.path(), "detr/1", |d| {
        std::fs::write(
            d.join("model_type.json"),
            r#"{"project_task_type": "object-detection", "model_type": "detr-resnet50"}"#,
        )
        .unwrap()
    });
    dir
}

/// The PNG signature, an IHDR for a 100000 x 100000 RGB image, a token IDAT (an empty zlib stream)
/// and IEND: 65 bytes that would decode to 30 GB.
fn png_bomb() -> String {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        let body: Vec<u8> = kind.iter().chain(data).copied().collect();
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
        out
    }
    let mut ihdr = 100_000u32.to_be_bytes().to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    png.extend(chunk(b"IEND", &[]));
    base64::engine::general_purpose::STANDARD.encode(png)
}

fn message(v: &Value) -> &str {
    v["message"].as_str().unwrap_or_else(|| panic!("no message in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_json_errors_with_the_right_status() {
    let models = models_with_broken_ones();
    let server = Server::start(models.path(), &[("MAX_BODY_BYTES", "2000000")]).await;
    let post = |body: Value| {
        let server = &server;
        async move { server.post_json("/infer/object_detection", &body).await }
    };

    let (s, v) = post(json!({"model_id": "shapes/1", "image": {"type": "base64", "value": "%%%not base64%%%"}})).await;
    assert_eq!((s, message(&v).contains("Malformed base64")), (400, true), "{v}");
    let (s, v) = post(json!({"model_id": "shapes/1", "image": {"type": "base64", "value": "aGVsbG8gd29ybGQ="}})).await;
    assert_eq!((s, message(&v).contains("Data is not image")), (400, true), "{v}");
    let (s, v) = post(json!({"model_id": "shapes/1", "image": {"type": "base64", "value": ""}})).await;
    assert_eq!((s, message(&v).contains("Empty image payload")), (400, true), "{v}");
    for kind in ["numpy", "file", "url", "weird"] {
        let (s, v) = post(json!({"model_id": "shapes/1", "image": {"type": kind, "value": "/etc/passwd"}})).await;
        assert_eq!(s, 400, "{kind}: {v}");
    }

    let (s, v) = server.post_raw("/infer/object_detection", "application/json", b"{\"model_id\": ".to_vec()).await;
    assert_eq!(s, 422, "malformed JSON: {v}");
    assert!(v["detail"].is_array());
    let (s, v) = post(json!({"model_id": "shapes/1"})).await;
    assert_eq!((s, message(&v).contains("image")), (422, true), "missing image: {v}");
    let (s, v) = post(json!({"model_id": "shapes/1", "image": {"type": "base64", "value": image_b64("shapes_256_00.png")}, "confidence": 1.5})).await;
    assert_eq!(s, 422, "confidence out of range: {v}");

    let image = image_b64("shapes_256_00.png");
    let (s, v) = post(json!({"model_id": "nope/1", "image": {"type": "base64", "value": image}})).await;
    assert_eq!((s, message(&v).contains("nope/1")), (404, true), "unknown model: {v}");
    for bad_id in ["../../etc", "a/b/c", "shapes", "..%2f..%2fetc/1", "shapes/../1"] {
        let (s, v) = post(json!({"model_id": bad_id, "image": {"type": "base64", "value": image}})).await;
        assert_eq!((s, message(&v).contains("Invalid Model ID")), (400, true), "{bad_id}: {v}");
    }

    let (s, v) = post(json!({"model_id": "garbage/1", "image": {"type": "base64", "value": image}})).await;
    assert_eq!(s, 500, "{v}");
    assert!(message(&v).contains("garbage/1/weights.onnx"), "the error names the file: {v}");
    let (s, v) = post(json!({"model_id": "two-classes/1", "image": {"type": "base64", "value": image}})).await;
    assert_eq!(s, 500, "{v}");
    assert!(message(&v).contains("3 class scores") && message(&v).contains("2 class names"), "{v}");
    let (s, v) = post(json!({"model_id": "detr/1", "image": {"type": "base64", "value": image}})).await;
    assert_eq!((s, message(&v).contains("detr-resnet50")), (500, true), "{v}");
    let (_, registry) = server.get_json("/model/registry").await;
    let loaded: Vec<&str> =
        registry["models"].as_array().unwrap().iter().map(|m| m["model_id"].as_str().unwrap()).collect();
    assert_eq!(loaded, ["shapes/1"], "failed loads leave nothing registered: {registry}");

    // A decompression bomb: a tiny PNG declaring 100000 x 100000 pixels is refused from its header.
    let (s, v) = post(json!({"model_id": "shapes/1", "image": {"type": "base64", "value": png_bomb()}})).await;
    assert_eq!((s, message(&v).contains("exceeds")), (400, true), "{v}");

    let big = json!({"model_id": "shapes/1", "image": {"type": "base64", "value": "A".repeat(3_000_000)}});
    let (s, v) =
        server.post_raw("/infer/object_detection", "application/json", serde_json::to_vec(&big).unwrap()).await;
    assert_eq!((s, message(&v).contains("MAX_BODY_BYTES")), (413, true), "{v}");

    let (s, v) = server.get_json("/no/such/route/here").await;
    assert_eq!((s, message(&v)), (404, "Not Found"));

    // Still serving after all of that.
    let (s, _) =
        server.post_json("/infer/object_detection", &detect_body("shapes/1", "shapes_256_00.png", 0.25, 0.45)).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_management_routes_and_lru_over_http() {
    let models = models_with_broken_ones();
    let server = Server::start(models.path(), &[("MAX_ACTIVE_MODELS", "1")]).await;
    let ids = |v: &Value| -> Vec<String> {
        v["models"].as_array().unwrap().iter().map(|m| m["model_id"].as_str().unwrap().to_owned()).collect()
    };

    let (s, v) = server.post_json("/model/add", &json!({"model_id": "shapes/1", "api_key": null})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v), ["shapes/1"]);
    let entry = &v["models"][0];
    assert_eq!(entry["task_type"], "object-detection");
    assert_eq!(
        (entry["input_width"].as_u64(), entry["input_height"].as_u64(), entry["batch_size"].as_u64()),
        (Some(256), Some(256), Some(1))
    );
    assert!(entry.as_object().unwrap().contains_key("vram_bytes"), "nulls are kept on management routes");
    assert_eq!(entry["state"], "ready");
    let weights = std::fs::metadata(repo_root().join("assets/models/shapes/1/weights.onnx")).unwrap().len();
    // Measured (tests/tests/memory.rs has the details): at least the weights ONNX Runtime holds.
    assert!(entry["resident_bytes"].as_u64().unwrap() >= weights, "{entry}");
    let (s, v) = server.post_json("/model/add", &json!({"model_id": "shapes/1"})).await;
    assert_eq!((s, ids(&v)), (200, vec!["shapes/1".to_owned()]), "add is idempotent");

    // MAX_ACTIVE_MODELS=1: inferring with another model evicts the first.
    let (s, _) = server
        .post_json("/infer/object_detection", &detect_body("shapes-stretch/1", "shapes_256_00.png", 0.25, 0.45))
        .await;
    assert_eq!(s, 200);
    let (_, v) = server.get_json("/model/registry?api_key=ignored").await;
    assert_eq!(ids(&v), ["shapes-stretch/1"]);

    let (s, v) = server.post_json("/model/remove", &json!({"model_id": "shapes-stretch/1"})).await;
    assert_eq!((s, ids(&v).len()), (200, 0));
    let (s, v) = server.post_json("/model/remove", &json!({"model_id": "never/1"})).await;
    assert_eq!(s, 200, "removing an unknown model is not an error: {v}");
    let (s, v) = server.post_json("/model/add", &json!({"model_id": "missing/1"})).await;
    assert_eq!(s, 404, "{v}");
    let (s, _) = server.post_json("/model/add", &json!({"model_id": "a/b/c"})).await;
    assert_eq!(s, 400);
    let (s, _) = server.post_json("/model/add", &json!({})).await;
    assert_eq!(s, 422);

    server.post_json("/model/add", &json!({"model_id": "shapes/1"})).await;
    let r = server.client.post(server.url("/model/clear")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["models"], json!([]));

    let (s, info) = server.get_json("/info").await;
    assert_eq!(s, 200);
    for key in ["name", "version", "uuid"] {
        assert!(info[key].is_string(), "{info}");
    }
    assert_eq!(server.get_json("/healthz").await, (200, json!({"status": "healthy"})));
    assert_eq!(server.get_json("/readiness").await, (200, json!({"status": "ready"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_load_the_model_once_and_metrics_pass_promtool() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let body = detect_body("shapes/1", "shapes_256_03.png", 0.25, 0.45);
    let requests = (0..32).map(|_| server.post_json("/infer/object_detection", &body));
    let results = futures::future::join_all(requests).await;
    let first = &results[0].1;
    for (status, v) in &results {
        assert_eq!(*status, 200, "{v}");
        assert_eq!(v["predictions"].as_array().unwrap().len(), first["predictions"].as_array().unwrap().len());
    }
    // One failing request to see the error counter.
    server
        .post_json(
            "/infer/object_detection",
            &json!({"model_id": "shapes/1", "image": {"type": "base64", "value": "aGVsbG8="}}),
        )
        .await;

    let text = server.get_text("/metrics").await;
    let line =
        |series: &str| -> f64 { metric_value(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}")) };
    assert_eq!(
        line(r#"sightline_model_loads_total{model_id="shapes/1",outcome="success",task="object-detection"}"#),
        1.0,
        "single flight"
    );
    assert_eq!(line(r#"sightline_inference_requests_total{model_id="shapes/1",task="object-detection"}"#), 33.0);
    assert_eq!(
        line(r#"sightline_inference_errors_total{kind="bad_image",model_id="shapes/1",task="object-detection"}"#),
        1.0
    );
    assert_eq!(line(r#"sightline_model_loaded{model_id="shapes/1",task="object-detection"}"#), 1.0);
    assert_eq!(
        line(r#"sightline_inference_duration_seconds_count{model_id="shapes/1",task="object-detection"}"#),
        32.0
    );
    assert_eq!(
        line(r#"sightline_http_requests_total{handler="/infer/object_detection",method="POST",status="2xx"}"#),
        32.0
    );

    promtool_check(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_models_are_loaded_before_ready_and_survive_eviction() {
    let models = models_with_broken_ones();
    let server = Server::start(models.path(), &[("PINNED_MODELS", "shapes/1"), ("MAX_ACTIVE_MODELS", "1")]).await;
    let mut ready = false;
    for _ in 0..200 {
        if server.get_json("/readiness").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "{}", server.log_text());
    let (_, v) = server.get_json("/model/registry").await;
    assert_eq!(v["models"][0]["model_id"], "shapes/1");
    let (s, _) = server
        .post_json("/infer/object_detection", &detect_body("shapes-stretch/1", "shapes_256_00.png", 0.25, 0.45))
        .await;
    assert_eq!(s, 200);
    let (_, v) = server.get_json("/model/registry").await;
    let ids: Vec<&str> = v["models"].as_array().unwrap().iter().map(|m| m["model_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["shapes/1", "shapes-stretch/1"], "the pinned model stays even over the cap");
}

#[test]
fn start_up_fails_clearly_without_onnx_runtime() {
    for (value, expect) in [(Some("/nonexistent/libonnxruntime.so.1.31.1"), "no such file"), (None, "not set")] {
        let mut cmd = Command::new(binary());
        cmd.env_clear().env("PORT", free_port().to_string()).env("MODEL_DIR", repo_root().join("assets/models"));
        if let Some(v) = value {
            cmd.env("ORT_DYLIB_PATH", v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("ORT_DYLIB_PATH") && stderr.contains(expect), "{stderr}");
    }
    // A library that is not ONNX Runtime: an error naming the variable, not a crash.
    let not_ort = ["/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if let Some(lib) = not_ort {
        let out = Command::new(binary())
            .env_clear()
            .env("PORT", free_port().to_string())
            .env("ORT_DYLIB_PATH", lib)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("ORT_DYLIB_PATH"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_list_of_images_does_not_overflow_a_short_queue() {
    let server = Server::start(&repo_root().join("assets/models"), &[("MODEL_QUEUE_CAPACITY", "4")]).await;
    let image = json!({"type": "base64", "value": image_b64("shapes_256_05.png")});
    let body = json!({"model_id": "shapes/1", "confidence": 0.25, "image": vec![image; 40]});
    let (status, v) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(status, 200, "{v}");
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 40);
    let summary = |item: &Value| -> Vec<(String, String)> {
        item["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["class"].to_string(), p["confidence"].to_string()))
            .collect()
    };
    assert_eq!(summary(&items[0]).len(), 1, "one detection, as in the reference: {}", items[0]);
    assert!(items.iter().all(|i| summary(i) == summary(&items[0])), "same image, same answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_headers_tell_the_model_the_cold_start_and_the_times() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let body = detect_body("shapes/1", "shapes_256_00.png", 0.25, 0.45);
    let send = || {
        server.client.post(server.url("/infer/object_detection")).json(&body).header("X-Request-ID", "req-42").send()
    };
    let header = |r: &reqwest::Response, name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let first = send().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(header(&first, "x-model-id").as_deref(), Some("shapes/1"));
    assert_eq!(header(&first, "x-model-cold-start").as_deref(), Some("true"));
    let load: f64 = header(&first, "x-model-load-time").expect("load time on a cold start").parse().unwrap();
    let total: f64 = header(&first, "x-processing-time").unwrap().parse().unwrap();
    assert!(load > 0.0 && total >= load, "{load} {total}");
    assert_eq!(header(&first, "x-request-id").as_deref(), Some("req-42"), "echoed");
    let second = send().await.unwrap();
    assert_eq!(header(&second, "x-model-cold-start").as_deref(), Some("false"));
    assert!(header(&second, "x-model-load-time").is_none());
    let third = server.client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(header(&third, "x-request-id").map(|v| v.len()), Some(36), "generated when absent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_count_and_the_wait_bound_a_request_is_429_with_a_retry_after_from_the_predicted_wait() {
    let env = [("MODEL_QUEUE_CAPACITY", "1"), ("MAX_QUEUE_DELAY_MS", "1")];
    let server = Server::start(&repo_root().join("assets/models"), &env).await;
    let body = detect_body("shapes/1", "shapes_640x480.png", 0.25, 0.45);
    let (status, _) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(status, 200, "warm up: the model is loaded and its pace measured");
    let requests = (0..48).map(|_| server.client.post(server.url("/infer/object_detection")).json(&body).send());
    let responses = futures::future::join_all(requests).await;
    let mut statuses = Vec::new();
    for response in responses {
        let response = response.unwrap();
        let status = response.status().as_u16();
        if status == 429 {
            let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            let v: Value = response.json().await.unwrap();
            let message = v["message"].as_str().unwrap();
            // "... about N ms of work, over MAX_QUEUE_DELAY_MS=1 ...": the retry is the excess, rounded up.
            let work: f64 =
                message.split("about ").nth(1).and_then(|m| m.split(" ms").next()).unwrap().parse().unwrap();
            assert!(message.contains("MAX_QUEUE_DELAY_MS=1"), "{message}");
            assert_eq!(retry_after, (((work - 1.0) / 1000.0).ceil() as u64).max(1), "{message}");
        }
        statuses.push(status);
    }
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    assert!(statuses.contains(&429), "48 requests at once against a queue of one: {statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let line = format!("sightline_requests_refused_total{{cause=\"queue_wait\",model_id=\"shapes/1\"}} {refused}");
    assert!(metrics.contains(&line), "{line} in {metrics}");
}

/// Admission counts what waits, not what has answered: clients that keep earlier responses open
/// (unread) while sending the next request never see a refusal at the count limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_the_count_nothing_is_refused_while_answered_responses_are_still_held() {
    let env = [("MODEL_QUEUE_CAPACITY", "8"), ("MAX_QUEUE_DELAY_MS", "0")];
    let server = Server::start(&repo_root().join("assets/models"), &env).await;
    let mut body = detect_body("shapes/1", "shapes_640x480.png", 0.25, 0.45);
    body["visualize_predictions"] = json!(true);
    let (status, _) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(status, 200);
    let mut held = Vec::new();
    for round in 0..12 {
        let requests = (0..8).map(|_| server.client.post(server.url("/infer/object_detection")).json(&body).send());
        for response in futures::future::join_all(requests).await {
            let response = response.unwrap();
            assert_eq!(response.status().as_u16(), 200, "round {round}: {:?}", response.text().await);
            // The body (a visualisation) is left unread: the response stays open.
            held.push(response);
        }
    }
    assert_eq!(held.len(), 96);
}

/// A list is admitted as one unit: its own images never fill the queue against it, and a list no
/// limit can ever admit is a 413 naming the limit, never a 429 a client would retry forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_is_admitted_whole_and_one_past_max_images_per_request_is_413() {
    let env = [("MODEL_QUEUE_CAPACITY", "2"), ("MAX_QUEUE_DELAY_MS", "0"), ("MAX_IMAGES_PER_REQUEST", "20")];
    let server = Server::start(&repo_root().join("assets/models"), &env).await;
    let image = json!({"type": "base64", "value": image_b64("shapes_256_05.png")});
    for _ in 0..5 {
        let body = json!({"model_id": "shapes/1", "confidence": 0.25, "image": vec![image.clone(); 20]});
        let (status, v) = server.post_json("/infer/object_detection", &body).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v.as_array().unwrap().len(), 20);
    }
    let body = json!({"model_id": "shapes/1", "confidence": 0.25, "image": vec![image; 21]});
    let (status, v) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(status, 413, "{v}");
    assert!(v["message"].as_str().unwrap().contains("MAX_IMAGES_PER_REQUEST=20"), "{v}");
    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("sightline_requests_refused_total{cause=\"too_many_images\",model_id=\"shapes/1\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_id_in_the_query_fills_a_body_without_one_and_the_body_wins() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let mut body = detect_body("shapes/1", "shapes_640x480.png", 0.25, 0.45);
    let (status, from_body) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(status, 200, "{from_body}");
    body.as_object_mut().unwrap().remove("model_id");
    let (status, from_query) = server.post_json("/infer/object_detection?model_id=shapes/1", &body).await;
    assert_eq!(status, 200, "{from_query}");
    assert_eq!(without_ids(&from_query["predictions"]), without_ids(&from_body["predictions"]));
    body["model_id"] = json!("shapes/1");
    let (status, _) = server.post_json("/infer/object_detection?model_id=shapes/1", &body).await;
    assert_eq!(status, 200, "the same id in both places");
    // A different id in the query: the body's model answers (the query only steers the ingress).
    let response = server
        .client
        .post(server.url("/infer/object_detection?model_id=shapes-dyn/1"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["X-Model-Id"], "shapes/1");
    let (status, error) =
        server.post_json("/infer/object_detection?model_id=../etc/1", &json!({"image": body["image"]})).await;
    assert_eq!(status, 400, "a query id is validated like a body id: {error}");
}
