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
    assert!(message.contains("MODEL_CACHE_DIR") && message.contains("cannot be written"), "{message}");
    assert!(!message.contains(&cache_dir), "the body names the setting, not the server's path: {message}");
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

/// A raw HTTP/1.1 exchange: sends `head` and the first `sent` bytes of a body of `length` bytes,
/// never the rest, and reads what the server answers (its status line and body).
async fn partial_post(server: &Server, path: &str, length: usize, sent: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    // The answer ends the exchange: the server closes, or its body is complete.
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse::<usize>().ok());
                if length.is_some_and(|n| body.len() >= n) {
                    break;
                }
            }
        }
    };
    // Only a hang guard: an answer that waits for the body never sent never comes.
    let answered = tokio::time::timeout(std::time::Duration::from_secs(30), read).await;
    assert!(answered.is_ok(), "no answer while the rest of the body was withheld");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// With a server key, the key is looked for in the query, the headers and the first bytes of a
/// JSON body: a large body without it (or with a wrong one) is refused from its first bytes, the
/// rest never read; a body with the key first is served whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_body_is_refused_from_its_first_bytes() {
    let env = [("SIGHTLINE_API_KEY", "secret"), ("CLIENT_BODY_TIMEOUT_SECS", "300")];
    let server = Server::start(&repo_root().join("assets/models"), &env).await;
    let length = 18 << 20;
    let head = format!(r#"{{"model_id": "shapes/1", "image": {{"type": "base64", "value": "{}"#, "A".repeat(100_000));
    let (status, body) = partial_post(&server, "/infer/object_detection", length, head.as_bytes()).await;
    assert_eq!(status, 401, "no key in the first bytes: {body}");
    assert!(body.contains("first 64 KiB"), "{body}");
    let wrong = format!(r#"{{"api_key": "guess", "image": "{}"#, "A".repeat(1000));
    let (status, body) = partial_post(&server, "/infer/object_detection", length, wrong.as_bytes()).await;
    assert_eq!(status, 401, "a wrong key: {body}");
    assert!(body.contains("not valid"), "{body}");
    // "None" in the body counts as no key, as it does in the query and the header.
    let none = format!(r#"{{"api_key": "None", "image": "{}"#, "A".repeat(1000));
    let (status, body) = partial_post(&server, "/infer/object_detection", length, none.as_bytes()).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("requires an API key"), "{body}");

    let mut request = detect("shapes/1");
    let keyed = json!({"api_key": "secret", "model_id": "shapes/1", "image": request["image"].take()});
    let (status, body) = server.post_json("/infer/object_detection", &keyed).await;
    assert_eq!(status, 200, "the key first, the image after: the whole body reaches the handler: {body}");
    assert!(!body["predictions"].as_array().unwrap().is_empty());
}

/// `sightline_http_requests_in_flight` from `/metrics`.
async fn http_in_flight(server: &Server) -> f64 {
    let text = server.get_text("/metrics").await;
    text.lines().find_map(|l| l.strip_prefix("sightline_http_requests_in_flight ")?.parse().ok()).unwrap()
}

/// A body that stalls is answered 408 with the JSON error once CLIENT_BODY_TIMEOUT_SECS has
/// passed, and a request whose body has not arrived is not counted in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_is_cut_off_and_not_counted_in_flight() {
    let server = Server::start(&repo_root().join("assets/models"), &[("CLIENT_BODY_TIMEOUT_SECS", "1")]).await;
    let (status, body) = partial_post(&server, "/infer/object_detection", 1000, br#"{"model_id": "#).await;
    assert_eq!(status, 408, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert!(error["message"].as_str().unwrap().contains("CLIENT_BODY_TIMEOUT_SECS"), "{error}");

    let server = Server::start(&repo_root().join("assets/models"), &[("CLIENT_BODY_TIMEOUT_SECS", "300")]).await;
    let stalled: Vec<_> = (0..5)
        .map(|_| {
            let base = server.base.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
                let head = "POST /infer/object_detection HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
                stream.write_all(head.as_bytes()).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_secs(120)).await;
                drop(stream);
            })
        })
        .collect();
    // The stalled requests have reached the handler (their heads are read) once /metrics answers
    // after them on the same two workers; give the connections a moment to be accepted.
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(http_in_flight(&server).await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let text = server.get_text("/metrics").await;
    assert!(seen.iter().all(|&n| n == 0.0), "stalled bodies counted in flight: {seen:?}");
    assert!(text.contains("sightline_http_requests_in_flight 0"), "{text}");
    let (status, _) = server.post_json("/infer/object_detection", &detect("shapes/1")).await;
    assert_eq!(status, 200);
    for task in stalled {
        task.abort();
    }
}

/// The lower items: HEAD wherever GET is, answers without NaN or infinity, error bodies that name
/// settings instead of server paths, 414 for an over-long URL, and no ERROR line a client can cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_faults_get_proper_answers() {
    let models = TempDir::new("faults-small");
    model_folder(models.path(), "shapes/1", |_| {});
    model_folder(models.path(), "garbage/1", |d| std::fs::write(d.join("weights.onnx"), b"not an onnx file").unwrap());
    model_folder(models.path(), "non-finite/1", |d| {
        std::fs::copy(data("models/non-finite/weights.onnx"), d.join("weights.onnx")).unwrap();
    });
    let server = Server::start(models.path(), &[]).await;

    for path in ["/healthz", "/readiness", "/info", "/model/registry", "/openapi.json", "/v2/health/live"] {
        let get = server.client.get(server.url(path)).send().await.unwrap();
        let head = server.client.head(server.url(path)).send().await.unwrap();
        assert_eq!(head.status(), get.status(), "HEAD {path}");
        assert_eq!(head.headers().get("content-type"), get.headers().get("content-type"), "HEAD {path}");
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
    }

    // A model whose output holds NaN and infinity: the two finite boxes, no nulls.
    let (status, body) = server.post_json("/infer/object_detection", &detect("non-finite/1")).await;
    assert_eq!(status, 200, "{body}");
    let predictions = body["predictions"].as_array().unwrap();
    let classes: Vec<&str> = predictions.iter().map(|p| p["class"].as_str().unwrap()).collect();
    assert_eq!(classes, ["circle", "square"], "{body}");
    assert!(!body.to_string().contains("null"), "{body}");
    assert!(server.log_text().contains("NaN or infinity"), "dropped with a warning");

    // Error bodies name models and settings, never the server's folders.
    let (status, body) = server.post_json("/infer/object_detection", &detect("nope/3")).await;
    assert_eq!(status, 404);
    let (_, broken) = server.post_json("/model/add", &json!({"model_id": "garbage/1"})).await;
    for message in [body["message"].as_str().unwrap(), broken["message"].as_str().unwrap()] {
        assert!(!message.contains(&*models.path().display().to_string()), "{message}");
        assert!(!message.contains(&*server.cache_dir().display().to_string()), "{message}");
        assert!(message.contains("MODEL_DIR") || message.contains("MODEL_CACHE_DIR"), "{message}");
    }

    let long = format!("/healthz?q={}", "a".repeat(20_000));
    let response = server.client.get(server.url(&long)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 414);
    let error: Value = response.json().await.unwrap();
    assert!(error["message"].as_str().unwrap().contains("URI Too Long"), "{error}");

    // Malformed HTTP and over-long request lines are the client's doing: warnings at most.
    for request in ["GARBAGE\r\n\r\n".to_owned(), format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000))] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(server.base.trim_start_matches("http://")).await.unwrap();
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 4"), "{}", String::from_utf8_lossy(&answer));
    }
    let (status, _) = server.post_json("/infer/object_detection", &detect("nope/4")).await;
    assert_eq!(status, 404);
    let log = server.log_text();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    let broken_load = |l: &&str| l.contains("garbage/1");
    assert!(errors.iter().all(broken_load), "only the broken model is an error: {errors:#?}");
    assert!(log.contains("connection closed"), "the malformed requests are still logged:\n{log}");
}
