//! Calls by RPC and status code, and their latency: the gRPC side of the HTTP metrics.

use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct GrpcMetrics {
    calls: IntCounterVec,
    duration: HistogramVec,
}

impl GrpcMetrics {
    pub fn register(registry: &Registry) -> Result<GrpcMetrics, prometheus::Error> {
        let calls = IntCounterVec::new(
            Opts::new("sightline_grpc_requests_total", "gRPC calls by method and status code (OK, NOT_FOUND, ...)."),
            &["method", "code"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("sightline_grpc_request_duration_seconds", "gRPC call latency by method.")
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["method"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(GrpcMetrics { calls, duration })
    }

    /// Each RPC's series at 0 (its `OK` count and its latency), so that an RPC never called
    /// reads 0 rather than "no data".
    pub fn start_at_zero(&self, methods: &[&str]) {
        for method in methods {
            self.calls.with_label_values(&[method, "OK"]);
            self.duration.with_label_values(&[method]);
        }
    }

    /// Counts one call of `method` that took since `started` and ended with `code`.
    pub fn observe(&self, method: &str, code: tonic::Code, started: Instant) {
        let code = format!("{code:?}");
        self.calls.with_label_values(&[method, &screaming(&code)]).inc();
        self.duration.with_label_values(&[method]).observe(started.elapsed().as_secs_f64());
    }
}

/// `NotFound` as gRPC writes it: `NOT_FOUND`.
fn screaming(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}
