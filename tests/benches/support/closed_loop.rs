//! A closed-loop load: clients that each send their next request when the last answer is read.

use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub struct Level {
    pub latencies_ms: Vec<f64>,
    pub errors: usize,
    pub seconds: f64,
}

/// Clients posting `body` as JSON to `url`.
pub async fn run_level(
    client: &reqwest::Client,
    url: &str,
    body: Arc<serde_json::Value>,
    clients: usize,
    duration: Duration,
) -> Level {
    let url = url.to_owned();
    run_level_with(client, clients, duration, move |c| c.post(&url).json(&*body)).await
}

/// Clients sending what `request` builds, each its next when the last answer is read.
pub async fn run_level_with(
    client: &reqwest::Client,
    clients: usize,
    duration: Duration,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> Level {
    let started = Instant::now();
    let deadline = started + duration;
    let request = Arc::new(request);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, request) = (client.clone(), request.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let ok = match request(&client).send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut level = Level { latencies_ms: Vec::new(), errors: 0, seconds: 0.0 };
    for task in tasks {
        let (latencies, errors) = task.await.unwrap_or_default();
        level.latencies_ms.extend(latencies);
        level.errors += errors;
    }
    level.seconds = started.elapsed().as_secs_f64();
    level.latencies_ms.sort_by(f64::total_cmp);
    level
}

impl Level {
    pub fn rate(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.seconds
    }
}
