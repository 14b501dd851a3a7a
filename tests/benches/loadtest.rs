//! `make loadtest URL=... [MODEL=...]`: a closed-loop load generator for any Roboflow-compatible
//! server, so that one run measures Sightline and another server the same way.
//!
//! At each concurrency of `LOADTEST_CONCURRENCY` (default 1,8,16,64), that many clients post the
//! same image (`IMAGE`, default the 640x480 fixture, as base64 JSON) to `URL` + `ROUTE` (default
//! `/infer/object_detection`) for `DURATION_SECS` (default 10) after a short warm-up, each sending
//! its next request when its last answer is read (after a refusal, when its `Retry-After` is up).
//! Reported: requests/s, p50 and p99 latency of the answered requests, refusals (429 with a
//! `Retry-After`), and errors (other non-2xx, a 429 without `Retry-After`, or transport failures);
//! neither is in the latencies.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::json;

#[path = "support/closed_loop.rs"]
mod closed_loop;
use closed_loop::{percentile, run_level};

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let base = setting("URL", "http://127.0.0.1:9001");
    let model = setting("MODEL", "shapes/1");
    let route = setting("ROUTE", "/infer/object_detection");
    let image =
        PathBuf::from(setting("IMAGE", &root.join("tests/data/images/shapes_640x480.png").display().to_string()));
    let duration = Duration::from_secs(setting("DURATION_SECS", "10").parse().expect("DURATION_SECS: seconds"));
    let levels: Vec<usize> = setting("LOADTEST_CONCURRENCY", "1,8,16,64")
        .split(',')
        .map(|c| c.trim().parse().expect("LOADTEST_CONCURRENCY: comma-separated client counts"))
        .collect();
    let bytes = std::fs::read(&image).unwrap_or_else(|e| panic!("IMAGE {}: {e}", image.display()));
    let mut body = json!({
        "model_id": model,
        "image": {"type": "base64", "value": base64::engine::general_purpose::STANDARD.encode(&bytes)},
        "confidence": 0.25,
    });
    if let Ok(key) = std::env::var("API_KEY") {
        body["api_key"] = json!(key);
    }
    let body = Arc::new(body);
    let url = format!("{}{route}", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build()
        .expect("HTTP client");

    // Warm-up: the first request loads the model.
    let warm = client.post(&url).json(&*body).send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = warm.status();
    let text = warm.text().await.unwrap_or_default();
    assert!(status.is_success(), "{url} answered {status}: {text}");
    run_level(&client, &url, body.clone(), 1, Duration::from_secs(1)).await;

    println!(
        "load test: {url}, model {model}, image {} ({} bytes), {} s per level",
        image.display(),
        bytes.len(),
        duration.as_secs()
    );
    println!("| clients | requests/s | p50 (ms) | p99 (ms) | refused (429) | errors |");
    println!("|---|---|---|---|---|---|");
    for clients in levels {
        let level = run_level(&client, &url, body.clone(), clients, duration).await;
        let rate = level.rate();
        println!(
            "| {clients} | {rate:.1} | {:.1} | {:.1} | {} | {} |",
            percentile(&level.latencies_ms, 0.50),
            percentile(&level.latencies_ms, 0.99),
            level.refused,
            level.errors
        );
    }
}
