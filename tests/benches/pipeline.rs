//! `make bench`: what Sightline adds on top of ONNX Runtime, measured in one run.
//!
//! For each image: raw `Session::run` on the already-prepared tensor (the floor), the in-process
//! model pipeline (decode, resize, ONNX Runtime, decode + NMS), and the full HTTP round trip to the
//! release binary (base64 JSON in, JSON out); then HTTP throughput with concurrent clients.
//! Figures are medians over `BENCH_ITERATIONS` runs, reported as ratios to the raw time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;
use sightline_core::artifacts::{ArtifactCache, CacheOptions, LocalSource, RetryPolicy, VerifyLevel};
use sightline_core::{DetectionParams, InferRequest, ModelId, ModelLoader, TaskParams};
use sightline_models::engine::Engine as OrtEngine;
use sightline_models::engine::{build_session, run_session};
use sightline_models::image::decode::decode_image;
use sightline_models::image::letterbox::ResizeMode;
use sightline_models::image::preprocess::to_input_tensor;
use sightline_models::{init_runtime, DecodeLimits, LoadOptions, ModelRegistry};

const IMAGES: [&str; 3] = ["shapes_256_00.png", "shapes_640x480.png", "shapes_1920x1080.jpg"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn time_ms(iterations: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..iterations.min(20) {
        f();
    }
    median(
        (0..iterations)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

async fn time_ms_async<F: std::future::Future<Output = ()>>(iterations: usize, mut f: impl FnMut() -> F) -> f64 {
    for _ in 0..iterations.min(20) {
        f().await;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(samples)
}

struct ServerProcess(std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_server(client: &reqwest::Client) -> (ServerProcess, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = ServerProcess(
        Command::new(root().join("target/release/sightline"))
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("MODEL_DIR", root().join("assets/models"))
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("target/release/sightline (make bench builds it)"),
    );
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..300 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server did not start");
}

/// What the verified cache adds to a model load: a cold fill (copy + hash), the sha256 check every
/// load makes, and the whole load (check + session + test inference), medians of five.
async fn load_costs(artifacts: &Arc<ArtifactCache>, registry: &ModelRegistry) {
    println!("| model | bytes | cold cache fill (ms) | sha256 check (ms) | whole load (ms) | check ÷ load |");
    println!("|---|---|---|---|---|---|");
    for name in ["shapes/1", "ppocr/4"] {
        let id = ModelId::parse(name).unwrap();
        let (mut fill, mut check, mut load) = (Vec::new(), Vec::new(), Vec::new());
        let mut bytes = 0;
        for _ in 0..5 {
            artifacts.remove(&id).await.unwrap();
            let t = Instant::now();
            bytes = artifacts.ensure(&id).await.unwrap().manifest.total_bytes();
            fill.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            assert!(!artifacts.ensure(&id).await.unwrap().downloaded);
            check.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            drop(registry.load(&id).await.unwrap());
            load.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (fill, check, load) = (median(fill), median(check), median(load));
        println!("| {name} | {bytes} | {fill:.1} | {check:.1} | {load:.1} | {:.1} % |", check / load * 100.0);
    }
    println!();
}

#[tokio::main]
async fn main() {
    let iterations: usize = std::env::var("BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let dylib = std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH (make bench sets it)");
    init_runtime(Path::new(&dylib)).unwrap();
    let model_dir = root().join("assets/models");
    let weights = model_dir.join("shapes/1/weights.onnx");
    let (mut session, _) = build_session(&weights, 0).unwrap();
    let cache_dir = std::env::temp_dir().join(format!("sightline-bench-cache-{}", std::process::id()));
    let cache_options = CacheOptions {
        root: cache_dir.clone(),
        verify: VerifyLevel::Sha256,
        retry: RetryPolicy { attempts: 1, base_delay: Duration::ZERO, max_delay: Duration::ZERO },
        max_model_bytes: 1 << 30,
    };
    let artifacts = ArtifactCache::new(cache_options, vec![Arc::new(LocalSource::new(model_dir.clone()))]);
    let options =
        LoadOptions { queue_capacity: 64, decode_limits: DecodeLimits::default(), engine: Arc::new(OrtEngine::cpu(0)) };
    let registry = ModelRegistry::new(options, artifacts.clone());
    load_costs(&artifacts, &registry).await;
    let model = registry.load(&ModelId::parse("shapes/1").unwrap()).await.unwrap();
    let client = reqwest::Client::new();
    let (_server, base) = start_server(&client).await;

    println!("| image | raw ONNX Runtime (ms) | in-process pipeline (ms, × raw) | HTTP round trip (ms, × raw) |");
    println!("|---|---|---|---|");
    for name in IMAGES {
        let bytes = std::fs::read(root().join("tests/data/images").join(name)).unwrap();
        let decoded = decode_image(&bytes, true, DecodeLimits::default()).unwrap();
        let (tensor, _) = to_input_tensor(&decoded, ResizeMode::Letterbox { pad: 114 }, 256, 256);
        let raw = time_ms(iterations, || {
            run_session(&mut session, &tensor).unwrap();
        });
        let params = DetectionParams { confidence: 0.25, iou_threshold: 0.45, ..DetectionParams::default() };
        let request = InferRequest {
            image: bytes.clone(),
            preprocessing: Default::default(),
            visualize: None,
            params: TaskParams::ObjectDetection(params),
        };
        let model = Arc::clone(&model);
        let pipeline = time_ms_async(iterations, || {
            let (model, request) = (model.clone(), request.clone());
            async move {
                model.infer(request).await.unwrap();
            }
        })
        .await;
        let body = json!({
            "model_id": "shapes/1", "confidence": 0.25, "iou_threshold": 0.45,
            "image": {"type": "base64", "value": base64::engine::general_purpose::STANDARD.encode(&bytes)},
        });
        let url = format!("{base}/infer/object_detection");
        let http = time_ms_async(iterations, || {
            let request = client.post(&url).json(&body);
            async move {
                let r = request.send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
            }
        })
        .await;
        println!(
            "| {name} ({}x{}) | {raw:.2} | {pipeline:.2} ({:.2}×) | {http:.2} ({:.2}×) |",
            decoded.width(),
            decoded.height(),
            pipeline / raw,
            http / raw
        );
    }

    // Throughput: 8 concurrent clients on the 640x480 image.
    let bytes = std::fs::read(root().join("tests/data/images/shapes_640x480.png")).unwrap();
    let body = Arc::new(json!({
        "model_id": "shapes/1", "confidence": 0.25,
        "image": {"type": "base64", "value": base64::engine::general_purpose::STANDARD.encode(&bytes)},
    }));
    let url = Arc::new(format!("{base}/infer/object_detection"));
    let total = iterations * 2;
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, body, url) = (client.clone(), body.clone(), url.clone());
            tokio::spawn(async move {
                for _ in 0..total / 8 {
                    let r = client.post(url.as_str()).json(&*body).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    r.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!();
    println!(
        "HTTP throughput, 8 concurrent clients, shapes_640x480.png: {:.1} requests/s ({} requests in {seconds:.2} s)",
        (total / 8 * 8) as f64 / seconds,
        total / 8 * 8
    );
    let _ = std::fs::remove_dir_all(&cache_dir);
}
