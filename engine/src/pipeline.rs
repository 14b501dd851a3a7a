//! The request pipeline around inference: the bounded pool that decodes, prepares and
//! post-processes images while the model's instances run, and the per-stage timings it reports.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};
use sightline_core::{CoreError, Families};
use tokio::sync::Semaphore;

/// The CPU-heavy work of requests (decode, preprocess, post-process) runs on tokio's blocking
/// threads, at most this many at a time: beyond the cores, more in flight only holds more decoded
/// images in memory and adds no throughput.
static CPU_POOL: OnceLock<Semaphore> = OnceLock::new();

/// Sets the pool's size once, before the first request (`0`: one per core). Later calls do nothing.
pub fn configure_cpu_pool(threads: usize) {
    let threads = if threads == 0 { default_pool_size() } else { threads };
    let _ = CPU_POOL.set(Semaphore::new(threads));
}

fn default_pool_size() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn cpu_pool() -> &'static Semaphore {
    CPU_POOL.get_or_init(|| Semaphore::new(default_pool_size()))
}

/// Runs `work` on the bounded pool; `what` names the stage in the error if the task dies.
pub async fn run_blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CoreError> {
    let _permit = cpu_pool().acquire().await.map_err(|e| CoreError::Internal(format!("{what}: {e}")))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| CoreError::Internal(format!("{what} task failed: {e}")))
}

/// The pipeline's metric families, registered once into the server's registry.
#[derive(Clone)]
pub struct PipelineMetrics {
    stages: HistogramVec,
    batch_size: HistogramVec,
    run_threads: HistogramVec,
    inferences: IntCounterVec,
    executions: IntCounterVec,
    in_flight: IntGaugeVec,
    queue_depth: IntGaugeVec,
    refusals: IntCounterVec,
    batch_stages: HistogramVec,
    last_inference: GaugeVec,
}

const STAGE_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
const THREAD_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 64.0];

impl PipelineMetrics {
    fn new(families: Families<'_>) -> Result<PipelineMetrics, prometheus::Error> {
        let per_model = &["model_id"];
        Ok(PipelineMetrics {
            stages: families.histogram(
                "sightline_stage_duration_seconds",
                "Time per image in each pipeline stage: decode, preprocess, queue (waiting for an instance), inference (its batch's run), postprocess.",
                STAGE_BUCKETS,
                &["model_id", "stage"],
            )?,
            batch_size: families.histogram(
                "sightline_batch_size",
                "Images per inference run (dynamic batching), by model.",
                BATCH_BUCKETS,
                per_model,
            )?,
            run_threads: families.histogram(
                "sightline_run_intra_op_threads",
                "Intra-op threads of the session each run went to, by model: all the cores when a request found the model idle (ADAPTIVE_EXECUTION's solo session), an instance's share otherwise.",
                THREAD_BUCKETS,
                per_model,
            )?,
            inferences: families.counter(
                "sightline_inference_count_total",
                "Images or tensor requests inferred, by model (Triton's inference count: a batch of n counts n).",
                per_model,
            )?,
            executions: families.counter(
                "sightline_inference_exec_count_total",
                "Session runs, by model (Triton's execution count: a batch counts once).",
                per_model,
            )?,
            in_flight: families.gauge(
                "sightline_model_requests_in_flight",
                "Requests admitted to a model and not yet answered (decoding, queued or running).",
                per_model,
            )?,
            queue_depth: families.gauge(
                "sightline_model_queue_depth",
                "Requests waiting in a model's queue for a free instance.",
                per_model,
            )?,
            refusals: families.counter(
                "sightline_requests_refused_total",
                "Requests refused, by model and cause: queue_wait (429: more waiting than MODEL_QUEUE_CAPACITY and a predicted wait over MAX_QUEUE_DELAY_MS), too_many_images (413: a list over MAX_IMAGES_PER_REQUEST; model_id other for a model not loaded).",
                &["model_id", "cause"],
            )?,
            batch_stages: families.histogram(
                "sightline_batch_stage_duration_seconds",
                "Time per session run, by model, batch size (requests in the run) and stage: input (joining the requests' tensors), infer (the session's run), output (splitting its outputs per request).",
                STAGE_BUCKETS,
                &["model_id", "batch_size", "stage"],
            )?,
            last_inference: families.float_gauge(
                "sightline_last_inference_timestamp_seconds",
                "When the model's last run finished, in seconds since the Unix epoch.",
                per_model,
            )?,
        })
    }

    pub fn register(registry: &Registry) -> Result<PipelineMetrics, prometheus::Error> {
        let metrics = PipelineMetrics::new(Families::registered_in(registry))?;
        // Known before any model loads: refusals of lists for models not loaded. A model's own
        // series start at 0 when it loads (`for_model`).
        metrics.refusals.with_label_values(&["other", "too_many_images"]);
        Ok(metrics)
    }

    /// Families registered nowhere, for benchmarks and tests that do not read them.
    pub fn unregistered() -> PipelineMetrics {
        // The names and buckets are constants: building them cannot fail.
        PipelineMetrics::new(Families::unregistered())
            .unwrap_or_else(|e| unreachable!("pipeline metric definitions are valid: {e}"))
    }

    /// The histograms of one model (or one session of it, such as `ppocr/4-det`).
    pub fn for_model(&self, model_id: &str) -> StageTimers {
        let stage = |s: &str| self.stages.with_label_values(&[model_id, s]);
        // Runs of one request can happen to any model: their series start at 0 with it.
        for run_stage in ["input", "infer", "output"] {
            self.batch_stages.with_label_values(&[model_id, "1", run_stage]);
        }
        StageTimers {
            decode: stage("decode"),
            preprocess: stage("preprocess"),
            queue: stage("queue"),
            inference: stage("inference"),
            postprocess: stage("postprocess"),
            batch_size: self.batch_size.with_label_values(&[model_id]),
            run_threads: self.run_threads.with_label_values(&[model_id]),
            inferences: self.inferences.with_label_values(&[model_id]),
            executions: self.executions.with_label_values(&[model_id]),
            in_flight: self.in_flight.with_label_values(&[model_id]),
            queue_depth: self.queue_depth.with_label_values(&[model_id]),
            refused: self.refusals.with_label_values(&[model_id, "queue_wait"]),
            runs: RunTimers {
                stages: self.batch_stages.clone(),
                model_id: model_id.to_owned(),
                last: self.last_inference.with_label_values(&[model_id]),
            },
        }
    }

    /// Counts a request refused before it reached a model's queue.
    pub fn refused(&self, model_id: &str, cause: &str) {
        self.refusals.with_label_values(&[model_id, cause]).inc();
    }
}

/// One model's stage histograms, labelled once at load.
#[derive(Clone)]
pub struct StageTimers {
    pub decode: Histogram,
    pub preprocess: Histogram,
    pub queue: Histogram,
    pub inference: Histogram,
    pub postprocess: Histogram,
    pub batch_size: Histogram,
    pub run_threads: Histogram,
    pub inferences: IntCounter,
    pub executions: IntCounter,
    pub in_flight: IntGauge,
    pub queue_depth: IntGauge,
    /// Refusals by the model's queue (cause `queue_wait`).
    pub refused: IntCounter,
    pub runs: RunTimers,
}

/// The stages of each session run, by the number of requests it served (the statistics
/// extension's per-batch-size figures), and when the last one finished.
#[derive(Clone)]
pub struct RunTimers {
    stages: HistogramVec,
    model_id: String,
    last: Gauge,
}

impl RunTimers {
    /// One run of `requests` requests: joining their inputs, the session's run, splitting its outputs.
    pub fn observe(&self, requests: usize, input: Duration, infer: Duration, output: Duration) {
        let size = requests.to_string();
        for (stage, took) in [("input", input), ("infer", infer), ("output", output)] {
            self.stages.with_label_values(&[self.model_id.as_str(), size.as_str(), stage]).observe(took.as_secs_f64());
        }
        self.last.set(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()));
    }
}
