//! `WithLogger`: tracing spans and events for loads, evictions, inferences and failures.

use std::time::Instant;

use async_trait::async_trait;
use tracing::Instrument;

use crate::in_flight::InFlight;
use crate::{CoreError, InferRequest, InferResponse, ModelDescription, ModelId, ModelManager, RemovalReason};

pub struct WithLogger<M> {
    inner: M,
    loads: InFlight,
}

impl<M: ModelManager> WithLogger<M> {
    pub fn new(inner: M) -> Self {
        WithLogger { inner, loads: InFlight::default() }
    }
}

#[async_trait]
impl<M: ModelManager> ModelManager for WithLogger<M> {
    async fn add(&self, id: &ModelId) -> Result<ModelDescription, CoreError> {
        // Only the caller that starts a load logs it; the others wait on the same load.
        let claim = if self.inner.contains(id) { None } else { self.loads.claim(id) };
        if claim.is_none() {
            return self.inner.add(id).await;
        }
        let span = tracing::info_span!("model_load", model_id = %id);
        async {
            let started = Instant::now();
            let result = self.inner.add(id).await;
            let seconds = started.elapsed().as_secs_f64();
            match &result {
                Ok(d) => tracing::info!(task = %d.task, architecture = %d.architecture, seconds, "model loaded"),
                Err(e) => tracing::error!(error = %e, kind = e.kind(), seconds, "model load failed"),
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn remove(&self, id: &ModelId, reason: RemovalReason) -> bool {
        let removed = self.inner.remove(id, reason).await;
        if removed {
            match reason {
                RemovalReason::Requested => tracing::info!(model_id = %id, "model unloaded"),
                RemovalReason::Evicted(cause) => {
                    tracing::info!(model_id = %id, cause = cause.as_str(), "model evicted")
                }
            }
        }
        removed
    }

    async fn clear(&self) {
        let count = self.inner.describe().len();
        self.inner.clear().await;
        tracing::info!(count, "all models unloaded");
    }

    async fn infer(&self, id: &ModelId, request: InferRequest) -> Result<InferResponse, CoreError> {
        let span = tracing::debug_span!("inference", model_id = %id, task = request.label());
        async {
            let started = Instant::now();
            let result = self.inner.infer(id, request).await;
            match &result {
                Ok(_) => tracing::debug!(seconds = started.elapsed().as_secs_f64(), "inference done"),
                Err(e) => tracing::warn!(error = %e, kind = e.kind(), "inference failed"),
            }
            result
        }
        .instrument(span)
        .await
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
