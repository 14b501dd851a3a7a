//! A closed-loop load: clients that each send their next request when the last answer is read. A
//! refused request (429) is counted apart from the errors, and its client waits the answer's
//! `Retry-After` before the next, as inference-sdk waits between its retries.

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
    /// Failures other than refusals, and refusals (429), which are in neither count of the other.
    pub errors: usize,
    pub refused: usize,
    pub seconds: f64,
}

/// Clients posting `body` as JSON to `url`. The body is serialised once and every request sends
/// the same bytes, as wrk does: the generator shares the server's cores, so what it spends per
/// request is taken from the server under test.
pub async fn run_level(
    client: &reqwest::Client,
    url: &str,
    body: Arc<serde_json::Value>,
    clients: usize,
    duration: Duration,
) -> Level {
    let url = url.to_owned();
    let body = bytes::Bytes::from(serde_json::to_vec(&*body).expect("a JSON value serialises"));
    run_level_with(client, clients, duration, move |c| {
        c.post(&url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone())
    })
    .await
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
                let (mut latencies, mut errors, mut refused) = (Vec::new(), 0usize, 0usize);
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    match request(&client).send().await {
                        Ok(r) if r.status().as_u16() == 429 => {
                            refused += 1;
                            let wait = r
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                                .unwrap_or(1);
                            let resume = (Instant::now() + Duration::from_secs(wait)).min(deadline);
                            tokio::time::sleep_until(resume.into()).await;
                        }
                        Ok(r) if r.status().is_success() => match r.bytes().await {
                            Ok(_) => latencies.push(sent.elapsed().as_secs_f64() * 1e3),
                            Err(_) => errors += 1,
                        },
                        _ => errors += 1,
                    }
                }
                (latencies, errors, refused)
            })
        })
        .collect();
    let mut level = Level { latencies_ms: Vec::new(), errors: 0, refused: 0, seconds: 0.0 };
    for task in tasks {
        let (latencies, errors, refused) = task.await.unwrap_or_default();
        level.latencies_ms.extend(latencies);
        level.errors += errors;
        level.refused += refused;
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
