//! Per-request span, request id, and HTTP metrics (by route pattern, never by raw path, so that
//! arbitrary URLs cannot grow the label set).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

use crate::request_body::{arrive_within, InFlight};
use crate::state::AppState;
use tracing::Instrument;

#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
}

/// Routes that are not work: probes and scrapes do not count as load.
const OPERATIONS: &[&str] = &["/healthz", "/readiness", "/metrics", "/info"];

/// Gives the request's place in the in-flight gauge back when dropped (also when the client goes
/// away).
struct Answered(Arc<InFlight>);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.done();
    }
}

impl HttpMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("sightline_http_requests_total", "HTTP requests by route, method and status class."),
            &["handler", "method", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("sightline_http_request_duration_seconds", "HTTP request latency by route.")
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["handler", "method"],
        )?;
        let in_flight = IntGauge::new(
            "sightline_http_requests_in_flight",
            "Requests being served now, probes and scrapes aside: the per-pod load an autoscaler scales on.",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(HttpMetrics { requests, duration, in_flight })
    }

    /// Every route's series at 0 (each method it takes, each status class it can answer), so
    /// that a route never called reads 0 rather than "no data".
    pub fn start_at_zero(&self, routes: &[(String, Vec<String>)]) {
        for (handler, methods) in routes {
            for method in methods {
                for class in ["2xx", "4xx", "5xx"] {
                    self.requests.with_label_values(&[handler.as_str(), method.as_str(), class]);
                }
                self.duration.with_label_values(&[handler.as_str(), method.as_str()]);
            }
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn observe(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let handler = req.match_pattern().unwrap_or_else(|| "none".to_owned());
    let method = req.method().as_str().to_owned();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let metrics = req.app_data::<web::Data<HttpMetrics>>().map(|m| m.get_ref().clone());
    let gauge = metrics.as_ref().filter(|_| !OPERATIONS.contains(&handler.as_str())).map(|m| m.in_flight.clone());
    let in_flight = InFlight::new(gauge);
    let timeout = req.app_data::<web::Data<AppState>>().map_or(Duration::from_secs(60), |s| s.client_body_timeout);
    arrive_within(&mut req, timeout, in_flight.clone());
    let _answered = Answered(in_flight);
    let span = tracing::info_span!("http_request", %method, path = %req.path(), %request_id);
    let mut response = next.call(req).instrument(span.clone()).await?;
    let status = response.status();
    span.in_scope(|| {
        tracing::info!(status = status.as_u16(), seconds = started.elapsed().as_secs_f64(), "request done");
    });
    if let Some(m) = metrics {
        let class = format!("{}xx", status.as_u16() / 100);
        m.requests.with_label_values(&[handler.as_str(), method.as_str(), class.as_str()]).inc();
        m.duration.with_label_values(&[handler.as_str(), method.as_str()]).observe(started.elapsed().as_secs_f64());
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}
