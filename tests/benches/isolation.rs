//! `make bench` (its last part): do cold loads stall the models already serving? The release
//! server serves `shapes/1` to `ISOLATION_CLIENTS` (8) closed-loop clients posting a 640x480 JPEG,
//! first alone, then while two other models (a generated 44 MB 640x640 detector and `ppocr/4`) are
//! added and removed in a loop, with loads at the default priority (`idle`: SCHED_IDLE), at nice 19
//! and at nice 0.
//! Reported: requests/s, p50 and p99 of `shapes/1`, and the loads completed meanwhile.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
#[path = "support/churn_models.rs"]
mod churn_models;
use churn_models::{churn_models, ServerProcess};
use serde_json::{json, Value};

#[path = "support/closed_loop.rs"]
mod closed_loop;
use closed_loop::{percentile, run_level, Level};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

async fn start(models: &Path, cache: &Path, env: &[(&str, &str)]) -> (ServerProcess, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::new(root().join("target/release/sightline"));
    command
        .env("PORT", port.to_string())
        .env("GRPC_PORT", "0")
        .env("MODEL_DIR", models)
        .env("MODEL_CACHE_DIR", cache)
        .env("LOG_LEVEL", "warn")
        .env("EXECUTION_PROVIDERS", std::env::var("EXECUTION_PROVIDERS").unwrap_or_else(|_| "cpu".into()))
        .envs(env.iter().copied())
        .stdout(Stdio::null());
    let server = ServerProcess(command.spawn().expect("target/release/sightline (make bench builds it)"));
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..500 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (server, base)
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) {
    let response = client.post(url).json(body).send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.bytes().await.unwrap();
}

/// `shapes/1` under load for `seconds`, with `churn` models added and removed meanwhile.
async fn measure(base: &str, body: Arc<Value>, clients: usize, seconds: u64, churn: &[&str]) -> (Level, usize) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let url = format!("{base}/infer/object_detection");
    let stop = Arc::new(AtomicBool::new(false));
    let loads = Arc::new(AtomicUsize::new(0));
    let churner = {
        let (client, base, stop, loads) = (client.clone(), base.to_owned(), stop.clone(), loads.clone());
        let churn: Vec<String> = churn.iter().map(|s| s.to_string()).collect();
        tokio::spawn(async move {
            while !churn.is_empty() && !stop.load(Ordering::Relaxed) {
                for model in &churn {
                    post(&client, &format!("{base}/model/add"), &json!({"model_id": model})).await;
                    loads.fetch_add(1, Ordering::Relaxed);
                }
                for model in &churn {
                    post(&client, &format!("{base}/model/remove"), &json!({"model_id": model})).await;
                }
            }
        })
    };
    let level = run_level(&client, &url, body, clients, Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    churner.await.unwrap();
    (level, loads.load(Ordering::Relaxed))
}

#[tokio::main]
async fn main() {
    let clients: usize = std::env::var("ISOLATION_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let seconds: u64 = std::env::var("ISOLATION_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    let python = root().join(".venv/bin/python");
    let work = std::env::temp_dir().join(format!("sightline-isolation-{}", std::process::id()));
    let models = churn_models(&root(), &work, &python);

    let png = image::open(root().join("tests/data/images/shapes_640x480.png")).unwrap().to_rgb8();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&png).unwrap();
    let body = Arc::new(json!({
        "model_id": "shapes/1", "confidence": 0.25,
        "image": {"type": "base64", "value": base64::engine::general_purpose::STANDARD.encode(&jpeg)},
    }));

    println!("\n## Cold loads beside a serving model: `shapes/1`, {clients} clients, 640x480 JPEG, {seconds} s each\n");
    println!("| loads meanwhile | model loads done | requests/s | p50 (ms) | p99 (ms) | errors | p99 × alone | throughput vs alone |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut alone: Option<(f64, f64)> = None;
    // ISOLATION_PRIORITY: the load priorities compared (default: the default `idle`, then nice 19 and 0).
    let priorities = std::env::var("ISOLATION_PRIORITY").unwrap_or_else(|_| "idle,19,0".into());
    let mut runs: Vec<(String, String, &[&str])> = vec![("none".into(), "idle".into(), &[])];
    for priority in priorities.split(',').map(str::trim) {
        let label = format!("`big/1` + `ppocr/4` in a loop (`MODEL_LOAD_PRIORITY={priority}`)");
        runs.push((label, priority.to_owned(), &["big/1", "ppocr/4"]));
    }
    for (label, priority, churn) in runs {
        let cache = work.join(format!("cache-{priority}-{}", churn.len()));
        let env = [("MODEL_LOAD_PRIORITY", priority.as_str()), ("MAX_ACTIVE_MODELS", "8")];
        let (server, base) = start(&models, &cache, &env).await;
        let client = reqwest::Client::new();
        post(&client, &format!("{base}/infer/object_detection"), &body).await;
        // Fill the artifact cache (and the saved graphs) once, as a long-running server would have.
        for model in churn.iter() {
            post(&client, &format!("{base}/model/add"), &json!({"model_id": model})).await;
            post(&client, &format!("{base}/model/remove"), &json!({"model_id": model})).await;
        }
        let (level, loads) = measure(&base, body.clone(), clients, seconds, churn).await;
        let (p99, rate) = (percentile(&level.latencies_ms, 0.99), level.rate());
        let (p99_ratio, rate_change) = match alone {
            Some((p, r)) => (format!("{:.2}", p99 / p), format!("{:+.0} %", (rate / r - 1.0) * 100.0)),
            None => {
                alone = Some((p99, rate));
                ("1".into(), "–".into())
            }
        };
        println!(
            "| {label} | {loads} | {rate:.1} | {:.1} | {p99:.1} | {} | {p99_ratio} | {rate_change} |",
            percentile(&level.latencies_ms, 0.50),
            level.errors + level.refused
        );
        drop(server);
    }
    let _ = std::fs::remove_dir_all(&work);
}
