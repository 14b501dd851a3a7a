//! Starting the real `sightline` binary on a free loopback port, and comparing answers to the references.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod file_server;
pub mod model_api;

use base64::Engine;
use serde_json::{json, Value};

/// The checkout; `SIGHTLINE_REPO` when prebuilt test binaries run elsewhere (scripts/gpu-check.sh).
pub fn repo_root() -> PathBuf {
    if let Ok(root) = std::env::var("SIGHTLINE_REPO") {
        return PathBuf::from(root);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

pub fn data(path: &str) -> PathBuf {
    repo_root().join("tests/data").join(path)
}

pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("SIGHTLINE_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("target"));
    let bin = target.join("debug/sightline");
    assert!(
        bin.is_file(),
        "{} is missing: build it first, or point SIGHTLINE_BIN at a build (`make test` uses target/release/sightline)",
        bin.display()
    );
    bin
}

pub fn ort_dylib() -> String {
    std::env::var("ORT_DYLIB_PATH")
        .expect("ORT_DYLIB_PATH is not set: run the tests through `make test` (it runs `make setup`)")
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("sightline-e2e-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies the shipped `shapes/1` model folder to `dir/<id>`, then applies `edit` to it.
pub fn model_folder(dir: &Path, id: &str, edit: impl FnOnce(&Path)) {
    copy_model(dir, "shapes/1", id, edit)
}

/// Copies the shipped model folder `assets/models/<from>` to `dir/<id>`, then applies `edit` to it.
pub fn copy_model(dir: &Path, from: &str, id: &str, edit: impl FnOnce(&Path)) {
    let src = repo_root().join("assets/models").join(from);
    let dst = dir.join(id);
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    edit(&dst);
}

pub const STRETCH_ENV: &str =
    r#"{"PREPROCESSING": {"resize": {"enabled": true, "format": "Stretch to", "width": 256, "height": 256}}}"#;

/// "Fit (black edges) in", the letterbox an RF-DETR export may be trained with, at the input size of
/// the RF-DETR detector fixture (128) and of the segmenter (144).
pub const BLACK_EDGES_128_ENV: &str = r#"{"PREPROCESSING": {"resize": {"enabled": true, "format": "Fit (black edges) in", "width": 128, "height": 128}}}"#;
pub const BLACK_EDGES_144_ENV: &str = r#"{"PREPROCESSING": {"resize": {"enabled": true, "format": "Fit (black edges) in", "width": 144, "height": 144}}}"#;

/// How a model folder under test is shipped, and so which resize its copy is served with.
pub enum ShippedAs {
    /// As the YOLO fixtures: letterbox; the copy stretches.
    Letterbox,
    /// As Roboflow's RF-DETR exports: stretch; the copy letterboxes with this environment.
    Stretch { letterbox_env: &'static str },
}

/// Copies `model` into `dir` twice, as `<name>-letterbox/1` and `<name>-stretch/1`, each served
/// with that resize; returns the two ids.
pub fn copy_resize_variants(dir: &Path, model: &str, shipped: &ShippedAs) -> (String, String) {
    let name = model.split('/').next().unwrap();
    let (letterbox, stretch) = (format!("{name}-letterbox/1"), format!("{name}-stretch/1"));
    let write_env = |env: &'static str| move |d: &Path| std::fs::write(d.join("environment.json"), env).unwrap();
    match shipped {
        ShippedAs::Letterbox => {
            copy_model(dir, model, &letterbox, |_| {});
            copy_model(dir, model, &stretch, write_env(STRETCH_ENV));
        }
        ShippedAs::Stretch { letterbox_env } => {
            copy_model(dir, model, &letterbox, write_env(letterbox_env));
            copy_model(dir, model, &stretch, |_| {});
        }
    }
    (letterbox, stretch)
}

/// The binary with the harness's fixed settings (a cleared environment), then `env`.
fn server_command(model_dir: &Path, port: u16, cache_dir: &Path, log: &Path, env: &[(&str, &str)]) -> Command {
    with_settings(Command::new(binary()), model_dir, port, cache_dir, log, env)
}

/// The binary run by `sh -c "<setup> && exec <binary>"` in a mount namespace of its own, as root
/// there (`unshare -rm`): `setup` may mount what the test needs (a small tmpfs, a read-only bind)
/// without privileges, and the mounts go away with the process.
fn namespaced_command(
    setup: &str,
    model_dir: &Path,
    port: u16,
    cache_dir: &Path,
    log: &Path,
    env: &[(&str, &str)],
) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c", &format!("{setup} && exec \"$0\""), &binary().display().to_string()]);
    with_settings(cmd, model_dir, port, cache_dir, log, env)
}

fn with_settings(
    mut cmd: Command,
    model_dir: &Path,
    port: u16,
    cache_dir: &Path,
    log: &Path,
    env: &[(&str, &str)],
) -> Command {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ORT_DYLIB_PATH", ort_dylib())
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("MODEL_DIR", model_dir)
        .env("MODEL_CACHE_DIR", cache_dir)
        .env("HTTP_WORKERS", "2")
        // Servers run side by side: gRPC only where a test asks for it, on a port of its own.
        .env("GRPC_PORT", "0")
        .env("ORT_INTRA_OP_THREADS", "1")
        // Deterministic whatever the host offers; the provider tests choose their own.
        .env("EXECUTION_PROVIDERS", "cpu")
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the binary with `env` until it exits (within 60 s): its exit status and its log.
pub fn run_to_exit(model_dir: &Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let logdir = TempDir::new("exit-log");
    let cachedir = TempDir::new("exit-cache");
    let log = logdir.path().join("server.log");
    let mut child =
        server_command(model_dir, free_port(), cachedir.path(), &log, env).spawn().expect("start sightline");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sightline did not exit in 60 s:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(&log).unwrap_or_default())
}

/// `vendor_id` of this host's CPU.
pub fn cpu_vendor() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("vendor_id").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        .unwrap_or_default()
}

/// The settings that put every session on `provider` alone (`cpu` or `openvino`). OpenVINO uses
/// the plugin `make setup` lays out; the plugin offers devices on Intel hardware only, so on other
/// CPUs the real plugin is reached through the test-only vendor shim (tests/support/).
pub fn provider_env(provider: &str) -> Vec<(&'static str, String)> {
    let mut env = vec![("EXECUTION_PROVIDERS", provider.to_owned())];
    if let Ok(dirs) = std::env::var("CUDA_LIB_DIR") {
        env.push(("CUDA_LIB_DIR", dirs)); // the CUDA runtime of a Python environment (scripts/gpu-check.sh)
    }
    if provider.starts_with("openvino") && cpu_vendor() != "GenuineIntel" {
        let shim = std::env::var("SIGHTLINE_OPENVINO_SHIM")
            .expect("SIGHTLINE_OPENVINO_SHIM is not set: run the tests through `make test` (it builds the shim)");
        let ort = PathBuf::from(ort_dylib());
        let real = ort.parent().unwrap().join("openvino/libonnxruntime_providers_openvino_plugin.so");
        env.push(("OPENVINO_EP_LIBRARY", shim));
        env.push(("SIGHTLINE_OPENVINO_REAL_PLUGIN", real.display().to_string()));
    }
    env
}

/// ONNX Runtime's name of a provider in `EXECUTION_PROVIDERS`.
pub fn ort_name(provider: &str) -> &'static str {
    match provider {
        "cpu" => "CPUExecutionProvider",
        "openvino" => "OpenVINOExecutionProvider",
        "cuda" => "CUDAExecutionProvider",
        "tensorrt" => "TensorrtExecutionProvider",
        other => panic!("no such provider {other}"),
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Server {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
    log: PathBuf,
    _logdir: TempDir,
    /// Each server gets its own model cache unless `env` names one (tests of a shared cache do).
    _cachedir: TempDir,
}

impl Server {
    /// Starts the binary with `MODEL_DIR=model_dir` plus `env`, and waits for `/healthz`.
    pub async fn start(model_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::spawn(|port, cache, log| server_command(model_dir, port, cache, log, env)).await
    }

    /// As [`Server::start`], in a mount namespace prepared by `setup` (see [`namespaced_command`]);
    /// `MODEL_CACHE_DIR` (set in `env`, else the server's own) is in its environment.
    pub async fn start_namespaced(setup: &str, model_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::spawn(|port, cache, log| namespaced_command(setup, model_dir, port, cache, log, env)).await
    }

    /// A port [`free_port`] found free can be taken before the server binds it (by any process's
    /// outgoing connection, whose source ports come from the same range): the server then exits
    /// with "Address already in use", and starts again on another port, up to five times.
    async fn spawn(command: impl Fn(u16, &Path, &Path) -> Command) -> Server {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let logdir = TempDir::new("log");
            let cachedir = TempDir::new("cache");
            let log = logdir.path().join("server.log");
            let child = command(port, cachedir.path(), &log).spawn().expect("start sightline");
            let mut server = Server {
                child,
                base: format!("http://127.0.0.1:{port}"),
                client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
                log,
                _logdir: logdir,
                _cachedir: cachedir,
            };
            match server.wait_healthy().await {
                Ok(()) => return server,
                Err(log) if attempt < ATTEMPTS && log.contains("Address already in use") => continue,
                Err(log) => panic!("sightline exited during start-up:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `path` as the server sees it, through its own mounts (`/proc/<pid>/root`).
    pub fn seen_by_server(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid())).join(path.strip_prefix("/").unwrap_or(path))
    }

    /// Starts the binary on `provider` (see [`provider_env`]) plus `env`.
    pub async fn start_on(provider: &str, model_dir: &Path, env: &[(&str, &str)]) -> Server {
        let provider_env = provider_env(provider);
        let mut all: Vec<(&str, &str)> = provider_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(env);
        Server::start(model_dir, &all).await
    }

    /// Every loaded model's `execution_provider` and `device` in the registry document.
    pub async fn placements(&self) -> Vec<(String, String, String)> {
        let (_, registry) = self.get_json("/model/registry").await;
        registry["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let field = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                (field("model_id"), field("execution_provider"), field("device"))
            })
            .collect()
    }

    /// Fails unless every loaded model (at least one) runs on `execution_provider`.
    pub async fn assert_all_run_on(&self, execution_provider: &str) {
        let placements = self.placements().await;
        assert!(!placements.is_empty(), "no model loaded");
        for (id, provider, device) in placements {
            assert_eq!(provider, execution_provider, "{id} runs on {provider} ({device})\n{}", self.log_text());
        }
    }

    /// Waits for `/healthz`; `Err` with the exit status and the log when the server exits first.
    async fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{status}\n{}", self.log_text()));
            }
            if let Ok(r) = self.client.get(format!("{}/healthz", self.base)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sightline did not become healthy in 30 s:\n{}", self.log_text());
    }

    /// This server's MODEL_CACHE_DIR.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as a container runtime or the kubelet does.
    pub fn terminate(&self) {
        let sent = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill");
        assert!(sent.success());
    }

    /// The exit status once the process has ended, waiting at most `timeout`.
    pub async fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// `(thread name, nice value)` of each of the server's threads (Linux `/proc`).
    pub fn thread_priorities(&self) -> Vec<(String, i32)> {
        // The nice value is field 19 of `stat`.
        self.threads().into_iter().filter_map(|(name, fields)| Some((name, fields.get(16)?.parse().ok()?))).collect()
    }

    /// Names of the server's threads under Linux's `SCHED_IDLE` policy.
    pub fn idle_policy_threads(&self) -> Vec<String> {
        // The scheduling policy is field 41 of `stat`; SCHED_IDLE is 5.
        self.threads()
            .into_iter()
            .filter(|(_, fields)| fields.get(38).is_some_and(|p| p == "5"))
            .map(|(n, _)| n)
            .collect()
    }

    /// Each thread's name and the CPU time it has used (user + system, in clock ticks).
    pub fn thread_cpu_ticks(&self) -> Vec<(String, u64)> {
        // utime and stime are fields 14 and 15 of `stat`.
        let ticks = |fields: &[String], i: usize| fields.get(i)?.parse::<u64>().ok();
        self.threads()
            .into_iter()
            .filter_map(|(name, fields)| Some((name, ticks(&fields, 11)? + ticks(&fields, 12)?)))
            .collect()
    }

    /// Each thread's name and the fields of its `/proc` `stat` after the parenthesised name
    /// (state, field 3, first).
    fn threads(&self) -> Vec<(String, Vec<String>)> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid())).unwrap();
        tasks
            .flatten()
            .filter_map(|task| {
                let name = std::fs::read_to_string(task.path().join("comm")).ok()?.trim().to_owned();
                let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                let fields = stat[stat.rfind(')')? + 2..].split(' ').map(str::to_owned).collect();
                Some((name, fields))
            })
            .collect()
    }

    pub fn cache_dir(&self) -> &Path {
        self._cachedir.path()
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.client.post(self.url(path)).json(body).send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.client.get(self.url(path)).send().await.unwrap().text().await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Open Inference Protocol suites' models: a plain ONNX folder with one input of each
/// datatype (tests/support/make_tensor_zoo.py) and the shipped detectors of fixed and dynamic batch.
pub fn protocol_models(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    let zoo = dir.path().join("tensor-zoo/1");
    std::fs::create_dir_all(&zoo).unwrap();
    std::fs::copy(data("models/tensor-zoo/1/model.onnx"), zoo.join("model.onnx")).unwrap();
    copy_model(dir.path(), "shapes/1", "shapes/1", |_| {});
    copy_model(dir.path(), "shapes-dyn/1", "shapes-dyn/1", |_| {});
    dir
}

/// The `name` of each tensor in a protocol list (inputs, outputs).
pub fn names(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

/// The embedding references (`make_embedding_refs.py`).
pub fn embedding_references() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data("reference/embeddings.json")).unwrap()).unwrap()
}

pub fn vector(value: &Value) -> Vec<f64> {
    value.as_array().unwrap_or_else(|| panic!("not a vector: {value}")).iter().map(|v| v.as_f64().unwrap()).collect()
}

pub fn normalised(v: &[f64]) -> Vec<f64> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

/// `None` when `got` equals `want` within cosine ≥ 0.9999 and max abs ≤ 1e-4.
pub fn mismatch(what: &str, got: &[f64], want: &[f64]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("{what}: {} values, reference {}", got.len(), want.len()));
    }
    let dot: f64 = got.iter().zip(want).map(|(a, b)| a * b).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let cosine = dot / (norm(got) * norm(want));
    let max_abs = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    (cosine < 0.9999 || max_abs > 1e-4).then(|| format!("{what}: cosine {cosine:.6}, max abs {max_abs:.2e}"))
}

pub fn image_b64(name: &str) -> String {
    let bytes = std::fs::read(data(&format!("images/{name}"))).unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn detect_body(model_id: &str, image: &str, confidence: f64, iou: f64) -> Value {
    json!({
        "model_id": model_id,
        "image": {"type": "base64", "value": image_b64(image)},
        "confidence": confidence,
        "iou_threshold": iou,
        "api_key": null,
    })
}

/// A reference run key: `letterbox/conf0.25/iou0.45` -> ("letterbox", 0.25, 0.45).
pub fn parse_run(key: &str) -> (&str, f64, f64) {
    let mut parts = key.split('/');
    let mode = parts.next().unwrap();
    let conf = parts.next().unwrap().trim_start_matches("conf").parse().unwrap();
    let iou = parts.next().unwrap().trim_start_matches("iou").parse().unwrap();
    (mode, conf, iou)
}

pub fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// The largest difference between two boxes' corresponding coordinates.
pub fn corner_distance(a: [f64; 4], b: [f64; 4]) -> f64 {
    (0..4).map(|i| (a[i] - b[i]).abs()).fold(0.0, f64::max)
}

/// A detection in corner form, from either a reference entry or a response prediction.
#[derive(Debug, Clone)]
pub struct Det {
    pub bbox: [f64; 4],
    pub confidence: f64,
    pub class_id: u64,
    pub class_name: String,
    /// `[x, y, confidence]` per keypoint, in the model's keypoint order (pose models only).
    pub keypoints: Vec<[f64; 3]>,
}

pub fn from_reference(entry: &Value) -> Det {
    let b = entry["bbox_xyxy"].as_array().unwrap();
    Det {
        bbox: [0, 1, 2, 3].map(|i| b[i].as_f64().unwrap()),
        confidence: entry["confidence"].as_f64().unwrap(),
        class_id: entry["class_id"].as_u64().unwrap(),
        class_name: entry["class_name"].as_str().unwrap().to_owned(),
        keypoints: entry["keypoints"]
            .as_array()
            .map(|k| k.iter().map(|p| [0, 1, 2].map(|i| p[i].as_f64().unwrap())).collect())
            .unwrap_or_default(),
    }
}

/// The reference detections of `image` under `run` (e.g. `letterbox/conf0.25/iou0.45`).
pub fn reference_detections(reference: &Value, image: &str, run: &str) -> Vec<Det> {
    let runs = reference["images"][image]["runs"][run].as_array();
    runs.unwrap_or_else(|| panic!("no reference for {image} {run}")).iter().map(from_reference).collect()
}

pub fn from_response(p: &Value) -> Det {
    let (x, y, w, h) = (
        p["x"].as_f64().unwrap(),
        p["y"].as_f64().unwrap(),
        p["width"].as_f64().unwrap(),
        p["height"].as_f64().unwrap(),
    );
    Det {
        bbox: [x - w / 2.0, y - h / 2.0, x + w / 2.0, y + h / 2.0],
        confidence: p["confidence"].as_f64().unwrap(),
        class_id: p["class_id"].as_u64().unwrap(),
        class_name: p["class"].as_str().unwrap().to_owned(),
        keypoints: p["keypoints"]
            .as_array()
            .map(|k| k.iter().map(|p| ["x", "y", "confidence"].map(|f| p[f].as_f64().unwrap())).collect())
            .unwrap_or_default(),
    }
}

/// Matches every reference detection to a prediction of the same class (best IoU first):
/// IoU >= 0.98, confidence within 0.01, and every keypoint within 1.5 px. The counts must agree, except for detections whose
/// reference confidence lies within 0.02 of the threshold (the reference marks these as places
/// where a faithful port may legitimately differ). Returns the problems found.
pub fn compare(reference: &[Det], predicted: &[Det], threshold: f64) -> Vec<String> {
    let mut problems = Vec::new();
    let mut used = vec![false; predicted.len()];
    for r in reference {
        let best = predicted
            .iter()
            .enumerate()
            .filter(|(i, p)| !used[*i] && p.class_id == r.class_id)
            .map(|(i, p)| (i, iou(r.bbox, p.bbox), corner_distance(r.bbox, p.bbox)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.total_cmp(&a.2)));
        match best {
            // A box clipped to a line (e.g. inside the letterbox padding) has no area, so no IoU:
            // it matches by its corners.
            Some((i, box_iou, corners)) if box_iou >= 0.98 || corners <= 0.5 => {
                used[i] = true;
                let p = &predicted[i];
                if (p.confidence - r.confidence).abs() > 0.01 {
                    problems
                        .push(format!("confidence {} vs reference {} for {:?}", p.confidence, r.confidence, r.bbox));
                }
                if p.class_name != r.class_name {
                    problems.push(format!("class name {} vs {}", p.class_name, r.class_name));
                }
                if p.keypoints.len() != r.keypoints.len() {
                    problems.push(format!("{} keypoints vs reference {}", p.keypoints.len(), r.keypoints.len()));
                }
                for (k, (pk, rk)) in p.keypoints.iter().zip(&r.keypoints).enumerate() {
                    let distance = ((pk[0] - rk[0]).powi(2) + (pk[1] - rk[1]).powi(2)).sqrt();
                    if distance > 1.5 || (pk[2] - rk[2]).abs() > 0.01 {
                        problems.push(format!("keypoint {k} {pk:?} vs reference {rk:?} ({distance:.2} px)"));
                    }
                }
            }
            _ if (r.confidence - threshold).abs() < 0.02 => {}
            other => problems.push(format!("reference {r:?} unmatched (best IoU {:?})", other.map(|o| o.1))),
        }
    }
    for (p, used) in predicted.iter().zip(used) {
        if !used && (p.confidence - threshold).abs() >= 0.02 {
            problems.push(format!("extra prediction {p:?}"));
        }
    }
    problems
}

/// The reference's row-major RLE (`{"size": [H, W], "counts": [...]}`, first run of zeros).
pub fn reference_mask(rle: &Value) -> (usize, usize, Vec<bool>) {
    let rle: Value = match rle {
        Value::String(s) => serde_json::from_str(&s.replace('\'', "\"")).unwrap(),
        other => other.clone(),
    };
    let (h, w) = (rle["size"][0].as_u64().unwrap() as usize, rle["size"][1].as_u64().unwrap() as usize);
    let mut mask = Vec::with_capacity(h * w);
    for (i, run) in rle["counts"].as_array().unwrap().iter().enumerate() {
        mask.extend(std::iter::repeat_n(i % 2 == 1, run.as_u64().unwrap() as usize));
    }
    assert_eq!(mask.len(), h * w);
    (h, w, mask)
}

/// Decodes pycocotools' compressed string (column-major runs) into a row-major mask.
pub fn coco_mask(rle: &Value) -> (usize, usize, Vec<bool>) {
    let (h, w) = (rle["size"][0].as_u64().unwrap() as usize, rle["size"][1].as_u64().unwrap() as usize);
    let bytes = rle["counts"].as_str().unwrap().as_bytes();
    let (mut runs, mut p) = (Vec::<i64>::new(), 0);
    while p < bytes.len() {
        let (mut x, mut k, mut more) = (0i64, 0, true);
        while more {
            let c = i64::from(bytes[p]) - 48;
            x |= (c & 0x1f) << (5 * k);
            more = c & 0x20 != 0;
            p += 1;
            k += 1;
            if !more && c & 0x10 != 0 {
                x |= -1 << (5 * k);
            }
        }
        if runs.len() > 2 {
            x += runs[runs.len() - 2];
        }
        runs.push(x);
    }
    let mut column_major = Vec::with_capacity(h * w);
    for (i, run) in runs.iter().enumerate() {
        column_major.extend(std::iter::repeat_n(i % 2 == 1, *run as usize));
    }
    assert_eq!(column_major.len(), h * w);
    let mask = (0..h * w).map(|i| column_major[(i % w) * h + i / w]).collect();
    (h, w, mask)
}

pub fn mask_iou(a: &[bool], b: &[bool]) -> f64 {
    let inter = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let union = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// The prediction of the same class that overlaps `r` best, if its box IoU is at least 0.98.
pub fn best_match(r: &Det, predicted: &[Det]) -> Option<usize> {
    predicted
        .iter()
        .enumerate()
        .filter(|(_, p)| p.class_id == r.class_id)
        .map(|(i, p)| (i, iou(r.bbox, p.bbox), corner_distance(r.bbox, p.bbox)))
        .filter(|(_, v, corners)| *v >= 0.98 || *corners <= 0.5)
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.total_cmp(&a.2)))
        .map(|(i, _, _)| i)
}

/// Reads an HTTP/1.1 request head from a test server's connection; its target (`/path?query`), or
/// `None` when the client closed first. The test servers ignore request bodies.
pub async fn read_request_target(stream: &mut tokio::net::TcpStream) -> std::io::Result<Option<String>> {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request);
    Ok(Some(text.split_whitespace().nth(1).unwrap_or("/").to_owned()))
}

/// Runs the project's Python (`.venv`, made by `make setup`) with `args`, `stdin` on its standard input.
pub fn venv_python(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let python = repo_root().join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing: run `make setup`", python.display());
    let mut child = Command::new(python)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the venv's python");
    child.stdin.take().expect("piped stdin").write_all(stdin).expect("write to python");
    child.wait_with_output().expect("python output")
}

/// Predictions without their random `detection_id`s, so that two runs compare equal.
pub fn without_ids(predictions: &Value) -> Value {
    let mut predictions = predictions.clone();
    let list = predictions.as_array_mut().expect("predictions are a list");
    assert!(!list.is_empty(), "the comparison needs detections");
    for p in list {
        p.as_object_mut().expect("a prediction is an object").remove("detection_id");
    }
    predictions
}

/// The sample of one exact series (`name{labels}`, labels in Prometheus' sorted order) in a
/// `/metrics` text; `None` when the series is absent.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap_or_else(|e| panic!("{series}: sample {v:?} is not a number ({e})")))
}

/// `promtool check metrics` (Debian's prometheus, installed by `make setup`) finds nothing to say.
pub fn promtool_check(metrics: &str) {
    use std::io::Write;
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{promtool} not runnable ({e}): `make setup` installs it (Debian package prometheus)")
        });
    child.stdin.take().expect("piped stdin").write_all(metrics.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.trim().is_empty(), "promtool check metrics:\n{text}");
}
