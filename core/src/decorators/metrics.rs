//! `WithMetrics`: Prometheus counters and histograms per model id and task.
//!
//! Placed inside `WithFixedSizeCache` so that evictions (which the cache sends inward as
//! `RemovalReason::Evicted`) and the loads it triggers pass through here.

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};

use super::decorated::{Decorated, Hooks};
use crate::{CoreError, EvictionCause, Families, ModelDescription, ModelId, ModelManager, RemovalReason};

/// The manager's metric families, registered once into the server's registry.
#[derive(Clone)]
pub struct ManagerMetrics {
    requests: IntCounterVec,
    errors: IntCounterVec,
    inference_seconds: HistogramVec,
    failed_seconds: HistogramVec,
    loads: IntCounterVec,
    load_seconds: HistogramVec,
    evictions: IntCounterVec,
    loaded: IntGaugeVec,
    info: IntGaugeVec,
    resident: IntGaugeVec,
}

/// The kinds of failure a request to a loaded model can end in (`CoreError::kind`).
const REQUEST_FAILURES: [&str; 8] = [
    "bad_image",
    "invalid_parameter",
    "invalid_input",
    "invalid_tensor",
    "task_mismatch",
    "overloaded",
    "inference",
    "internal",
];

const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const LOAD_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

impl ManagerMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let (families, ml) = (Families::registered_in(registry), &["model_id", "task"]);
        let metrics = ManagerMetrics {
            requests: families.counter(
                "sightline_inference_requests_total",
                "Inference requests (one per image) by model.",
                ml,
            )?,
            errors: families.counter(
                "sightline_inference_errors_total",
                "Failed inference requests by model and error kind.",
                &["model_id", "task", "kind"],
            )?,
            inference_seconds: families.histogram(
                "sightline_inference_duration_seconds",
                "Time per image from decode to post-processing, by model.",
                LATENCY_BUCKETS,
                ml,
            )?,
            failed_seconds: families.histogram(
                "sightline_inference_failure_duration_seconds",
                "Time per failed image (or tensor request) until it failed, by model.",
                LATENCY_BUCKETS,
                ml,
            )?,
            loads: families.counter(
                "sightline_model_loads_total",
                "Model loads by outcome (success or error).",
                &["model_id", "task", "outcome"],
            )?,
            load_seconds: families.histogram(
                "sightline_model_load_duration_seconds",
                "Time to load and validate a model, by where its files came from (cache, or the source that downloaded them) and outcome.",
                LOAD_BUCKETS,
                &["model_id", "task", "source", "outcome"],
            )?,
            evictions: families.counter(
                "sightline_model_evictions_total",
                "Models evicted from memory, by cause.",
                &["model_id", "task", "cause"],
            )?,
            loaded: families.gauge("sightline_model_loaded", "1 for each model currently loaded.", ml)?,
            info: families.gauge(
                "sightline_model_info",
                "1 for each loaded model, labelled with the execution provider and device it really runs on.",
                &["model_id", "task", "execution_provider", "device"],
            )?,
            resident: families.gauge(
                "sightline_model_resident_bytes",
                "Host memory each loaded model took when it loaded (allocator growth across its load and test inference).",
                ml,
            )?,
        };
        Ok(metrics.started())
    }

    /// The series known before any model loads, at 0: failed loads of ids no source has.
    fn started(self) -> ManagerMetrics {
        self.loads.with_label_values(&["other", "unknown", "error"]);
        self.load_seconds.with_label_values(&["other", "unknown", "unknown", "error"]);
        self
    }

    /// A loaded model's series at 0, so that its panels read 0 before its first request: its
    /// requests, answers and failures by each label it is asked under, and its evictions.
    fn model_at_zero(&self, d: &ModelDescription) {
        let model_id = d.model_id.to_string();
        let task = d.task.as_str();
        let mut labels = match d.task {
            crate::Task::Embedding => vec!["embed-image", "embed-text"],
            other => vec![other.as_str()],
        };
        if d.tensors.is_some() {
            labels.push("tensor");
        }
        for label in labels {
            self.requests.with_label_values(&[model_id.as_str(), label]);
            self.inference_seconds.with_label_values(&[model_id.as_str(), label]);
            self.failed_seconds.with_label_values(&[model_id.as_str(), label]);
            for kind in REQUEST_FAILURES {
                self.errors.with_label_values(&[model_id.as_str(), label, kind]);
            }
        }
        for cause in [EvictionCause::Capacity, EvictionCause::MemoryPressure, EvictionCause::MemoryBudget] {
            self.evictions.with_label_values(&[model_id.as_str(), task, cause.as_str()]);
        }
    }
}

/// Loads, evictions, inferences and what is loaded, as Prometheus series.
pub type WithMetrics<M> = Decorated<M, ManagerMetrics>;

impl<M: ModelManager> WithMetrics<M> {
    pub fn new(inner: M, metrics: ManagerMetrics) -> Self {
        Decorated::with_hooks(inner, metrics)
    }
}

impl ManagerMetrics {
    fn info_labels(d: &ModelDescription) -> [String; 4] {
        [d.model_id.to_string(), d.task.as_str().into(), d.execution_provider.clone(), d.device.clone()]
    }

    /// Drops the series of a model that is no longer loaded.
    fn forget(&self, d: &ModelDescription) {
        let (model_id, task) = (d.model_id.to_string(), d.task.as_str());
        let _ = self.loaded.remove_label_values(&[model_id.as_str(), task]);
        let info = Self::info_labels(d);
        let _ = self.info.remove_label_values(&info.each_ref().map(String::as_str));
        let _ = self.resident.remove_label_values(&[model_id.as_str(), task]);
    }
}

impl Hooks for ManagerMetrics {
    fn loaded(&self, id: &ModelId, result: &Result<ModelDescription, CoreError>, seconds: f64) {
        let model_id = id.to_string();
        let Ok(d) = result else {
            // An id no source has is whatever a client typed: one series for all of them, so that
            // requests for made-up ids cannot grow the metrics without bound.
            let model_id = match result {
                Err(CoreError::ModelNotFound(_) | CoreError::InvalidModelId(_)) => "other",
                _ => model_id.as_str(),
            };
            self.loads.with_label_values(&[model_id, "unknown", "error"]).inc();
            self.load_seconds.with_label_values(&[model_id, "unknown", "unknown", "error"]).observe(seconds);
            return;
        };
        let task = d.task.as_str();
        self.loads.with_label_values(&[model_id.as_str(), task, "success"]).inc();
        let source = if d.artifact_source.is_empty() { "unknown" } else { d.artifact_source.as_str() };
        self.load_seconds.with_label_values(&[model_id.as_str(), task, source, "success"]).observe(seconds);
        self.model_at_zero(d);
        self.loaded.with_label_values(&[model_id.as_str(), task]).set(1);
        let info = Self::info_labels(d);
        self.info.with_label_values(&info.each_ref().map(String::as_str)).set(1);
        if let Some(bytes) = d.resident_bytes {
            let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
            self.resident.with_label_values(&[model_id.as_str(), task]).set(bytes);
        }
    }

    fn removed(&self, _id: &ModelId, reason: RemovalReason, description: Option<&ModelDescription>) {
        let Some(d) = description else { return };
        self.forget(d);
        if let RemovalReason::Evicted(cause) = reason {
            self.evictions.with_label_values(&[&d.model_id.to_string(), d.task.as_str(), cause.as_str()]).inc();
        }
    }

    fn cleared(&self, unloaded: &[ModelDescription]) {
        for d in unloaded {
            self.forget(d);
        }
    }

    fn inference_started(&self, id: &ModelId, label: &'static str) {
        self.requests.with_label_values(&[&id.to_string(), label]).inc();
    }

    fn inferred(&self, id: &ModelId, label: &'static str, result: Result<(), &CoreError>, seconds: f64) {
        let model_id = id.to_string();
        match result {
            Ok(()) => self.inference_seconds.with_label_values(&[model_id.as_str(), label]).observe(seconds),
            Err(e) => {
                self.errors.with_label_values(&[model_id.as_str(), label, e.kind()]).inc();
                self.failed_seconds.with_label_values(&[model_id.as_str(), label]).observe(seconds);
            }
        }
    }
}
