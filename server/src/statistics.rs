//! Triton's statistics extension, read from the metric families that `/metrics` exports, so that
//! the two can never disagree. Figures are cumulative since start-up, per model id; a pipeline of
//! several sessions (OCR) counts its requests here and its sessions' stages under their own names
//! in `/metrics`.

use std::collections::{BTreeMap, HashMap};

use prometheus::proto::{Metric, MetricFamily};
use prometheus::Registry;
use sightline_core::ModelId;

use crate::error::ApiError;
use crate::service::Service;
use crate::types::protocol::{
    BatchStatistics, InferStatistics, ModelStatistics, ModelStatsResponse, StatisticDuration,
};

/// Requests answered and failed, by the manager (labels `model_id`, `task`).
const SUCCESS: &str = "sightline_inference_duration_seconds";
const FAILURE: &str = "sightline_inference_failure_duration_seconds";
/// Per-request stages (labels `model_id`, `stage`).
const STAGES: &str = "sightline_stage_duration_seconds";
/// Per-run stages (labels `model_id`, `batch_size`, `stage`).
const RUNS: &str = "sightline_batch_stage_duration_seconds";
const INFERENCES: &str = "sightline_inference_count_total";
const EXECUTIONS: &str = "sightline_inference_exec_count_total";
const LAST: &str = "sightline_last_inference_timestamp_seconds";

/// The statistics of every loaded model (no `name`), of every loaded version of `name`, or of
/// `name/version`; a model that is not loaded has none (an error, as Triton's).
pub fn report(
    service: &Service,
    registry: &Registry,
    name: Option<&str>,
    version: Option<&str>,
) -> Result<ModelStatsResponse, ApiError> {
    let loaded = service.loaded().into_iter().map(|d| d.model_id);
    let ids: Vec<ModelId> = match (name, version.filter(|v| !v.is_empty())) {
        (None, _) => loaded.collect(),
        (Some(name), Some(version)) => {
            let id = ModelId::parse(&format!("{name}/{version}"))?;
            loaded.filter(|l| *l == id).collect()
        }
        (Some(name), None) => {
            ModelId::parse(&format!("{name}/0"))?;
            loaded.filter(|id| id.dataset() == name).collect()
        }
    };
    if let (Some(name), true) = (name, ids.is_empty()) {
        let which = version.filter(|v| !v.is_empty()).map_or_else(|| name.to_owned(), |v| format!("{name}/{v}"));
        return Err(ApiError::NotFoundMessage(format!("model {which} is not loaded; it has no statistics")));
    }
    Ok(ModelStatsResponse { model_stats: for_models(registry, &ids) })
}

/// Each model's statistics, in the order of `ids`.
pub fn for_models(registry: &Registry, ids: &[ModelId]) -> Vec<ModelStatistics> {
    let mut tallies: HashMap<String, Tally> = ids.iter().map(|id| (id.to_string(), Tally::default())).collect();
    for family in registry.gather() {
        for metric in family.get_metric() {
            let Some(tally) = label(metric, "model_id").and_then(|m| tallies.get_mut(m)) else { continue };
            tally.add(&family, metric);
        }
    }
    ids.iter().map(|id| tallies.remove(&id.to_string()).unwrap_or_default().statistics(id)).collect()
}

fn label<'m>(metric: &'m Metric, name: &str) -> Option<&'m str> {
    metric.get_label().iter().find(|l| l.name() == name).map(|l| l.value())
}

/// Seconds as a count and nanoseconds.
#[derive(Debug, Default, Clone, Copy)]
struct Seconds {
    count: u64,
    sum: f64,
}

impl Seconds {
    fn of(metric: &Metric) -> Seconds {
        let histogram = metric.get_histogram();
        Seconds { count: histogram.get_sample_count(), sum: histogram.get_sample_sum() }
    }

    fn add(&mut self, other: Seconds) {
        self.count += other.count;
        self.sum += other.sum;
    }

    fn duration(self) -> StatisticDuration {
        StatisticDuration { count: self.count, ns: nanoseconds(self.sum) }
    }
}

fn nanoseconds(seconds: f64) -> u64 {
    (seconds * 1e9).round().max(0.0) as u64
}

/// What one model's series hold.
#[derive(Debug, Default)]
struct Tally {
    success: Seconds,
    fail: Seconds,
    queue: Seconds,
    /// Decode and preprocess, per request.
    prepare: f64,
    postprocess: f64,
    inferences: u64,
    executions: u64,
    last: f64,
    /// `[input, infer, output]` of the runs of each batch size.
    runs: BTreeMap<u64, [Seconds; 3]>,
}

impl Tally {
    fn add(&mut self, family: &MetricFamily, metric: &Metric) {
        match family.name() {
            SUCCESS => self.success.add(Seconds::of(metric)),
            FAILURE => self.fail.add(Seconds::of(metric)),
            STAGES => match label(metric, "stage") {
                Some("queue") => self.queue.add(Seconds::of(metric)),
                Some("decode" | "preprocess") => self.prepare += Seconds::of(metric).sum,
                Some("postprocess") => self.postprocess += Seconds::of(metric).sum,
                _ => {}
            },
            RUNS => {
                let size = label(metric, "batch_size").and_then(|s| s.parse::<u64>().ok());
                let stage = match label(metric, "stage") {
                    Some("input") => 0,
                    Some("infer") => 1,
                    Some("output") => 2,
                    _ => return,
                };
                if let Some(size) = size {
                    self.runs.entry(size).or_default()[stage].add(Seconds::of(metric));
                }
            }
            INFERENCES => self.inferences += metric.get_counter().get_value() as u64,
            EXECUTIONS => self.executions += metric.get_counter().get_value() as u64,
            LAST => self.last = self.last.max(metric.get_gauge().get_value()),
            _ => {}
        }
    }

    /// Each request's stages are its own work plus the whole of each run it was part of (as
    /// Triton counts them: a run of n requests adds its time n times).
    fn statistics(self, id: &ModelId) -> ModelStatistics {
        let shared = |stage: usize| -> f64 { self.runs.iter().map(|(size, s)| *size as f64 * s[stage].sum).sum() };
        let per_request = |seconds: f64| StatisticDuration { count: self.inferences, ns: nanoseconds(seconds) };
        let batch_stats = self
            .runs
            .iter()
            .map(|(size, [input, infer, output])| BatchStatistics {
                batch_size: *size,
                compute_input: input.duration(),
                compute_infer: infer.duration(),
                compute_output: output.duration(),
            })
            .collect();
        ModelStatistics {
            name: id.dataset().to_owned(),
            version: id.version().to_owned(),
            last_inference: (self.last * 1000.0).round().max(0.0) as u64,
            inference_count: self.inferences,
            execution_count: self.executions,
            inference_stats: InferStatistics {
                success: self.success.duration(),
                fail: self.fail.duration(),
                queue: self.queue.duration(),
                compute_input: per_request(self.prepare + shared(0)),
                compute_infer: per_request(shared(1)),
                compute_output: per_request(self.postprocess + shared(2)),
                ..InferStatistics::default()
            },
            batch_stats,
            memory_usage: Vec::new(),
        }
    }
}
