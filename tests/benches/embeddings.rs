//! `make bench`, embeddings: images and texts per second, raw ONNX Runtime at its best batch
//! against the server at 16 closed-loop clients (one input per request, so the server's batcher
//! gathers the batches), in the same run on the same machine.
//!
//! Image towers: raw on a prepared 224x224 tensor; the server on the 640x480 JPEG as base64 JSON
//! (`/embed/image`, decode and Pillow-exact resize included). Text towers: raw on the tokens of
//! one short text; the server on that text (`/clip/embed_text` for Roboflow's CLIP, `/embed/text`
//! for the Hugging Face layout, tokenizing included).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

#[path = "support/closed_loop.rs"]
mod closed_loop;
#[path = "support/server_process.rs"]
mod server_process;
use closed_loop::{percentile, run_level};
use server_process::{root, start_server_with};
use sightline_core::{DataType, Tensor};
use sightline_engine::{build_session, init_runtime};

/// Inputs per second of `run` at `batch`, the median of `iterations` timed runs after a warm-up.
fn rate(batch: usize, iterations: usize, mut run: impl FnMut()) -> f64 {
    for _ in 0..5 {
        run();
    }
    let mut samples: Vec<f64> = (0..iterations)
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed().as_secs_f64()
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    batch as f64 / samples[samples.len() / 2]
}

/// The best raw rate over `batches`, with its batch.
fn best_raw(batches: &[usize], mut rate_at: impl FnMut(usize) -> f64) -> (f64, (usize, f64)) {
    let mut best = (1, 0.0);
    let mut first = 0.0;
    for &batch in batches {
        let r = rate_at(batch);
        if batch == 1 {
            first = r;
        }
        if r > best.1 {
            best = (batch, r);
        }
    }
    (first, best)
}

fn int_tensor(name: &str, datatype: DataType, rows: usize, row: &[i64]) -> Tensor {
    let mut data = Vec::new();
    for _ in 0..rows {
        for &v in row {
            match datatype {
                DataType::Int32 => data.extend_from_slice(&(v as i32).to_le_bytes()),
                _ => data.extend_from_slice(&v.to_le_bytes()),
            }
        }
    }
    Tensor::new(name.into(), datatype, vec![rows, row.len()], data).unwrap()
}

#[tokio::main]
async fn main() {
    let iterations: usize = std::env::var("BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let seconds: u64 = std::env::var("BENCH_LOAD_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let dylib = std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH (make bench sets it)");
    init_runtime(Path::new(&dylib)).unwrap();
    let client = reqwest::Client::new();
    let (_server, base) = start_server_with(&client, &[("CLIP_VERSION_ID", "tiny-test".into())]).await;
    let models = root().join("assets/models");
    let jpeg = {
        let image = image::open(root().join("tests/data/images/shapes_640x480.png")).unwrap().to_rgb8();
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&image).unwrap();
        base64::engine::general_purpose::STANDARD.encode(out)
    };
    println!(
        "Embeddings, CPU provider, {seconds} s per server level (16 closed-loop clients, one input per request).\n"
    );
    println!("| model | input | raw batch 1 (/s) | raw best batch (/s) | server, 16 clients: /s, median second (whole level), p50 / p99 (ms) | ÷ raw best |");
    println!("|---|---|---|---|---|---|");
    let batches = [1usize, 2, 4, 8, 16];

    // A CLIP the size of Roboflow's ViT-B-32, where `make_embedding_fixtures.py --vit-b-32` made one.
    let big = models.join("clip/ViT-B-32-random");
    let images = [
        ("CLIP image tower (Roboflow layout)", "clip/tiny-test", models.join("clip/tiny-test/visual.onnx")),
        ("ResNet-style embedder (fastembed layout)", "embed/resnet-tiny", models.join("embed/resnet-tiny/model.onnx")),
        ("CLIP ViT-B/32 size, random weights", "clip/ViT-B-32-random", big.join("visual.onnx")),
    ];
    for (label, model, file) in images.into_iter().filter(|(_, _, f)| f.is_file()) {
        let (mut session, _) = build_session(&file, 0).unwrap();
        let (raw1, best) = best_raw(&batches, |batch| {
            let tensor = ndarray::Array4::<f32>::from_elem((batch, 3, 224, 224), 0.25);
            rate(batch, iterations / batch + 5, || {
                session.run(&tensor).unwrap();
            })
        });
        drop(session);
        let body = Arc::new(json!({"model_id": model, "inputs": [{"type": "base64", "value": jpeg}]}));
        row(&client, label, model, "640x480 JPEG", &format!("{base}/embed/image"), body, seconds, raw1, best).await;
    }

    // "a photo of a circle", as clip.tokenize and the fixture's tokenizer.json give it.
    let tokens: Vec<i64> = vec![49406, 320, 1125, 539, 320, 7117, 49407];
    let mut padded = tokens.clone();
    padded.resize(77, 0);
    let texts = [
        (
            "CLIP text tower (Roboflow layout, 77 tokens)",
            "clip/tiny-test",
            models.join("clip/tiny-test/textual.onnx"),
            "/clip/embed_text",
            json!({"text": "a photo of a circle"}),
        ),
        (
            "CLIP text tower (fastembed layout, batch-longest)",
            "embed/clip-tiny-text",
            models.join("embed/clip-tiny-text/model.onnx"),
            "/embed/text",
            json!({"model_id": "embed/clip-tiny-text", "inputs": ["a photo of a circle"]}),
        ),
        (
            "CLIP ViT-B/32 size, random weights, text",
            "clip/ViT-B-32-random",
            big.join("textual.onnx"),
            "/clip/embed_text",
            json!({"text": "a photo of a circle", "clip_version_id": "ViT-B-32-random"}),
        ),
    ];
    for (label, model, file, route, body) in texts.into_iter().filter(|(_, _, f, _, _)| f.is_file()) {
        let (mut session, _) = build_session(&file, 0).unwrap();
        let signature = session.signature().unwrap();
        let (raw1, best) = best_raw(&[1, 2, 4, 8, 16, 32], |batch| {
            let inputs: Vec<Tensor> = signature
                .inputs
                .iter()
                .map(|spec| match spec.name.as_str() {
                    "attention_mask" => int_tensor(&spec.name, spec.datatype, batch, &vec![1; tokens.len()]),
                    "input_ids" => int_tensor(&spec.name, spec.datatype, batch, &tokens),
                    _ => int_tensor(&spec.name, spec.datatype, batch, &padded),
                })
                .collect();
            rate(batch, iterations / batch + 5, || {
                session.run_tensors(&inputs).unwrap();
            })
        });
        drop(session);
        row(&client, label, model, "one short text", &format!("{base}{route}"), Arc::new(body), seconds, raw1, best)
            .await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn row(
    client: &reqwest::Client,
    label: &str,
    model: &str,
    input: &str,
    url: &str,
    body: Arc<Value>,
    seconds: u64,
    raw1: f64,
    best: (usize, f64),
) {
    run_level(client, url, body.clone(), 4, Duration::from_secs(1)).await;
    let at16 = run_level(client, url, body, 16, Duration::from_secs(seconds)).await;
    assert_eq!(at16.errors, 0, "{model}: requests failed");
    println!(
        "| {label} `{model}` | {input} | {raw1:.0} | {:.0} (batch {}) | {:.0} ({:.0}), {:.1} / {:.1} | {:.2} |",
        best.1,
        best.0,
        at16.steady_rate(),
        at16.rate(),
        percentile(&at16.latencies_ms, 0.5),
        percentile(&at16.latencies_ms, 0.99),
        at16.steady_rate() / best.1
    );
}
