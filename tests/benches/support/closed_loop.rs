//! A closed-loop load: clients that each send their next request when the last answer is read. A
//! refused request (429) is counted apart from the errors, and its client waits the answer's
//! `Retry-After` before the next, as inference-sdk waits between its retries; a 429 without a
//! `Retry-After` in whole seconds is an error.

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
    /// When each answer was read, in seconds from the level's start.
    pub answered_at: Vec<f64>,
    /// Failures other than refusals, and refusals (429), which are in neither count of the other.
    pub errors: usize,
    pub refused: usize,
    pub seconds: f64,
    /// The level's planned length: clients stop sending then.
    #[allow(dead_code)] // Read by `steady_rate`, which not every bench uses.
    pub planned: f64,
}

/// One client's record of a level.
#[derive(Default)]
pub struct Tally {
    latencies_ms: Vec<f64>,
    answered_at: Vec<f64>,
    errors: usize,
    refused: usize,
}

impl Tally {
    /// An answer read in full, for a request sent at `sent`, in a level that began at `started`.
    pub fn answered(&mut self, started: Instant, sent: Instant) {
        self.latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
        self.answered_at.push(started.elapsed().as_secs_f64());
    }

    pub fn failed(&mut self) {
        self.errors += 1;
    }

    pub fn refused(&mut self) {
        self.refused += 1;
    }
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
                let mut tally = Tally::default();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    match request(&client).send().await {
                        Ok(r) if r.status().as_u16() == 429 => {
                            let retry_after =
                                r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                            // A refusal that does not say when to come back is a fault of the
                            // server's, so it counts as an error.
                            match retry_after {
                                Some(_) => tally.refused(),
                                None => tally.failed(),
                            }
                            let wait = retry_after.unwrap_or(1);
                            let resume = (Instant::now() + Duration::from_secs(wait)).min(deadline);
                            tokio::time::sleep_until(resume.into()).await;
                        }
                        Ok(r) if r.status().is_success() => match r.bytes().await {
                            Ok(_) => tally.answered(started, sent),
                            Err(_) => tally.failed(),
                        },
                        _ => tally.failed(),
                    }
                }
                tally
            })
        })
        .collect();
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await.unwrap_or_default());
    }
    Level::of(tallies, started, duration)
}

impl Level {
    /// The clients' tallies of a level that began at `started` and was planned to last `duration`.
    pub fn of(tallies: Vec<Tally>, started: Instant, duration: Duration) -> Level {
        let mut level = Level {
            latencies_ms: Vec::new(),
            answered_at: Vec::new(),
            errors: 0,
            refused: 0,
            seconds: 0.0,
            planned: duration.as_secs_f64(),
        };
        for tally in tallies {
            level.latencies_ms.extend(tally.latencies_ms);
            level.answered_at.extend(tally.answered_at);
            level.errors += tally.errors;
            level.refused += tally.refused;
        }
        level.seconds = started.elapsed().as_secs_f64();
        level.latencies_ms.sort_by(f64::total_cmp);
        level
    }

    /// Answers per second over the whole level.
    pub fn rate(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.seconds
    }

    /// The median of the level's one-second rates (answers read in each whole second of it). Raw
    /// ONNX Runtime's rates are median runs, which leave out a moment when another tenant of this
    /// shared machine takes the cores; the whole level's rate counts such a moment in full. This
    /// is the server's figure measured the same way. Levels under three seconds give their rate.
    #[allow(dead_code)] // The benches that compare with raw ONNX Runtime use it.
    pub fn steady_rate(&self) -> f64 {
        let seconds = self.planned.floor() as usize;
        if seconds < 3 {
            return self.rate();
        }
        let mut counts = vec![0usize; seconds];
        for at in &self.answered_at {
            if let Some(count) = counts.get_mut(*at as usize) {
                *count += 1;
            }
        }
        let mut rates: Vec<f64> = counts.into_iter().map(|c| c as f64).collect();
        rates.sort_by(f64::total_cmp);
        let middle = rates.len() / 2;
        match rates.len() % 2 {
            0 => (rates[middle - 1] + rates[middle]) / 2.0,
            _ => rates[middle],
        }
    }
}
