//! `WithLogger`: tracing spans and events for loads, evictions, inferences and failures.

use tracing::Span;

use super::decorated::{Decorated, Hooks};
use crate::{CoreError, ModelDescription, ModelId, ModelManager, RemovalReason};

/// The logging hooks.
pub struct Logging;

/// Loads and inferences in spans of their own, removals and failures as events.
pub type WithLogger<M> = Decorated<M, Logging>;

impl<M: ModelManager> WithLogger<M> {
    pub fn new(inner: M) -> Self {
        Decorated::with_hooks(inner, Logging)
    }
}

impl Hooks for Logging {
    fn load_span(&self, id: &ModelId) -> Span {
        tracing::info_span!("model_load", model_id = %id)
    }

    fn loaded(&self, _id: &ModelId, result: &Result<ModelDescription, CoreError>, seconds: f64) {
        match result {
            Ok(d) => tracing::info!(task = %d.task, architecture = %d.architecture, seconds, "model loaded"),
            Err(e) if e.caused_by_client() => tracing::warn!(error = %e, kind = e.kind(), seconds, "model load failed"),
            Err(e) => tracing::error!(error = %e, kind = e.kind(), seconds, "model load failed"),
        }
    }

    fn removed(&self, id: &ModelId, reason: RemovalReason, _description: Option<&ModelDescription>) {
        match reason {
            RemovalReason::Requested => tracing::info!(model_id = %id, "model unloaded"),
            RemovalReason::Evicted(cause) => tracing::info!(model_id = %id, cause = cause.as_str(), "model evicted"),
        }
    }

    fn cleared(&self, unloaded: &[ModelDescription]) {
        tracing::info!(count = unloaded.len(), "all models unloaded");
    }

    fn inference_span(&self, id: &ModelId, label: &'static str) -> Span {
        tracing::debug_span!("inference", model_id = %id, task = label)
    }

    fn inferred(&self, _id: &ModelId, _label: &'static str, result: Result<(), &CoreError>, seconds: f64) {
        match result {
            Ok(()) => tracing::debug!(seconds, "inference done"),
            Err(e) => tracing::warn!(error = %e, kind = e.kind(), "inference failed"),
        }
    }
}
