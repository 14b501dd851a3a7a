//! `make bench`: what Sightline adds on top of ONNX Runtime, measured in one run.
//!
//! For each image: raw `Session::run` on the already-prepared tensor (the floor), the in-process
//! model pipeline (decode, resize, ONNX Runtime, decode + NMS), and the full HTTP round trip to the
//! release binary (base64 JSON in, JSON out); then HTTP throughput with concurrent clients.
//! Figures are medians over `BENCH_ITERATIONS` runs, reported as ratios to the raw time. Then
//! the family and provider tables; `BENCH_TABLES` (`images,families,providers`) picks which run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;

#[path = "support/closed_loop.rs"]
mod closed_loop;
#[path = "support/grpc_load.rs"]
mod grpc_load;
#[path = "support/server_process.rs"]
mod server_process;
use closed_loop::{percentile, run_level, run_level_with, Level};
use grpc_load::{run_grpc_level, InferInputTensor, ModelInferRequest};
use server_process::{root, start_server_with};
use sightline_artifacts::{ArtifactCache, CacheOptions, LocalSource, RetryPolicy, VerifyLevel};
use sightline_core::{DetectOptions, DetectionParams, ImageRequest, ModelId, ModelLoader};
use sightline_engine::Engine as OrtEngine;
use sightline_engine::{
    build_raw, build_session, init_runtime, probe_provider, rewrite_graph, GpuSource, LoadPool, LoadPriority,
    ModelSession, NvmlSource, OpenVinoPrecision, Provider, ProviderOptions,
};
use sightline_models::image::decode::decode_image;
use sightline_models::image::letterbox::ResizeMode;
use sightline_models::image::tensor::to_input_tensor;
use sightline_models::{DecodeLimits, LoadOptions, ModelRegistry};

const IMAGES: [&str; 3] = ["shapes_256_00.png", "shapes_640x480.png", "shapes_1920x1080.jpg"];

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

/// What the verified cache adds to a model load: a cold fill (copy + hash), the sha256 check every
/// load makes, and the whole load (check + session + test inference), medians of five; then the
/// whole load when the session starts from the optimised graph an earlier load saved.
async fn load_costs(artifacts: &Arc<ArtifactCache>, registry: &ModelRegistry, saving: &ModelRegistry) {
    println!("| model | bytes | cold cache fill (ms) | sha256 check (ms) | whole load (ms) | check ÷ load | whole load from the saved optimised graph (ms) |");
    println!("|---|---|---|---|---|---|---|");
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
        drop(saving.load(&id).await.unwrap());
        let mut saved = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            drop(saving.load(&id).await.unwrap());
            saved.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (fill, check, load, saved) = (median(fill), median(check), median(load), median(saved));
        println!(
            "| {name} | {bytes} | {fill:.1} | {check:.1} | {load:.1} | {:.1} % | {saved:.1} ({:.2}×) |",
            check / load * 100.0,
            saved / load
        );
    }
    println!();
}

#[tokio::main]
async fn main() {
    let iterations: usize = std::env::var("BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let dylib = std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH (make bench sets it)");
    init_runtime(Path::new(&dylib)).unwrap();
    // BENCH_TABLES picks the tables (images, families, providers; all by default).
    let tables = std::env::var("BENCH_TABLES").unwrap_or_else(|_| "images,families,providers".into());
    let wanted = |table: &str| tables.split(',').any(|t| t.trim() == table);
    let client = reqwest::Client::new();
    let (_server, base) = start_server_with(&client, &[]).await;
    if wanted("images") {
        image_tables(&client, &base, iterations).await;
    }
    if wanted("families") {
        family_table(&client, &base, iterations).await;
        println!();
    }
    if wanted("providers") {
        provider_tables(&client, iterations, Path::new(&dylib)).await;
    }
}

/// Model loads through the verified cache, then per image raw ONNX Runtime, the in-process
/// pipeline and the HTTP round trip on `shapes/1`, then HTTP throughput with 8 clients.
async fn image_tables(client: &reqwest::Client, base: &str, iterations: usize) {
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
    let options = LoadOptions::new(Arc::new(OrtEngine::cpu(0)));
    let registry = ModelRegistry::new(options, artifacts.clone(), LoadPool::new(1, LoadPriority::Nice(0)).unwrap());
    let saving_options = ProviderOptions { optimized_graph_cache: true, ..ProviderOptions::default() };
    let saving_engine = OrtEngine::new(vec![Provider::Cpu], saving_options, None);
    let saving = ModelRegistry::new(
        LoadOptions::new(Arc::new(saving_engine)),
        artifacts.clone(),
        LoadPool::new(1, LoadPriority::Nice(0)).unwrap(),
    );
    load_costs(&artifacts, &registry, &saving).await;
    let model = registry.load(&ModelId::parse("shapes/1").unwrap()).await.unwrap();

    println!("| image | raw ONNX Runtime (ms) | in-process pipeline (ms, × raw) | HTTP round trip (ms, × raw) |");
    println!("|---|---|---|---|");
    for name in IMAGES {
        let bytes = std::fs::read(root().join("tests/data/images").join(name)).unwrap();
        let decoded = decode_image(&bytes, true, DecodeLimits::default()).unwrap();
        let (tensor, _) = to_input_tensor(&decoded, ResizeMode::Letterbox { pad: 114 }, 256, 256);
        let raw = time_ms(iterations, || {
            session.run(&tensor).unwrap();
        });
        let params = DetectionParams { confidence: 0.25, iou_threshold: 0.45, ..DetectionParams::default() };
        let request = ImageRequest {
            image: bytes.clone(),
            preprocessing: Default::default(),
            visualize: None,
            options: DetectOptions::boxes(params),
            ticket: None,
        };
        let model = Arc::clone(&model);
        let pipeline = time_ms_async(iterations, || {
            let (model, request) = (model.clone(), request.clone());
            async move {
                model.detector().expect("a detector").detect(request).await.unwrap();
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
    let seconds: u64 = std::env::var("BENCH_LOAD_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let level =
        run_level(client, &format!("{base}/infer/object_detection"), body, 8, Duration::from_secs(seconds)).await;
    println!();
    println!(
        "HTTP throughput, 8 concurrent clients, shapes_640x480.png: {:.1} requests/s ({} requests in {seconds} s)",
        level.rate(),
        level.latencies_ms.len()
    );
    println!();
    let _ = std::fs::remove_dir_all(&cache_dir);
}

/// Per model family, CPU provider, one run: raw ONNX Runtime on the fixture's prepared tensor
/// (resampled to the model's input where it is not 256x256), at batch 1 and, where the batch axis
/// is dynamic, its best batch; and the server at 16 closed-loop clients on the 640x480 JPEG, as a
/// ratio to the raw best.
async fn family_table(client: &reqwest::Client, base: &str, iterations: usize) {
    let families = [
        ("YOLOv8", "shapes/1", "object_detection"),
        ("YOLO11", "shapes-y11/1", "object_detection"),
        ("YOLOv12", "shapes-v12/1", "object_detection"),
        ("YOLO26, one-to-one (no NMS)", "shapes-y26/1", "object_detection"),
        ("YOLO26, one-to-many", "shapes-y26-o2m/1", "object_detection"),
        ("YOLOv10, one-to-one (no NMS)", "shapes-v10/1", "object_detection"),
        ("RF-DETR (nano layout, 128 px)", "shapes-rfdetr/1", "object_detection"),
        ("YOLOv8-seg", "shapes-seg/1", "instance_segmentation"),
        ("YOLO11-seg", "shapes-seg-y11/1", "instance_segmentation"),
        ("YOLO26-seg, one-to-one", "shapes-seg-y26/1", "instance_segmentation"),
        ("RF-DETR-seg (nano layout, 144 px)", "shapes-rfdetr-seg/1", "instance_segmentation"),
        ("YOLOv8-pose", "shapes-pose/1", "keypoints_detection"),
        ("YOLO11-pose", "shapes-pose-y11/1", "keypoints_detection"),
        ("YOLO26-pose, one-to-one", "shapes-pose-y26/1", "keypoints_detection"),
    ];
    let input = read_npy_f32(&root().join("tests/data/raw/input_letterbox_shapes_640x480.npy"));
    let prepared = ndarray::Array4::from_shape_vec((1, 3, 256, 256), input).unwrap();
    let jpeg = base64::engine::general_purpose::STANDARD.encode(jpeg_640x480());
    let seconds: u64 = std::env::var("BENCH_LOAD_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    println!("Families, CPU provider: `shapes_640x480` (raw: its prepared tensor; server: the 640x480 JPEG as base64 JSON, 16 closed-loop clients, {seconds} s).\n");
    println!("Raw best batch: the mean of the best batch's rate when picked and measured again right after the server's level (both in brackets), as in the provider table.\n");
    println!("{STEADY_NOTE}\n");
    println!("| family | model | raw batch 1 (img/s) | raw best batch (img/s) | raw best, rewritten graph (img/s) | server, 16 clients: req/s (whole level), p50 / p99 (ms) | ÷ raw best | ÷ raw best, rewritten |");
    println!("|---|---|---|---|---|---|---|---|");
    for (family, model, route) in families {
        let weights = root().join("assets/models").join(model).join("weights.onnx");
        let (mut session, shape) = build_session(&weights, 0).unwrap();
        let (h, w) = (shape.input_dims[2] as usize, shape.input_dims[3] as usize);
        let tensor1 = prepared_at(&prepared, h, w);
        let batches: &[usize] = if shape.batch_size().is_some() { &[1] } else { &[1, 2, 4, 8] };
        let (raw1, best) = raw_rates(&mut session, &tensor1, batches, iterations);
        // Where Sightline's exact rewrites change the graph, the same runtime on the rewritten one.
        let rewritten = rewrite_graph(&std::fs::read(&weights).unwrap()).map(|_| {
            let options = ProviderOptions { graph_rewrites: true, ..ProviderOptions::default() };
            let scratch = std::env::temp_dir().join(format!("sightline-bench-rw-{}", std::process::id()));
            let mut session = build_raw(Provider::Cpu, None, &weights, &options, &scratch).unwrap();
            let _ = std::fs::remove_dir_all(&scratch);
            let best = raw_rates(&mut session, &tensor1, batches, iterations).1;
            (session, best)
        });
        let body = Arc::new(json!({"model_id": model, "confidence": 0.25, "image": {"type": "base64", "value": jpeg}}));
        let url = format!("{base}/infer/{route}");
        run_level(client, &url, body.clone(), 4, Duration::from_secs(1)).await;
        let at16 = run_level(client, &url, body, 16, Duration::from_secs(seconds)).await;
        assert_eq!(at16.errors, 0, "{model}: requests failed");
        let best =
            RawBest { batch: best.0, picked: best.1, again: rate_at(&mut session, &tensor1, best.0, iterations) };
        drop(session);
        let best_text = if batches.len() > 1 { best.text() } else { best.text().replace("batch 1)", "fixed batch 1)") };
        let rewritten = rewritten.map(|(mut session, (batch, picked))| RawBest {
            batch,
            picked,
            again: rate_at(&mut session, &tensor1, batch, iterations),
        });
        let (rewritten_text, over_rewritten) = match rewritten {
            Some(raw) => (raw.text(), format!("{:.2}", at16.steady_rate() / raw.rate())),
            None => ("not rewritten".into(), "–".into()),
        };
        println!(
            "| {family} | `{model}` | {raw1:.0} | {best_text} | {rewritten_text} | {}, {:.1} / {:.1} | {:.2} | {over_rewritten} |",
            rates_text(&at16),
            percentile(&at16.latencies_ms, 0.5),
            percentile(&at16.latencies_ms, 0.99),
            at16.steady_rate() / best.rate()
        );
    }
}

/// How the tables give the server's rates.
const STEADY_NOTE: &str = "Server rates: the median of the level's one-second rates, as raw's rates are median runs (a moment when another tenant of this shared machine takes the cores counts in neither); the whole level's rate in brackets. The ratios use the median.";

/// A level's median one-second rate, with the whole level's in brackets.
fn rates_text(level: &Level) -> String {
    format!("{:.0} ({:.0})", level.steady_rate(), level.rate())
}

/// Raw images per second of `session` at batch 1 and at its best of `batches`, with that batch.
fn raw_rates(
    session: &mut ModelSession,
    tensor1: &ndarray::Array4<f32>,
    batches: &[usize],
    iterations: usize,
) -> (f64, (usize, f64)) {
    let (mut batch1, mut best) = (0.0, (1, 0.0));
    for &batch in batches {
        let rate = rate_at(session, tensor1, batch, iterations);
        if batch == 1 {
            batch1 = rate;
        }
        if rate > best.1 {
            best = (batch, rate);
        }
    }
    (batch1, best)
}

/// Raw images per second of `session` at `batch` (the median run of `iterations / batch + 5`).
fn rate_at(session: &mut ModelSession, tensor1: &ndarray::Array4<f32>, batch: usize, iterations: usize) -> f64 {
    let tensor = ndarray::concatenate(ndarray::Axis(0), &vec![tensor1.view(); batch]).unwrap();
    batch as f64 * 1e3
        / time_ms(iterations / batch + 5, || {
            session.run(&tensor).unwrap();
        })
}

/// Raw's best batch, measured twice: when picked (the best of several rates, before the server's
/// levels) and again right after the server's 16-client level. The ratios are to their mean, so
/// that neither the machine's drift between raw's run and the server's nor the pick of the
/// luckiest of several noisy rates decides them.
struct RawBest {
    batch: usize,
    picked: f64,
    again: f64,
}

impl RawBest {
    fn rate(&self) -> f64 {
        (self.picked + self.again) / 2.0
    }

    fn text(&self) -> String {
        format!("{:.0} ({:.0} / {:.0}, batch {})", self.rate(), self.picked, self.again, self.batch)
    }
}

/// The prepared 256x256 tensor sampled (nearest) to `h x w`: raw timings need the model's shape,
/// not that model's exact preprocessing.
fn prepared_at(prepared: &ndarray::Array4<f32>, h: usize, w: usize) -> ndarray::Array4<f32> {
    ndarray::Array4::from_shape_fn((1, 3, h, w), |(_, c, y, x)| prepared[[0, c, y * 256 / h, x * 256 / w]])
}

/// A provider setting as the bench runs it: `EXECUTION_PROVIDERS` alone, OpenVINO's precision.
struct Variant {
    label: &'static str,
    provider: Provider,
    precision: OpenVinoPrecision,
}

/// The OpenVINO plugin `make setup` lays out; on a non-Intel CPU (where it offers no device) the
/// real plugin behind the test-support vendor shim, as the tests run it (the note says which).
fn openvino_library(dylib: &Path) -> (PathBuf, Option<PathBuf>) {
    let real = dylib.parent().unwrap().join("openvino/libonnxruntime_providers_openvino_plugin.so");
    let intel = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default().contains("GenuineIntel");
    match std::env::var("SIGHTLINE_OPENVINO_SHIM") {
        Ok(shim) if !intel => (PathBuf::from(shim), Some(real)),
        _ => (real, None),
    }
}

fn read_npy_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + header..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Per provider, in one run: raw ONNX Runtime on `shapes-dyn` (prepared tensors, batch 1 and its
/// best batch), the deviation of `shapes/1`'s raw output from the reference's on the fixture
/// tensor, and the server's throughput at 16 clients on `shapes-dyn/1` as a ratio to raw.
async fn provider_tables(client: &reqwest::Client, iterations: usize, dylib: &Path) {
    let (ov_library, ov_real) = openvino_library(dylib);
    if let Some(real) = &ov_real {
        std::env::set_var("SIGHTLINE_OPENVINO_REAL_PLUGIN", real);
        println!("(OpenVINO through the test-support vendor shim: this CPU is not Intel's)");
    }
    let all = [
        Variant { label: "cpu", provider: Provider::Cpu, precision: OpenVinoPrecision::F32 },
        Variant { label: "openvino-f32", provider: Provider::OpenVino, precision: OpenVinoPrecision::F32 },
        Variant { label: "openvino-bf16", provider: Provider::OpenVino, precision: OpenVinoPrecision::Bf16 },
        Variant { label: "cuda", provider: Provider::Cuda, precision: OpenVinoPrecision::F32 },
        Variant { label: "tensorrt", provider: Provider::TensorRt, precision: OpenVinoPrecision::F32 },
    ];
    // BENCH_PROVIDERS picks the rows (scripts/gpu-check.sh asks for cpu,cuda,tensorrt).
    let wanted = std::env::var("BENCH_PROVIDERS").unwrap_or_else(|_| "cpu,openvino-f32,openvino-bf16".into());
    let variants = all.into_iter().filter(|v| wanted.split(',').any(|w| w.trim() == v.label));
    let input = read_npy_f32(&root().join("tests/data/raw/input_letterbox_shapes_640x480.npy"));
    let reference = read_npy_f32(&root().join("tests/data/raw/shapes-det-v8__shapes_640x480__output0.npy"));
    let tensor1 = ndarray::Array4::from_shape_vec((1, 3, 256, 256), input).unwrap();
    let body = Arc::new(json!({
        "model_id": "shapes-dyn/1", "confidence": 0.25,
        "image": {"type": "base64", "value": base64::engine::general_purpose::STANDARD.encode(jpeg_640x480())},
    }));
    let seconds: u64 = std::env::var("BENCH_LOAD_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    println!("Server: `shapes-dyn/1`, 640x480 JPEG (quality 90) as base64 JSON, closed-loop clients, {seconds} s per level, default settings but the provider.\n");
    println!("Raw best batch: the best of batches 1-16, measured when picked and again right after the server's 16-client level (both in brackets); the ratios are to their mean, so that neither the machine's drift between the two runs nor picking the luckiest of five noisy rates decides them.\n");
    println!("Raw best batch is ONNX Runtime on the graph as exported; \"rewritten\" is ONNX Runtime on the graph with Sightline's exact rewrites (`ORT_GRAPH_REWRITES`, CPU only), which the server runs.\n");
    println!("{STEADY_NOTE}\n");
    println!("| provider | raw batch 1 (img/s) | raw best batch (img/s) | raw best batch, rewritten graph (img/s) | max abs deviation from the reference output | server, 1 client: p50 (ms), × raw batch 1 | server, 16 clients: req/s (whole level), p50 / p99 (ms) | ÷ raw best | ÷ raw best, rewritten | server, 64 clients: req/s (whole level), p99 (ms), refused | ÷ raw best | KServe v2 binary tensors, 16 clients: req/s (whole level), p99 (ms) | ÷ raw best | KServe v2 gRPC raw contents, 16 clients: req/s (whole level), p99 (ms) | ÷ raw best |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    // The same preprocessed tensor through the Open Inference Protocol's binary extension: the
    // server's cost without decoding and preprocessing.
    let header = json!({"inputs": [{"name": "images", "shape": [1, 3, 256, 256], "datatype": "FP32",
        "parameters": {"binary_data_size": tensor1.len() * 4}}], "parameters": {"binary_data_output": true}})
    .to_string();
    let mut v2_body = header.clone().into_bytes();
    v2_body.extend(tensor1.iter().flat_map(|x| x.to_le_bytes()));
    let v2_body = bytes::Bytes::from(v2_body);
    let grpc_request = ModelInferRequest {
        model_name: "shapes-dyn".into(),
        model_version: "1".into(),
        inputs: vec![InferInputTensor { name: "images".into(), datatype: "FP32".into(), shape: vec![1, 3, 256, 256] }],
        raw_input_contents: vec![tensor1.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>().into()],
    };
    for v in variants {
        let cuda_library_dirs = std::env::var("CUDA_LIB_DIR")
            .map(|d| d.split(':').map(PathBuf::from).collect())
            .unwrap_or_else(|_| vec![dylib.parent().unwrap().join("cuda")]);
        let options = ProviderOptions {
            openvino_library: ov_library.clone(),
            openvino_precision: v.precision,
            cuda_library_dirs,
            tensorrt_fp16: true,
            ..ProviderOptions::default()
        };
        let gpus = NvmlSource::try_new().map(|s| GpuSource::device_count(&s)).unwrap_or(0);
        if let Some(cause) = probe_provider(v.provider, dylib, &options, gpus) {
            println!("| {} | not available here: {cause} | | | | | | | | | | | | | |", v.label);
            continue;
        }
        let scratch = std::env::temp_dir().join(format!("sightline-bench-ep-{}", std::process::id()));
        let gpu0 = NvmlSource::try_new().ok().and_then(|s| GpuSource::snapshot(&s, 0));
        let gpu = gpu0.as_ref().filter(|_| v.provider.is_gpu());
        let dyn_weights = root().join("assets/models/shapes-dyn/1/weights.onnx");
        let mut session = build_raw(v.provider, gpu, &dyn_weights, &options, &scratch).unwrap();
        let (batch1, best) = raw_rates(&mut session, &tensor1, &[1, 2, 4, 8, 16], iterations);
        // The same runtime on the graph the server runs (its exact rewrites apply on the CPU only).
        let rewritten_best = (v.provider == Provider::Cpu).then(|| {
            let options = ProviderOptions { graph_rewrites: true, ..options.clone() };
            let mut session = build_raw(v.provider, gpu, &dyn_weights, &options, &scratch).unwrap();
            let best = raw_rates(&mut session, &tensor1, &[1, 2, 4, 8, 16], iterations).1;
            (session, best)
        });
        let mut fixed =
            build_raw(v.provider, gpu, &root().join("assets/models/shapes/1/weights.onnx"), &options, &scratch)
                .unwrap();
        let output = fixed.run(&tensor1).unwrap();
        let deviation = output[0].iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        drop(fixed);
        let _ = std::fs::remove_dir_all(&scratch);

        let mut env = vec![
            ("EXECUTION_PROVIDERS", v.provider.key().to_owned()),
            ("OPENVINO_PRECISION", v.precision.name().to_owned()),
            ("OPENVINO_EP_LIBRARY", ov_library.display().to_string()),
        ];
        if let Some(real) = &ov_real {
            env.push(("SIGHTLINE_OPENVINO_REAL_PLUGIN", real.display().to_string()));
        }
        if let Ok(dirs) = std::env::var("CUDA_LIB_DIR") {
            env.push(("CUDA_LIB_DIR", dirs));
        }
        let grpc_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        env.push(("GRPC_PORT", grpc_port.to_string()));
        let (_server, base) = start_server_with(client, &env).await;
        let url = format!("{base}/infer/object_detection");
        run_level(client, &url, body.clone(), 4, Duration::from_secs(1)).await;
        let at1 = run_level(client, &url, body.clone(), 1, Duration::from_secs(seconds)).await;
        let at16 = run_level(client, &url, body.clone(), 16, Duration::from_secs(seconds)).await;
        let best =
            RawBest { batch: best.0, picked: best.1, again: rate_at(&mut session, &tensor1, best.0, iterations) };
        drop(session);
        let rewritten_best = rewritten_best.map(|(mut session, (batch, picked))| RawBest {
            batch,
            picked,
            again: rate_at(&mut session, &tensor1, batch, iterations),
        });
        let at64 = run_level(client, &url, body.clone(), 64, Duration::from_secs(seconds)).await;
        let v2_url = format!("{base}/v2/models/shapes-dyn/versions/1/infer");
        let (v2, length) = (v2_body.clone(), header.len().to_string());
        let tensors = run_level_with(client, 16, Duration::from_secs(seconds), move |c| {
            c.post(&v2_url).header("Inference-Header-Content-Length", &length).body(v2.clone())
        })
        .await;
        assert_eq!(tensors.errors, 0, "v2 requests failed");
        let grpc_address = format!("http://127.0.0.1:{grpc_port}");
        let grpc = run_grpc_level(&grpc_address, grpc_request.clone(), 16, Duration::from_secs(seconds)).await;
        assert_eq!(grpc.errors, 0, "gRPC requests failed");
        let (rewritten, over_rewritten) = match rewritten_best {
            Some(raw) => (raw.text(), format!("{:.2}", at16.steady_rate() / raw.rate())),
            None => ("–".into(), "–".into()),
        };
        let raw = best.rate();
        println!(
            "| {} | {batch1:.0} | {} | {rewritten} | {deviation:.2e} | {:.1}, {:.2} | {}, {:.1} / {:.1} | {:.2} | {over_rewritten} | {}, {:.1}, {} | {:.2} | {}, {:.1} | {:.2} | {}, {:.1} | {:.2} |",
            v.label,
            best.text(),
            percentile(&at1.latencies_ms, 0.5),
            percentile(&at1.latencies_ms, 0.5) * batch1 / 1e3,
            rates_text(&at16),
            percentile(&at16.latencies_ms, 0.5),
            percentile(&at16.latencies_ms, 0.99),
            at16.steady_rate() / raw,
            rates_text(&at64),
            percentile(&at64.latencies_ms, 0.99),
            at64.refused + at64.errors,
            at64.steady_rate() / raw,
            rates_text(&tensors),
            percentile(&tensors.latencies_ms, 0.99),
            tensors.steady_rate() / raw,
            rates_text(&grpc),
            percentile(&grpc.latencies_ms, 0.99),
            grpc.steady_rate() / raw
        );
    }
}

/// The 640x480 fixture scene as a JPEG (quality 90): what a camera sends.
fn jpeg_640x480() -> Vec<u8> {
    let png = image::open(root().join("tests/data/images/shapes_640x480.png")).unwrap().to_rgb8();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&png).unwrap();
    jpeg
}
