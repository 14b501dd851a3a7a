//! `WithMetrics`: Prometheus counters and histograms per model id and task.
//!
//! Placed inside `WithFixedSizeCache` so that evictions (which the cache sends inward as
//! `RemovalReason::Evicted`) and the loads it triggers pass through here.

use std::time::Instant;

use async_trait::async_trait;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::in_flight::InFlight;
use crate::{CoreError, InferRequest, InferResponse, ModelDescription, ModelId, ModelManager, RemovalReason};

/// The manager's metric families, registered once into the server's registry.
#[derive(Clone)]
pub struct ManagerMetrics {
    requests: IntCounterVec,
    errors: IntCounterVec,
    inference_seconds: HistogramVec,
    loads: IntCounterVec,
    load_seconds: HistogramVec,
    evictions: IntCounterVec,
    loaded: IntGaugeVec,
    info: IntGaugeVec,
    resident: IntGaugeVec,
}

const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const LOAD_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

impl ManagerMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let ml = &["model_id", "task"];
        let metrics = ManagerMetrics {
            requests: IntCounterVec::new(
                Opts::new("sightline_inference_requests_total", "Inference requests (one per image) by model."),
                ml,
            )?,
            errors: IntCounterVec::new(
                Opts::new("sightline_inference_errors_total", "Failed inference requests by model and error kind."),
                &["model_id", "task", "kind"],
            )?,
            inference_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "sightline_inference_duration_seconds",
                    "Time per image from decode to post-processing, by model.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                ml,
            )?,
            loads: IntCounterVec::new(
                Opts::new("sightline_model_loads_total", "Model loads by outcome (success or error)."),
                &["model_id", "task", "outcome"],
            )?,
            load_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "sightline_model_load_duration_seconds",
                    "Time to load and validate a model, by where its files came from (cache, or the source that downloaded them) and outcome.",
                )
                .buckets(LOAD_BUCKETS.to_vec()),
                &["model_id", "task", "source", "outcome"],
            )?,
            evictions: IntCounterVec::new(
                Opts::new("sightline_model_evictions_total", "Models evicted from memory, by cause."),
                &["model_id", "task", "cause"],
            )?,
            loaded: IntGaugeVec::new(Opts::new("sightline_model_loaded", "1 for each model currently loaded."), ml)?,
            info: IntGaugeVec::new(
                Opts::new(
                    "sightline_model_info",
                    "1 for each loaded model, labelled with the execution provider and device it really runs on.",
                ),
                &["model_id", "task", "execution_provider", "device"],
            )?,
            resident: IntGaugeVec::new(
                Opts::new(
                    "sightline_model_resident_bytes",
                    "Host memory each loaded model took when it loaded (allocator growth across its load and test inference).",
                ),
                ml,
            )?,
        };
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        registry.register(Box::new(metrics.inference_seconds.clone()))?;
        registry.register(Box::new(metrics.loads.clone()))?;
        registry.register(Box::new(metrics.load_seconds.clone()))?;
        registry.register(Box::new(metrics.evictions.clone()))?;
        registry.register(Box::new(metrics.loaded.clone()))?;
        registry.register(Box::new(metrics.info.clone()))?;
        registry.register(Box::new(metrics.resident.clone()))?;
        Ok(metrics)
    }
}

pub struct WithMetrics<M> {
    inner: M,
    metrics: ManagerMetrics,
    loads: InFlight,
}

impl<M: ModelManager> WithMetrics<M> {
    pub fn new(inner: M, metrics: ManagerMetrics) -> Self {
        WithMetrics { inner, metrics, loads: InFlight::default() }
    }

    fn description_of(&self, id: &ModelId) -> Option<ModelDescription> {
        let name = id.to_string();
        self.inner.describe().into_iter().find(|d| d.model_id == name)
    }

    fn info_labels(d: &ModelDescription) -> [&str; 4] {
        [d.model_id.as_str(), d.task.as_str(), d.execution_provider.as_str(), d.device.as_str()]
    }

    /// Drops the series of a model that is no longer loaded.
    fn forget(&self, d: &ModelDescription) {
        let _ = self.metrics.loaded.remove_label_values(&[d.model_id.as_str(), d.task.as_str()]);
        let _ = self.metrics.info.remove_label_values(&Self::info_labels(d));
        let _ = self.metrics.resident.remove_label_values(&[d.model_id.as_str(), d.task.as_str()]);
    }
}

#[async_trait]
impl<M: ModelManager> ModelManager for WithMetrics<M> {
    async fn add(&self, id: &ModelId) -> Result<ModelDescription, CoreError> {
        // Only the caller that starts a load counts it; the others wait on the same load.
        let claim = if self.inner.contains(id) { None } else { self.loads.claim(id) };
        if claim.is_none() {
            return self.inner.add(id).await;
        }
        let started = Instant::now();
        let result = self.inner.add(id).await;
        let model_id = id.to_string();
        match &result {
            Ok(d) => {
                let task = d.task.as_str();
                self.metrics.loads.with_label_values(&[model_id.as_str(), task, "success"]).inc();
                let source = if d.artifact_source.is_empty() { "unknown" } else { d.artifact_source.as_str() };
                self.metrics
                    .load_seconds
                    .with_label_values(&[model_id.as_str(), task, source, "success"])
                    .observe(started.elapsed().as_secs_f64());
                self.metrics.loaded.with_label_values(&[model_id.as_str(), task]).set(1);
                self.metrics.info.with_label_values(&Self::info_labels(d)).set(1);
                if let Some(bytes) = d.resident_bytes {
                    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
                    self.metrics.resident.with_label_values(&[model_id.as_str(), task]).set(bytes);
                }
            }
            Err(_) => {
                self.metrics.loads.with_label_values(&[model_id.as_str(), "unknown", "error"]).inc();
                self.metrics
                    .load_seconds
                    .with_label_values(&[model_id.as_str(), "unknown", "unknown", "error"])
                    .observe(started.elapsed().as_secs_f64());
            }
        }
        result
    }

    async fn remove(&self, id: &ModelId, reason: RemovalReason) -> bool {
        let description = self.description_of(id);
        let removed = self.inner.remove(id, reason).await;
        if let (true, Some(d)) = (removed, description) {
            self.forget(&d);
            if let RemovalReason::Evicted(cause) = reason {
                self.metrics.evictions.with_label_values(&[d.model_id.as_str(), d.task.as_str(), cause.as_str()]).inc();
            }
        }
        removed
    }

    async fn clear(&self) {
        let loaded = self.inner.describe();
        self.inner.clear().await;
        for d in loaded {
            self.forget(&d);
        }
    }

    async fn infer(&self, id: &ModelId, request: InferRequest) -> Result<InferResponse, CoreError> {
        if !self.inner.contains(id) {
            // Load through `add` so the load is counted even when the inner manager would load on its own.
            self.add(id).await?;
        }
        let model_id = id.to_string();
        let task = request.label();
        self.metrics.requests.with_label_values(&[model_id.as_str(), task]).inc();
        let started = Instant::now();
        let result = self.inner.infer(id, request).await;
        match &result {
            Ok(_) => self
                .metrics
                .inference_seconds
                .with_label_values(&[model_id.as_str(), task])
                .observe(started.elapsed().as_secs_f64()),
            Err(e) => self.metrics.errors.with_label_values(&[model_id.as_str(), task, e.kind()]).inc(),
        }
        result
    }

    fn describe(&self) -> Vec<ModelDescription> {
        self.inner.describe()
    }

    fn contains(&self, id: &ModelId) -> bool {
        self.inner.contains(id)
    }

    fn loading(&self) -> Vec<ModelId> {
        self.inner.loading()
    }

    fn estimate_bytes(&self, id: &ModelId) -> Option<u64> {
        self.inner.estimate_bytes(id)
    }
}
