//! The `hf` model source against a stand-in for the Hugging Face Hub (tests/support/hf_hub_server.py,
//! which answers resolve requests, LFS redirects with `X-Linked-Etag`, ranges, 401/403/404 with the
//! hub's `X-Error-Code`s): download into the verified cache, revision pinning, a cut connection
//! resumed, a corrupted file fetched again, private and gated repositories, redirects to plain http
//! refused; and a hub model served by `/embed/image` as fastembed embeds it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const TOKEN: &str = "hf_test_token_0123456789";
const MAIN: &str = "1111111111111111111111111111111111111111";
const OLD: &str = "2222222222222222222222222222222222222222";

struct Hub {
    child: Child,
    base: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Hub {
    fn start(config: Value) -> Hub {
        let dir = TempDir::new("hub");
        let (config_path, port_file, log) =
            (dir.path().join("config.json"), dir.path().join("port"), dir.path().join("log.jsonl"));
        std::fs::write(&config_path, config.to_string()).unwrap();
        let child = Command::new("python3")
            .arg(repo_root().join("tests/support/hf_hub_server.py"))
            .args(["--config", config_path.to_str().unwrap(), "--port-file", port_file.to_str().unwrap()])
            .args(["--log", log.to_str().unwrap()])
            .spawn()
            .expect("start the stand-in hub");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                break port.trim().to_owned();
            }
            assert!(Instant::now() < deadline, "the stand-in hub did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Hub { child, base: format!("http://127.0.0.1:{port}"), log, _dir: dir }
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn fixture(name: &str) -> PathBuf {
    repo_root().join("assets/models/embed").join(name)
}

/// A published model's `preprocessor_config.json` (tests/data/embed-configs).
fn config(model: &str) -> PathBuf {
    data(&format!("embed-configs/{model}.preprocessor_config.json"))
}

/// A repository's files: the fixture folder's, with a README and `.gitattributes` the source skips.
fn files_of(folder: &str, extra: &Path) -> Value {
    let mut files = serde_json::Map::new();
    for entry in std::fs::read_dir(fixture(folder)).unwrap() {
        let path = entry.unwrap().path();
        files.insert(path.file_name().unwrap().to_string_lossy().into_owned(), json!(path));
    }
    files.insert("README.md".into(), json!(extra));
    files.insert(".gitattributes".into(), json!(extra));
    Value::Object(files)
}

fn hub_config(extra: &Path, faults: Value, redirect: Option<&str>) -> Value {
    let vision = files_of("clip-tiny-vision", extra);
    let mut old = vision.clone();
    old.as_object_mut().unwrap().remove("preprocessor_config.json");
    old.as_object_mut().unwrap().insert("old_notes.txt".into(), json!(extra));
    old.as_object_mut()
        .unwrap()
        .insert("preprocessor_config.json".into(), json!(fixture("clip-tiny-vision").join("preprocessor_config.json")));
    json!({
        "token": TOKEN,
        "lfs_redirect_base": redirect,
        "repos": {
            "Qdrant/clip-tiny-vision": {"private": false, "gated": false, "commits": [
                {"sha": MAIN, "refs": ["main"], "files": vision},
                {"sha": OLD, "refs": ["v0"], "files": old},
            ]},
            "nomic-ai/nomic-embed-vision-v1.5": {"private": false, "gated": false, "commits": [
                {"sha": MAIN, "refs": ["main"], "files": {
                    "onnx/model.onnx": fixture("siglip-tiny").join("model.onnx"),
                    "onnx/model_quantized.onnx": fixture("resnet-tiny").join("model.onnx"),
                    "preprocessor_config.json": config("nomic-embed-vision-v1.5"),
                    "README.md": extra,
                }},
            ]},
            "jinaai/jina-clip-v1": {"private": false, "gated": false, "commits": [
                {"sha": MAIN, "refs": ["main"], "files": {
                    "onnx/vision_model.onnx": fixture("clip-tiny-vision").join("model.onnx"),
                    "preprocessor_config.json": config("jina-clip-v1"),
                }},
            ]},
            "onnx-community/siglip2-base-patch16-224-ONNX": {"private": false, "gated": false, "commits": [
                {"sha": MAIN, "refs": ["main"], "files": {
                    "onnx/vision_model.onnx": fixture("siglip-tiny").join("model.onnx"),
                    "preprocessor_config.json": fixture("siglip-tiny").join("preprocessor_config.json"),
                }},
            ]},
            "acme/private-text": {"private": true, "gated": false, "commits": [
                {"sha": MAIN, "refs": ["main"], "files": files_of("clip-tiny-text", extra)},
            ]},
            "acme/gated-text": {"private": false, "gated": true, "commits": [
                {"sha": MAIN, "refs": ["main"], "files": files_of("clip-tiny-text", extra)},
            ]},
        },
        "faults": faults,
    })
}

fn hub_env(hub: &Hub, cache: &Path, token: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("MODEL_SOURCES", "hf".to_owned()),
        ("HF_ENDPOINT", hub.base.clone()),
        ("MODEL_CACHE_DIR", cache.display().to_string()),
        ("MODEL_DIR", "/nonexistent".into()),
        ("MODEL_FETCH_ATTEMPTS", "2".into()),
        ("MODEL_FETCH_BACKOFF_MS", "50".into()),
        ("ORT_DYLIB_PATH", ort_dylib()),
    ];
    if let Some(token) = token {
        env.push(("HF_TOKEN", token.to_owned()));
    }
    env
}

fn cli(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let mut cmd = Command::new(binary());
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn manifest(cache: &Path, id: &str) -> Value {
    serde_json::from_slice(&std::fs::read(cache.join(id).join("manifest.json")).unwrap()).unwrap()
}

fn sha256_of(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

fn extra_file(dir: &TempDir) -> PathBuf {
    let path = dir.path().join("README.md");
    std::fs::write(&path, "# a model card\n").unwrap();
    path
}

#[test]
fn the_hub_source_downloads_at_one_commit_resumes_a_cut_and_refetches_a_corrupt_file() {
    let scratch = TempDir::new("hub-files");
    let faults = json!({"cut_once": ["Qdrant/clip-tiny-vision/model.onnx"],
        "corrupt_once": ["Qdrant/clip-tiny-vision/model.onnx", "Qdrant/clip-tiny-vision/preprocessor_config.json"]});
    let hub = Hub::start(hub_config(&extra_file(&scratch), faults, None));
    let cache = TempDir::new("hub-cache");
    let env = hub_env(&hub, cache.path(), None);

    let (ok, out) = cli(&["pull", "Qdrant/clip-tiny-vision"], &env);
    assert!(ok, "{out}");
    assert!(out.contains("downloaded from hf"), "{out}");
    let entry = cache.path().join("Qdrant/clip-tiny-vision");
    let mut names: Vec<String> =
        std::fs::read_dir(&entry).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["manifest.json", "model.onnx", "preprocessor_config.json"], "README and dotfiles are skipped");
    let recorded = manifest(cache.path(), "Qdrant/clip-tiny-vision");
    assert_eq!(recorded["revision"], MAIN, "{recorded}");
    assert_eq!(recorded["source"], "hf");
    assert_eq!(recorded["files"]["model.onnx"]["sha256"], sha256_of(&fixture("clip-tiny-vision").join("model.onnx")));
    assert_eq!(sha256_of(&entry.join("model.onnx")), sha256_of(&fixture("clip-tiny-vision").join("model.onnx")));
    let config = "preprocessor_config.json";
    assert_eq!(
        sha256_of(&entry.join(config)),
        sha256_of(&fixture("clip-tiny-vision").join(config)),
        "git sha1 checked"
    );

    let requests = hub.requests();
    let content: Vec<&Value> = requests.iter().filter(|r| r["path"].as_str().unwrap().starts_with("/lfs/")).collect();
    assert!(
        content.iter().any(|r| r["range"].as_str().is_some_and(|r| r.starts_with("bytes="))),
        "the cut was resumed with a range: {content:?}"
    );
    assert!(content.len() >= 3, "cut, resumed, corrupt, fetched again: {content:?}");
    assert!(content.iter().all(|r| r["authorization"] == false), "the token never goes to the content store");
    let resolved: Vec<&Value> = requests.iter().filter(|r| r["path"].as_str().unwrap().contains("/resolve/")).collect();
    assert!(
        resolved.iter().all(|r| r["path"].as_str().unwrap().contains(&format!("/resolve/{MAIN}/"))),
        "every file at the commit: {resolved:?}"
    );
    let config_gets =
        resolved.iter().filter(|r| r["path"].as_str().unwrap().ends_with("/preprocessor_config.json")).count();
    assert_eq!(config_gets, 2, "the corrupted config is fetched again");

    // A pinned revision: the older commit, with its own files.
    let cache_old = TempDir::new("hub-old");
    let mut env_old = hub_env(&hub, cache_old.path(), None);
    env_old.push(("HF_REVISION", "v0".into()));
    let (ok, out) = cli(&["pull", "Qdrant/clip-tiny-vision"], &env_old);
    assert!(ok, "{out}");
    let recorded = manifest(cache_old.path(), "Qdrant/clip-tiny-vision");
    assert_eq!(recorded["revision"], OLD, "{recorded}");
    assert!(recorded["files"]["old_notes.txt"].is_object(), "{recorded}");
}

#[test]
fn a_catalogue_name_finds_its_repository_and_its_nested_onnx_file() {
    let scratch = TempDir::new("hub-catalogue");
    let hub = Hub::start(hub_config(&extra_file(&scratch), json!({}), None));
    let cache = TempDir::new("hub-catalogue-cache");
    // fastembed's name has a dot, which no model id may: the catalogue gives it an id.
    let (ok, out) = cli(&["pull", "nomic-ai/nomic-embed-vision-v1_5"], &hub_env(&hub, cache.path(), None));
    assert!(ok, "{out}");
    let entry = cache.path().join("nomic-ai/nomic-embed-vision-v1_5");
    let mut names: Vec<String> =
        std::fs::read_dir(&entry).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["manifest.json", "model.onnx", "preprocessor_config.json"]);
    assert_eq!(sha256_of(&entry.join("model.onnx")), sha256_of(&fixture("siglip-tiny").join("model.onnx")));
    let recorded = manifest(cache.path(), "nomic-ai/nomic-embed-vision-v1_5");
    assert!(recorded["origin"].as_str().unwrap().ends_with("/nomic-ai/nomic-embed-vision-v1.5"), "{recorded}");
}

#[test]
fn private_and_gated_repositories_need_hf_token_and_say_so() {
    let scratch = TempDir::new("hub-auth");
    let hub = Hub::start(hub_config(&extra_file(&scratch), json!({}), None));
    let cache = TempDir::new("hub-auth-cache");

    let (ok, out) = cli(&["pull", "acme/private-text"], &hub_env(&hub, cache.path(), None));
    assert!(!ok, "{out}");
    assert!(out.contains("acme/private-text") && out.contains("HF_TOKEN") && out.contains("401"), "{out}");
    assert!(!cache.path().join("acme/private-text").exists(), "nothing is left behind");

    let (ok, out) = cli(&["pull", "acme/gated-text"], &hub_env(&hub, cache.path(), Some("hf_wrong")));
    assert!(!ok, "{out}");
    assert!(out.contains("acme/gated-text") && out.contains("HF_TOKEN") && out.contains("403"), "{out}");
    assert!(!out.contains("hf_wrong"), "the token is never printed: {out}");

    let (ok, out) = cli(&["pull", "acme/private-text"], &hub_env(&hub, cache.path(), Some(TOKEN)));
    assert!(ok, "{out}");
    assert!(hub.requests().iter().any(|r| r["path"].as_str().unwrap().contains("/resolve/") && r["token_ok"] == true));

    let (ok, out) = cli(&["pull", "acme/missing"], &hub_env(&hub, cache.path(), Some(TOKEN)));
    assert!(!ok && out.contains("acme/missing"), "{out}");
}

#[test]
fn a_redirect_to_plain_http_elsewhere_is_refused() {
    let scratch = TempDir::new("hub-redirect");
    let hub = Hub::start(hub_config(&extra_file(&scratch), json!({}), Some("http://cdn.example.invalid")));
    let cache = TempDir::new("hub-redirect-cache");
    let (ok, out) = cli(&["pull", "Qdrant/clip-tiny-vision"], &hub_env(&hub, cache.path(), None));
    assert!(!ok, "{out}");
    assert!(out.contains("only https is followed"), "{out}");
    assert!(!cache.path().join("Qdrant/clip-tiny-vision/manifest.json").exists());
}

/// The server with the hub as its only source, and what must live as long as it.
struct HubServer {
    server: Server,
    _hub: Hub,
    _dirs: (TempDir, TempDir),
}

async fn hub_server(name: &str) -> HubServer {
    let scratch = TempDir::new(name);
    let hub = Hub::start(hub_config(&extra_file(&scratch), json!({}), None));
    let cache = TempDir::new(&format!("{name}-cache"));
    let env = hub_env(&hub, cache.path(), None);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start(Path::new("/nonexistent"), &env).await;
    HubServer { server, _hub: hub, _dirs: (scratch, cache) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_model_is_served_as_fastembed_embeds_it() {
    let hub = hub_server("hub-serve").await;
    let request = json!({"model_id": "Qdrant/clip-tiny-vision", "inputs": [{"type": "base64", "value": image_b64("shapes_640x480.png")}]});
    let (status, body) = hub.server.post_json("/embed/image", &request).await;
    assert_eq!(status, 200, "{body}");
    let want = vector(&embedding_references()["fastembed"]["embed/clip-tiny-vision"]["shapes_640x480.png"]);
    let problem = mismatch("Qdrant/clip-tiny-vision", &vector(&body["embeddings"][0]), &want);
    assert!(problem.is_none(), "{problem:?}");
}

/// fastembed's own pipelines for the hub models whose preprocessing or output differ: Jina CLIP
/// pads to a square, nomic takes the first token of `last_hidden_state`, SigLIP its `pooler_output`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jina_nomic_and_siglip_are_served_as_fastembed_embeds_them() {
    let hub = hub_server("hub-pipelines").await;
    let refs = embedding_references();
    let names: Vec<&str> = refs["images"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let inputs: Vec<Value> = names.iter().map(|n| json!({"type": "base64", "value": image_b64(n)})).collect();
    let mut problems = Vec::new();
    for model in ["jinaai/jina-clip-v1", "nomic-ai/nomic-embed-vision-v1.5", "google/siglip2-base-patch16-224"] {
        let request = json!({"model_id": model, "inputs": inputs});
        let (status, body) = hub.server.post_json("/embed/image", &request).await;
        assert_eq!(status, 200, "{model}: {body}");
        for (i, name) in names.iter().enumerate() {
            let want = vector(&refs["fastembed_hub"][model][name]);
            problems.extend(mismatch(&format!("{model} {name}"), &vector(&body["embeddings"][i]), &want));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
