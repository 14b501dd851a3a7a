//! What every task model is loaded with. Its own module so the task models take it without
//! importing the registry that builds them.

use std::sync::Arc;

use sightline_core::QueuePolicy;
use sightline_engine::{BatchPolicy, Engine, LoadPriority, PipelineMetrics, WorkerOptions};

use crate::DecodeLimits;

#[derive(Clone)]
pub struct LoadOptions {
    /// When a model's queue refuses work (`MODEL_QUEUE_CAPACITY`, `MAX_QUEUE_DELAY_MS`).
    pub queue: QueuePolicy,
    pub decode_limits: DecodeLimits,
    /// The execution providers sessions are built with, and the instances per model.
    pub engine: Arc<Engine>,
    /// The deployment's batching; each model takes it within what its sessions allow.
    pub batch: BatchPolicy,
    pub metrics: PipelineMetrics,
    /// `MODEL_LOAD_PRIORITY`: unloaded models' sessions are freed at the priority of loads.
    pub load_priority: LoadPriority,
}

impl LoadOptions {
    /// Defaults for benchmarks and tests: CPU provider, no batching, metrics registered nowhere.
    pub fn new(engine: Arc<Engine>) -> LoadOptions {
        LoadOptions {
            queue: QueuePolicy { count: 64, max_delay: std::time::Duration::from_secs(1) },
            decode_limits: DecodeLimits::default(),
            engine,
            batch: BatchPolicy::UNBATCHED,
            metrics: PipelineMetrics::unregistered(),
            load_priority: LoadPriority::Idle,
        }
    }

    /// How the instances of `name` (a model id, or a model's session such as `ppocr/4-det`) take
    /// their work, with batches of at most `batch_limit` images.
    pub fn worker(&self, name: &str, batch_limit: usize, varying_shapes: bool) -> WorkerOptions {
        WorkerOptions {
            queue: self.queue,
            batch: self.batch.limited_to(batch_limit),
            varying_shapes,
            timers: self.metrics.for_model(name),
            retire_priority: self.load_priority,
        }
    }
}
