//! Model artifacts from each source (local folder, a real S3-compatible server, a model API) into
//! the verified disk cache, with the faults a flaky source produces, over the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use common::model_api::{Fault, ModelApi};
use common::*;
use serde_json::{json, Value};

const IMAGE: &str = "shapes_640x480.png";
const SECRET_KEY: &str = "sk-test-SECRET-4711";

fn assets() -> PathBuf {
    repo_root().join("assets/models")
}

async fn predictions(server: &Server, id: &str) -> Value {
    let (status, v) = server.post_json("/infer/object_detection", &detect_body(id, IMAGE, 0.25, 0.45)).await;
    assert_eq!(status, 200, "{v}\n{}", server.log_text());
    without_ids(&v["predictions"])
}

/// What the shipped local copy of `shapes/1` detects.
async fn local_predictions() -> Value {
    let server = Server::start(&assets(), &[]).await;
    predictions(&server, "shapes/1").await
}

/// Visible files (not hidden temporaries or locks) anywhere under `dir`.
fn visible_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            out.extend(visible_files(&entry.path()).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            out.extend(all_files(&entry.path()));
        } else {
            out.push(entry.path().display().to_string());
        }
    }
    out
}

fn api_env<'a>(api: &'a ModelApi, cache: &'a Path) -> Vec<(&'a str, String)> {
    vec![
        ("MODEL_SOURCES", "api".into()),
        ("API_BASE_URL", api.base.clone()),
        ("API_KEY", SECRET_KEY.into()),
        ("MODEL_CACHE_DIR", cache.display().to_string()),
        ("MODEL_DIR", "/nonexistent".into()),
        ("MODEL_FETCH_ATTEMPTS", "3".into()),
        ("MODEL_FETCH_BACKOFF_MS", "50".into()),
    ]
}

async fn start_with(env: &[(&str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(Path::new("/nonexistent"), &env).await
}

fn assert_no_secrets(server: &Server) {
    let log = server.log_text();
    assert!(!log.contains("SECRET-4711"), "the API key reached the log:\n{log}");
    assert!(!log.contains("s3cr3t-signature"), "a signed URL reached the log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_api_source_gives_the_same_detections_as_the_local_copy() {
    let api = ModelApi::start(assets()).await;
    let cache = TempDir::new("api-cache");
    let server = start_with(&api_env(&api, cache.path())).await;
    assert_eq!(predictions(&server, "shapes/1").await, local_predictions().await);
    assert_eq!((api.count("/ort/shapes/1"), api.count("/files/shapes/1/weights.onnx")), (1, 1));
    assert_eq!(api.api_keys(), [SECRET_KEY]);

    // The entry has the Roboflow files plus the manifest (besides the CPU provider's saved
    // optimised graph), and the API's colours were merged in.
    let entry = cache.path().join("shapes/1");
    let files: Vec<String> = visible_files(&entry).into_iter().filter(|f| !f.starts_with("ort-optimized/")).collect();
    assert_eq!(files, ["class_names.txt", "environment.json", "manifest.json", "model_type.json", "weights.onnx"]);
    let environment: Value = serde_json::from_slice(&std::fs::read(entry.join("environment.json")).unwrap()).unwrap();
    assert_eq!(environment["COLORS"]["circle"], "#010203");
    assert_eq!(environment["COLORS"]["square"], "#00EEC3");
    let manifest: Value = serde_json::from_slice(&std::fs::read(entry.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["source"], "api");
    assert_eq!(manifest["origin"], format!("{}/ort/shapes/1", api.base));
    assert_eq!(
        manifest["files"]["weights.onnx"]["size"],
        std::fs::metadata(assets().join("shapes/1/weights.onnx")).unwrap().len()
    );
    assert_no_secrets(&server);

    // Evicted from memory, kept on disk: the next load reads the cache, not the API.
    let (status, _) = server.post_json("/model/clear", &json!({})).await;
    assert_eq!(status, 200);
    predictions(&server, "shapes/1").await;
    assert_eq!(api.count("/files/shapes/1/weights.onnx"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pose_model_from_the_api_keeps_its_keypoint_names() {
    let api = ModelApi::start(assets()).await;
    let cache = TempDir::new("api-pose");
    let server = start_with(&api_env(&api, cache.path())).await;
    let local = Server::start(&assets(), &[]).await;
    let body = detect_body("shapes-pose/1", "shapes_256_00.png", 0.25, 0.45);
    let (s1, remote) = server.post_json("/infer/keypoints_detection", &body).await;
    let (s2, reference) = local.post_json("/infer/keypoints_detection", &body).await;
    assert_eq!((s1, s2), (200, 200), "{remote}");
    assert!(!reference["predictions"][0]["keypoints"].as_array().unwrap().is_empty());
    assert_eq!(without_ids(&remote["predictions"]), without_ids(&reference["predictions"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_short_never_becomes_visible_and_the_next_request_succeeds() {
    let api = ModelApi::start(assets()).await;
    let cache = TempDir::new("api-cut");
    let server = start_with(&api_env(&api, cache.path())).await;

    // Cut on every attempt: 503 (retryable), and nothing of the model is left in the cache.
    api.fail(Fault::CutWeights, 100);
    let (status, v) = server.post_json("/infer/object_detection", &detect_body("shapes/1", IMAGE, 0.25, 0.45)).await;
    assert_eq!(status, 503, "{v}");
    assert!(v["message"].as_str().unwrap().contains("downloading weights.onnx"), "{v}");
    assert_eq!(api.count("/files/shapes/1/weights.onnx"), 3, "three attempts (MODEL_FETCH_ATTEMPTS)");
    assert!(all_files(cache.path()).is_empty(), "{:?}", all_files(cache.path()));

    // The source is back.
    api.heal();
    assert_eq!(predictions(&server, "shapes/1").await, local_predictions().await);

    // Cut once: the retry inside the same request succeeds.
    let cache2 = TempDir::new("api-cut-once");
    let server2 = start_with(&api_env(&api, cache2.path())).await;
    api.fail(Fault::CutWeights, 1);
    let before = api.count("/files/shapes/1/weights.onnx");
    predictions(&server2, "shapes/1").await;
    assert_eq!(api.count("/files/shapes/1/weights.onnx"), before + 2);
    assert_no_secrets(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_file_flipped_or_truncated_on_disk_is_fetched_again() {
    let api = ModelApi::start(assets()).await;
    let cache = TempDir::new("api-corrupt");
    let server = start_with(&api_env(&api, cache.path())).await;
    let expected = predictions(&server, "shapes/1").await;
    let weights = cache.path().join("shapes/1/weights.onnx");
    let original = std::fs::read(&weights).unwrap();

    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 2] = [
        ("flipped", |b| {
            let middle = b.len() / 3;
            b[middle] ^= 0x40
        }),
        ("truncated", |b| b.truncate(b.len() - 100)),
    ];
    for (n, (what, damage)) in damages.into_iter().enumerate() {
        let (status, _) = server.post_json("/model/remove", &json!({"model_id": "shapes/1"})).await;
        assert_eq!(status, 200);
        let mut bytes = original.clone();
        damage(&mut bytes);
        std::fs::write(&weights, &bytes).unwrap();
        assert_eq!(predictions(&server, "shapes/1").await, expected, "{what}");
        assert_eq!(api.count("/files/shapes/1/weights.onnx"), 2 + n as u32, "{what}: fetched again");
        assert_eq!(std::fs::read(&weights).unwrap(), original, "{what}: repaired");
    }
    assert!(server.log_text().contains("differs from its manifest"), "{}", server.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_statuses_reach_the_client_and_only_transient_ones_are_retried() {
    let api = ModelApi::start(assets()).await;
    let cache = TempDir::new("api-status");
    let server = start_with(&api_env(&api, cache.path())).await;
    let body = detect_body("shapes/1", IMAGE, 0.25, 0.45);

    // Unknown model: 404 with a message that says so, not retried.
    let (status, v) = server.post_json("/infer/object_detection", &detect_body("unknown/3", IMAGE, 0.5, 0.5)).await;
    assert_eq!(status, 404, "{v}");
    assert!(v["message"].as_str().unwrap().contains("Model not found: model API"), "{v}");
    assert_eq!(api.count("/ort/unknown/3"), 1);

    // 503 from the source: three attempts, then 503 with Retry-After.
    api.fail(Fault::Status(503), 100);
    let response = server.client.post(server.url("/infer/object_detection")).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let v: Value = response.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("answered 503"), "{v}");
    assert_eq!(api.count("/ort/shapes/1"), 3);

    // Permanent refusals: one request each, the spec's statuses.
    for (source_status, client_status) in [(401, 401), (403, 403), (402, 402), (423, 423), (418, 502)] {
        let before = api.count("/ort/shapes/1");
        api.fail(Fault::Status(source_status), 100);
        let (status, v) = server.post_json("/infer/object_detection", &body).await;
        assert_eq!(status, client_status, "source {source_status}: {v}");
        assert_eq!(api.count("/ort/shapes/1"), before + 1, "source {source_status} is not retried");
    }
    api.heal();
    predictions(&server, "shapes/1").await;
    assert_no_secrets(&server);

    // A source that is not there at all: 503 after the retries.
    let dead = TempDir::new("api-dead");
    let mut env = api_env(&api, dead.path());
    env[1].1 = format!("http://127.0.0.1:{}", free_port());
    let server = start_with(&env).await;
    let (status, v) = server.post_json("/infer/object_detection", &body).await;
    assert_eq!(status, 503, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_a_cache_download_the_model_once() {
    let api = ModelApi::start(assets()).await;
    let cache = TempDir::new("shared-cache");
    let env = api_env(&api, cache.path());
    let (a, b) = tokio::join!(start_with(&env), start_with(&env));
    // The download is slow, so both requests are certainly waiting on it at the same time.
    api.fail(Fault::SlowWeights(Duration::from_millis(1500)), 1);
    let during = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        a.get_json("/model/registry").await.1
    };
    let (pa, pb, registry) = tokio::join!(predictions(&a, "shapes/1"), predictions(&b, "shapes/1"), during);
    assert_eq!(pa, pb);
    // While the download ran, the registry showed the model as loading.
    assert_eq!(registry["models"].as_array().unwrap().len(), 1, "{registry}");
    let entry = &registry["models"][0];
    assert_eq!(
        (&entry["model_id"], &entry["state"], &entry["task_type"]),
        (&json!("shapes/1"), &json!("loading"), &Value::Null)
    );
    let (_, registry) = a.get_json("/model/registry").await;
    assert_eq!(registry["models"][0]["state"], "ready");
    assert_eq!(api.count("/ort/shapes/1"), 1);
    assert_eq!(api.count("/files/shapes/1/weights.onnx"), 1);
    assert_eq!(api.count("/files/shapes/1/environment.json"), 1);
}

fn s3_endpoint() -> String {
    std::env::var("SIGHTLINE_TEST_S3_ENDPOINT").expect(
        "SIGHTLINE_TEST_S3_ENDPOINT is not set: run the tests through `make test` (scripts/with-s3.sh starts moto from .venv)",
    )
}

fn s3_client() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(s3_endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A fresh bucket holding `assets/models/<model>` under `<prefix>/<model>/`.
async fn bucket_with(bucket: &str, prefix: &str, models: &[&str]) {
    let s3 = s3_client();
    s3.create_bucket().bucket(bucket).send().await.expect("create bucket (is moto running?)");
    for model in models {
        for entry in std::fs::read_dir(assets().join(model)).unwrap().flatten() {
            let key = format!("{prefix}/{model}/{}", entry.file_name().to_string_lossy());
            let body = ByteStream::from(std::fs::read(entry.path()).unwrap());
            s3.put_object().bucket(bucket).key(key).body(body).send().await.unwrap();
        }
    }
}

fn s3_env(bucket: &str, cache: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("MODEL_SOURCES", "local,s3".into()),
        ("MODEL_DIR", "/nonexistent".into()),
        ("S3_BUCKET", bucket.into()),
        ("S3_PREFIX", "team/models/".into()),
        ("AWS_ENDPOINT_URL", s3_endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("MODEL_CACHE_DIR", cache.display().to_string()),
        ("MODEL_FETCH_ATTEMPTS", "2".into()),
        ("MODEL_FETCH_BACKOFF_MS", "50".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_source_gives_the_same_detections_as_the_local_copy() {
    let bucket = format!("sightline-e2e-{}", std::process::id());
    bucket_with(&bucket, "team/models", &["shapes/1"]).await;
    let cache = TempDir::new("s3-cache");
    let server = start_with(&s3_env(&bucket, cache.path())).await;
    assert_eq!(predictions(&server, "shapes/1").await, local_predictions().await);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cache.path().join("shapes/1/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["source"], "s3", "local had no such folder, so the second source served it");
    assert_eq!(manifest["origin"], format!("s3://{bucket}/team/models/shapes/1/"));
    for name in ["weights.onnx", "environment.json", "class_names.txt", "model_type.json"] {
        let expected = std::fs::read(assets().join("shapes/1").join(name)).unwrap();
        assert_eq!(std::fs::read(cache.path().join("shapes/1").join(name)).unwrap(), expected, "{name}");
    }

    // Not in the bucket (nor in MODEL_DIR): 404 naming both places looked at.
    let (status, v) = server.post_json("/infer/object_detection", &detect_body("shapes/9", IMAGE, 0.5, 0.5)).await;
    assert_eq!(status, 404, "{v}");
    let message = v["message"].as_str().unwrap();
    // MODEL_DIR is named by its setting, not its path (/nonexistent here).
    assert!(message.contains("MODEL_DIR/shapes/9") && message.contains("s3://"), "{message}");
    assert!(!message.contains("/nonexistent"), "{message}");

    // A bucket that does not exist is a 404 too, with the store's reason.
    let cache2 = TempDir::new("s3-nobucket");
    let server = start_with(&s3_env("no-such-bucket-here", cache2.path())).await;
    let (status, v) = server.post_json("/infer/object_detection", &detect_body("shapes/1", IMAGE, 0.5, 0.5)).await;
    assert_eq!(status, 404, "{v}");
    assert!(v["message"].as_str().unwrap().contains("NoSuchBucket"), "{v}");
}

/// moto with IAM checks on from the first request: a real S3 server that refuses the test's
/// credentials (403 InvalidAccessKeyId); stopped when dropped.
struct RefusingStore(std::process::Child, u16);

impl RefusingStore {
    async fn start() -> RefusingStore {
        let port = free_port();
        let python = repo_root().join(".venv/bin/python");
        let mut child = std::process::Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return RefusingStore(child, port);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("moto did not start on {port}");
    }
}

impl Drop for RefusingStore {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `MODEL_SOURCES=s3,local` with the store at `endpoint` and `shapes/1` in MODEL_DIR only.
fn s3_then_local(endpoint: &str, models: &Path, cache: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("MODEL_SOURCES", "s3,local".into()),
        ("MODEL_DIR", models.display().to_string()),
        ("S3_BUCKET", "sightline-models".into()),
        ("AWS_ENDPOINT_URL", endpoint.into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("MODEL_CACHE_DIR", cache.display().to_string()),
        ("MODEL_FETCH_ATTEMPTS", "2".into()),
        ("MODEL_FETCH_BACKOFF_MS", "50".into()),
        ("MODEL_SOURCE_TIMEOUT_SECS", "5".into()),
    ]
}

/// As documented: a store that is down or refuses the credentials is passed over with a warning
/// and the next source serves; a model no later source has fails with the store's error (503 or
/// 403), not a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_or_refuses_the_credentials_passes_to_local_and_keeps_its_error() {
    let models = TempDir::new("pass-over-models");
    copy_model(models.path(), "shapes/1", "shapes/1", |_| {});
    let refusing = RefusingStore::start().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let refused = format!("http://127.0.0.1:{}", refusing.1);
    for (endpoint, missing_status, what) in [(closed.as_str(), 503, "down"), (refused.as_str(), 403, "refusing")] {
        let cache = TempDir::new("pass-over-cache");
        let server = start_with(&s3_then_local(endpoint, models.path(), cache.path())).await;
        assert_eq!(predictions(&server, "shapes/1").await, local_predictions().await, "{what}: local served");
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(cache.path().join("shapes/1/manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["source"], "local", "{what}");
        let log = server.log_text();
        assert!(
            log.lines().any(|l| l.contains("WARN") && l.contains("trying the next one") && l.contains("s3")),
            "{what}: the pass-over is logged as a warning:\n{log}"
        );
        let (status, v) = server.post_json("/infer/object_detection", &detect_body("shapes/9", IMAGE, 0.5, 0.5)).await;
        assert_eq!(status, missing_status, "{what}: the store's failure, not a 404: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_index_lists_the_bucket_and_loads_its_newest_version() {
    let bucket = format!("sightline-e2e-index-{}", std::process::id());
    bucket_with(&bucket, "team/models", &["shapes/1", "shapes-dyn/1"]).await;
    // A second version of shapes, and keys that are not model files: neither a model nor an error.
    let s3 = s3_client();
    for entry in std::fs::read_dir(assets().join("shapes/1")).unwrap().flatten() {
        let key = format!("team/models/shapes/2/{}", entry.file_name().to_string_lossy());
        let body = ByteStream::from(std::fs::read(entry.path()).unwrap());
        s3.put_object().bucket(&bucket).key(key).body(body).send().await.unwrap();
    }
    for key in
        ["team/models/README.md", "team/models/shapes/notes.txt", "team/models/a/b/c/d.onnx", "elsewhere/x/1/w.onnx"]
    {
        s3.put_object().bucket(&bucket).key(key).body(ByteStream::from_static(b"x")).send().await.unwrap();
    }
    let cache = TempDir::new("s3-index");
    let server = start_with(&s3_env(&bucket, cache.path())).await;
    let index = |server: &Server| {
        let request = server.client.post(server.url("/v2/repository/index"));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let listed = index(&server).await;
    let rows: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{} {} {}",
                m["name"].as_str().unwrap(),
                m["version"].as_str().unwrap(),
                m["state"].as_str().unwrap(),
                m["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "shapes/1 UNAVAILABLE not loaded (source s3)",
            "shapes/2 UNAVAILABLE not loaded (source s3)",
            "shapes-dyn/1 UNAVAILABLE not loaded (source s3)"
        ],
        "the bucket's models under S3_PREFIX, nothing else"
    );
    // Without a version, the newest the bucket holds.
    let load = server.client.post(server.url("/v2/repository/models/shapes/load")).send().await.unwrap();
    assert_eq!(load.status().as_u16(), 200);
    let listed = index(&server).await;
    let shapes2 = listed.as_array().unwrap().iter().find(|m| m["name"] == "shapes" && m["version"] == "2").unwrap();
    assert_eq!(shapes2["state"], "READY", "{listed}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cache.path().join("shapes/2/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["source"], "s3");

    // A bucket that cannot be listed leaves the index answering with what it has.
    let cache2 = TempDir::new("s3-index-nobucket");
    let server = start_with(&s3_env("no-such-bucket-here", cache2.path())).await;
    assert_eq!(index(&server).await, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_list_and_delete_over_http() {
    let cache = TempDir::new("http-store");
    let cache_env = cache.path().display().to_string();
    let server = Server::start(&assets(), &[("MODEL_CACHE_DIR", &cache_env), ("MAX_ACTIVE_MODELS", "1")]).await;

    let (status, v) = server.post_json("/models/pull", &json!({"model_id": "shapes/1"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["status"].as_str(), v["source"].as_str()), (Some("downloaded"), Some("local")));
    assert_eq!(v["bytes"], 3741528 + 23 + 304 + 67);
    let (_, v) = server.post_json("/models/pull", &json!({"model_id": "shapes/1", "source": "local"})).await;
    assert_eq!(v["status"], "cached");
    let (_, registry) = server.get_json("/model/registry").await;
    assert_eq!(registry["models"], json!([]), "pull does not load");

    let (_, v) = server.get_json("/models").await;
    assert_eq!(v["models"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        (&v["models"][0]["model_id"], &v["models"][0]["integrity"], &v["models"][0]["loaded"]),
        (&json!("shapes/1"), &json!("ok"), &json!(false))
    );
    predictions(&server, "shapes/1").await;
    let (_, v) = server.get_json("/models").await;
    assert_eq!(v["models"][0]["loaded"], true);

    // Evicted by a second model (MAX_ACTIVE_MODELS=1): out of memory, still on disk.
    predictions(&server, "shapes-dyn/1").await;
    let (_, v) = server.get_json("/models").await;
    let rows: Vec<(&str, bool)> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["model_id"].as_str().unwrap(), m["loaded"].as_bool().unwrap()))
        .collect();
    assert_eq!(rows, [("shapes-dyn/1", true), ("shapes/1", false)]);

    // A flipped byte: a size check misses it, a sha256 check does not.
    let env_file = cache.path().join("shapes/1/environment.json");
    let mut bytes = std::fs::read(&env_file).unwrap();
    bytes[5] ^= 1;
    std::fs::write(&env_file, bytes).unwrap();
    let (_, v) = server.get_json("/models").await;
    assert_eq!(v["models"][1]["integrity"], "ok");
    let (_, v) = server.get_json("/models?verify=sha256").await;
    assert_eq!(v["models"][1]["integrity"], "corrupt");
    assert!(v["models"][1]["problem"].as_str().unwrap().starts_with("environment.json"), "{v}");

    let response = server.client.delete(server.url("/models/shapes-dyn/1")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let v: Value = response.json().await.unwrap();
    assert_eq!((v["unloaded"].as_bool(), v["deleted_from_disk"].as_bool()), (Some(true), Some(true)));
    let (_, registry) = server.get_json("/model/registry").await;
    assert_eq!(registry["models"], json!([]));
    assert!(!cache.path().join("shapes-dyn/1").exists());
    let response = server.client.delete(server.url("/models/shapes-dyn/1")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);

    for (body, expected) in [
        (json!({"model_id": "nope/1"}), 404),
        (json!({"model_id": "../etc"}), 400),
        (json!({"model_id": "a/b/c"}), 400),
        (json!({"model_id": "shapes/1", "source": "ftp"}), 422),
        (json!({"source": "local"}), 422),
    ] {
        let (status, v) = server.post_json("/models/pull", &body).await;
        assert_eq!(status, expected, "{body}: {v}");
    }
    assert!(!cache.path().join("nope").exists(), "an unknown id leaves nothing in the cache");
}

fn cli(args: &[&str], env: &[(&str, String)]) -> (bool, String, String) {
    let mut cmd = Command::new(binary());
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_pulls_lists_and_removes() {
    let bucket = format!("sightline-cli-{}", std::process::id());
    bucket_with(&bucket, "team/models", &["shapes-cls/1"]).await;
    let cache = TempDir::new("cli");
    let mut env = s3_env(&bucket, cache.path());
    env.retain(|(k, _)| *k != "MODEL_DIR");
    env.push(("MODEL_DIR", assets().display().to_string()));

    let (ok, out, err) = cli(&["pull", "shapes/1"], &env);
    assert!(ok, "{out}{err}");
    assert!(out.contains("shapes/1: downloaded from local"), "{out}");
    let (ok, out, err) = cli(&["pull", "shapes-cls/1", "--source", "s3"], &env);
    assert!(ok, "{out}{err}");
    assert!(out.contains("shapes-cls/1: downloaded from s3"), "{out}");
    let (ok, out, _) = cli(&["pull", "shapes/1"], &env);
    assert!(ok && out.contains("already cached"), "{out}");

    let (ok, out, err) = cli(&["models", "--verify"], &env);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[1].starts_with("shapes-cls/1") && lines[1].contains(" s3 ") && lines[1].contains(" ok "), "{out}");
    assert!(lines[2].starts_with("shapes/1") && lines[2].contains(" local ") && lines[2].contains(" ok "), "{out}");

    let (ok, out, _) = cli(&["rm", "shapes/1"], &env);
    assert!(ok && out.contains("shapes/1: removed"), "{out}");
    let (ok, _, err) = cli(&["rm", "shapes/1"], &env);
    assert!(!ok && err.contains("shapes/1 is not in the model cache"), "{err}");
    let (ok, _, err) = cli(&["pull", "nope/1"], &env);
    assert!(!ok && err.contains("Model not found"), "{err}");
    let (ok, _, err) = cli(&["pull", "../x"], &env);
    assert!(!ok && err.contains("Invalid Model ID"), "{err}");
    let (_, out, _) = cli(&["models"], &env);
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_slower_than_the_wait_bound_is_503_then_served() {
    let api = ModelApi::start(assets()).await;
    let cache = TempDir::new("load-wait");
    let mut env = api_env(&api, cache.path());
    env.push(("MODEL_LOAD_WAIT_SECS", "1".into()));
    let server = start_with(&env).await;
    api.fail(Fault::SlowWeights(Duration::from_millis(2500)), 1);
    let body = detect_body("shapes/1", IMAGE, 0.25, 0.45);
    let response = server.client.post(server.url("/infer/object_detection")).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let v: Value = response.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("Model is temporarily not ready - retry request."), "{v}");
    // The load went on without the request that started it; the retry is served.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    predictions(&server, "shapes/1").await;
    assert_eq!(api.count("/files/shapes/1/weights.onnx"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_in_model_dir_reaches_the_next_load() {
    let models = TempDir::new("edited");
    copy_model(models.path(), "shapes/1", "shapes/1", |_| {});
    let server = Server::start(models.path(), &[]).await;
    let classes = |p: &Value| -> Vec<String> {
        p.as_array().unwrap().iter().map(|d| d["class"].as_str().unwrap().to_owned()).collect()
    };
    assert!(classes(&predictions(&server, "shapes/1").await).contains(&"circle".to_owned()));
    std::fs::write(models.path().join("shapes/1/class_names.txt"), "disc\nsquare\ntriangle\n").unwrap();
    let (status, _) = server.post_json("/model/remove", &json!({"model_id": "shapes/1"})).await;
    assert_eq!(status, 200);
    let after = classes(&predictions(&server, "shapes/1").await);
    assert!(after.contains(&"disc".to_owned()) && !after.contains(&"circle".to_owned()), "{after:?}");
}
