//! A small Roboflow-style model API for the artifact tests, on loopback: `GET /ort/<d>/<v>` answers
//! metadata pointing at `GET /files/<d>/<v>/<file>`, served from a folder of model folders. It
//! counts requests per path and can be told to fail (a status, a download cut short, a delay).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Every request answers this status.
    Status(u16),
    /// `weights.onnx` announces its full length, sends half, and closes the connection.
    CutWeights,
    /// `weights.onnx` is sent after this pause.
    SlowWeights(Duration),
}

#[derive(Default)]
struct State {
    counts: HashMap<String, u32>,
    api_keys: Vec<String>,
    /// The fault and how many more requests it applies to.
    fault: Option<(Fault, u32)>,
}

pub struct ModelApi {
    pub base: String,
    root: PathBuf,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl ModelApi {
    /// Serves the model folders under `root`.
    pub async fn start(root: PathBuf) -> ModelApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let (task_root, task_state, task_base) = (root.clone(), state.clone(), base.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (root, state, base) = (task_root.clone(), task_state.clone(), task_base.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &root, &state, &base).await;
                });
            }
        });
        ModelApi { base, root, state, task }
    }

    /// Applies `fault` to the next `times` requests it concerns.
    pub fn fail(&self, fault: Fault, times: u32) {
        self.state.lock().unwrap().fault = Some((fault, times));
    }

    pub fn heal(&self) {
        self.state.lock().unwrap().fault = None;
    }

    /// Requests seen for `path` (without query), e.g. `/ort/shapes/1` or `/files/shapes/1/weights.onnx`.
    pub fn count(&self, path: &str) -> u32 {
        self.state.lock().unwrap().counts.get(path).copied().unwrap_or(0)
    }

    pub fn api_keys(&self) -> Vec<String> {
        self.state.lock().unwrap().api_keys.clone()
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}

impl Drop for ModelApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Takes the fault if it applies to this request.
fn take_fault(state: &Mutex<State>, applies: impl Fn(Fault) -> bool) -> Option<Fault> {
    let mut state = state.lock().unwrap();
    let (fault, left) = state.fault?;
    if left == 0 || !applies(fault) {
        return None;
    }
    state.fault = Some((fault, left - 1));
    Some(fault)
}

async fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

async fn serve(mut stream: TcpStream, root: &std::path::Path, state: &Mutex<State>, base: &str) -> std::io::Result<()> {
    let Some(target) = super::read_request_target(&mut stream).await? else { return Ok(()) };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    {
        let mut s = state.lock().unwrap();
        *s.counts.entry(path.to_owned()).or_default() += 1;
        if let Some(key) = query.split('&').find_map(|kv| kv.strip_prefix("api_key=")) {
            s.api_keys.push(key.to_owned());
        }
    }
    if let Some(Fault::Status(status)) = take_fault(state, |f| matches!(f, Fault::Status(_))) {
        return respond(&mut stream, status, "application/json", br#"{"message": "injected failure"}"#).await;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["ort", d, v] => match metadata(root, d, v, base) {
            Some(meta) => respond(&mut stream, 200, "application/json", meta.to_string().as_bytes()).await,
            None => respond(&mut stream, 404, "application/json", br#"{"message": "no such model"}"#).await,
        },
        ["files", d, v, name] => {
            let Ok(bytes) = std::fs::read(root.join(d).join(v).join(name)) else {
                return respond(&mut stream, 404, "text/plain", b"no such file").await;
            };
            if *name == "weights.onnx" {
                match take_fault(state, |f| !matches!(f, Fault::Status(_))) {
                    Some(Fault::CutWeights) => {
                        let head =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", bytes.len());
                        stream.write_all(head.as_bytes()).await?;
                        stream.write_all(&bytes[..bytes.len() / 2]).await?;
                        return stream.shutdown().await;
                    }
                    Some(Fault::SlowWeights(pause)) => tokio::time::sleep(pause).await,
                    _ => {}
                }
            }
            respond(&mut stream, 200, "application/octet-stream", &bytes).await
        }
        _ => respond(&mut stream, 404, "text/plain", b"not found").await,
    }
}

/// The `/ort` answer for a model folder, as Roboflow's API shapes it.
fn metadata(root: &std::path::Path, d: &str, v: &str, base: &str) -> Option<Value> {
    let dir = root.join(d).join(v);
    let model_type: Value = serde_json::from_slice(&std::fs::read(dir.join("model_type.json")).ok()?).ok()?;
    let classes: Vec<String> = std::fs::read_to_string(dir.join("class_names.txt"))
        .map(|t| t.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let mut ort = json!({
        "type": model_type["project_task_type"],
        "modelType": model_type["model_type"],
        "model": format!("{base}/files/{d}/{v}/weights.onnx?signature=s3cr3t-signature"),
        "environment": format!("{base}/files/{d}/{v}/environment.json?signature=s3cr3t-signature"),
        "classes": classes,
        "colors": {"circle": "#010203"},
    });
    if let Ok(keypoints) = std::fs::read(dir.join("keypoints_metadata.json")) {
        ort["keypoints_metadata"] = serde_json::from_slice(&keypoints).ok()?;
    }
    Some(json!({ "ort": ort }))
}
