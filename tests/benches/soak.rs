//! `make soak`: does memory come back? The release server under model churn, varying input shapes
//! and load, with its resident set (VmRSS) printed at each milestone:
//! (a) `SOAK_CYCLES` (50) add/remove cycles of a generated 44 MB 640x640 detector, each with one
//!     inference, while 8 clients post a 640x480 PNG to `shapes/1`;
//! (b) the OCR fixture images (a few hundred to 1600x1000 pixels) through `ppocr/4`, three passes;
//! then every model but `shapes/1` removed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
#[path = "support/churn_models.rs"]
mod churn_models;
use churn_models::{churn_models, ServerProcess};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn b64(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    let response = client.post(url).json(body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::main]
async fn main() {
    let cycles: usize = std::env::var("SOAK_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let python = std::env::var("SOAK_PYTHON").unwrap_or_else(|_| root().join(".venv/bin/python").display().to_string());
    let work = std::env::temp_dir().join(format!("sightline-soak-{}", std::process::id()));
    let models = churn_models(&root(), &work, Path::new(&python));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::new(root().join("target/release/sightline"));
    command
        .env("PORT", port.to_string())
        .env("GRPC_PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("MODEL_DIR", &models)
        .env("MODEL_CACHE_DIR", work.join("cache"))
        .env("MAX_ACTIVE_MODELS", "8")
        .env("LOG_LEVEL", "warn")
        .env("EXECUTION_PROVIDERS", std::env::var("EXECUTION_PROVIDERS").unwrap_or_else(|_| "cpu".into()))
        .stdout(Stdio::null());
    let server = ServerProcess(command.spawn().expect("target/release/sightline (make soak builds it)"));
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    for _ in 0..300 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("started: {:.0} MB", rss_mb(pid));

    let shapes = Arc::new(json!({
        "model_id": "shapes/1", "confidence": 0.25,
        "image": {"type": "base64", "value": b64(&root().join("tests/data/images/shapes_640x480.png"))},
    }));
    let detect = format!("{base}/infer/object_detection");
    post(&client, &detect, &shapes).await;
    println!("shapes/1 loaded and served once: {:.0} MB", rss_mb(pid));

    // (a) churn under load.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (client, body, url, stop, served) =
                (client.clone(), shapes.clone(), detect.clone(), stop.clone(), served.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = client.post(&url).json(&*body).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    r.bytes().await.unwrap();
                    served.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let big = json!({
        "model_id": "big/1", "confidence": 0.99,
        "image": {"type": "base64", "value": b64(&root().join("tests/data/images/shapes_640x480.png"))},
    });
    let started = Instant::now();
    let mut after5 = 0.0;
    for cycle in 1..=cycles {
        post(&client, &format!("{base}/model/add"), &json!({"model_id": "big/1"})).await;
        post(&client, &detect, &big).await;
        post(&client, &format!("{base}/model/remove"), &json!({"model_id": "big/1"})).await;
        if cycle == 5 {
            after5 = rss_mb(pid);
            println!("after cycle 5: {after5:.0} MB");
        }
    }
    let after_all = rss_mb(pid);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    println!(
        "after cycle {cycles}: {after_all:.0} MB ({:+.1} % vs cycle 5; {} shapes/1 requests served meanwhile, {:.0} s)",
        (after_all / after5 - 1.0) * 100.0,
        served.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );

    // (b) OCR, three passes over images of every size.
    let mut images: Vec<PathBuf> = std::fs::read_dir(root().join("tests/data/images/ocr"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    images.sort();
    let bodies: Vec<Value> =
        images.iter().map(|p| json!({"model_id": "ppocr/4", "image": {"type": "base64", "value": b64(p)}})).collect();
    let mut passes = Vec::new();
    for pass in 1..=3 {
        let started = Instant::now();
        for body in &bodies {
            post(&client, &format!("{base}/infer/ocr"), body).await;
        }
        let rss = rss_mb(pid);
        passes.push(rss);
        let seconds = started.elapsed().as_secs_f64();
        println!("after OCR pass {pass} ({} images, {seconds:.1} s): {rss:.0} MB", bodies.len());
    }
    println!("OCR pass 3 vs pass 2: {:+.1} %", (passes[2] / passes[1] - 1.0) * 100.0);

    post(&client, &format!("{base}/model/remove"), &json!({"model_id": "ppocr/4"})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let registry: Value = client.get(format!("{base}/model/registry")).send().await.unwrap().json().await.unwrap();
    let loaded: Vec<&str> =
        registry["models"].as_array().unwrap().iter().filter_map(|m| m["model_id"].as_str()).collect();
    println!("at the end, with {loaded:?} loaded: {:.0} MB", rss_mb(pid));
    drop(server);
    let _ = std::fs::remove_dir_all(&work);
}
