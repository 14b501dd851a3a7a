//! `Decorated`: a manager that forwards every call to the one inside and tells its [`Hooks`] what
//! happened: loads (once per load, by the caller that started it), removals, clears and inferences.

use std::time::Instant;

use async_trait::async_trait;
use tracing::{Instrument, Span};

use super::in_flight::InFlight;
use crate::{CoreError, Inference, Inventory, ModelDescription, ModelId, ModelManager, RemovalReason};

/// What an observer reports; each hook does nothing unless the observer has something to say.
pub trait Hooks: Send + Sync + 'static {
    /// The span a load this observer reports runs in.
    fn load_span(&self, _id: &ModelId) -> Span {
        Span::none()
    }

    /// A load finished: reported once per load, by the caller that started it.
    fn loaded(&self, _id: &ModelId, _result: &Result<ModelDescription, CoreError>, _seconds: f64) {}

    /// A loaded (or loading) model was removed; its description when it was loaded.
    fn removed(&self, _id: &ModelId, _reason: RemovalReason, _description: Option<&ModelDescription>) {}

    /// Every model was unloaded; these were loaded.
    fn cleared(&self, _unloaded: &[ModelDescription]) {}

    /// The span an inference runs in.
    fn inference_span(&self, _id: &ModelId, _label: &'static str) -> Span {
        Span::none()
    }

    /// An inference is about to run.
    fn inference_started(&self, _id: &ModelId, _label: &'static str) {}

    /// An inference finished.
    fn inferred(&self, _id: &ModelId, _label: &'static str, _result: Result<(), &CoreError>, _seconds: f64) {}
}

pub struct Decorated<M, H> {
    inner: M,
    hooks: H,
    /// Loads in progress that this decorator reports, so each is reported once however many
    /// requests wait on it.
    loads: InFlight,
}

impl<M: ModelManager, H: Hooks> Decorated<M, H> {
    pub fn with_hooks(inner: M, hooks: H) -> Self {
        Decorated { inner, hooks, loads: InFlight::default() }
    }

    pub fn inner(&self) -> &M {
        &self.inner
    }
}

#[async_trait]
impl<M: ModelManager, H: Hooks> ModelManager for Decorated<M, H> {
    /// A failed preparation is the load's failure, reported as one (no load follows it).
    async fn prepare(&self, id: &ModelId) -> Result<(), CoreError> {
        if self.inner.contains(id) {
            return Ok(());
        }
        async {
            let started = Instant::now();
            let prepared = self.inner.prepare(id).await;
            if let Err(e) = &prepared {
                self.hooks.loaded(id, &Err(e.clone()), started.elapsed().as_secs_f64());
            }
            prepared
        }
        .instrument(self.hooks.load_span(id))
        .await
    }

    async fn add(&self, id: &ModelId) -> Result<ModelDescription, CoreError> {
        let claim = if self.inner.contains(id) { None } else { self.loads.claim(id) };
        if claim.is_none() {
            return self.inner.add(id).await;
        }
        async {
            let started = Instant::now();
            let result = self.inner.add(id).await;
            self.hooks.loaded(id, &result, started.elapsed().as_secs_f64());
            result
        }
        .instrument(self.hooks.load_span(id))
        .await
    }

    async fn remove(&self, id: &ModelId, reason: RemovalReason) -> bool {
        let description = self.inner.describe().into_iter().find(|d| &d.model_id == id);
        let removed = self.inner.remove(id, reason).await;
        if removed {
            self.hooks.removed(id, reason, description.as_ref());
        }
        removed
    }

    async fn clear(&self) {
        let loaded = self.inner.describe();
        self.inner.clear().await;
        self.hooks.cleared(&loaded);
    }

    async fn infer(&self, id: &ModelId, inference: Inference<'_>) -> Result<(), CoreError> {
        if !self.inner.contains(id) {
            // Loaded through `add`, so that a load the inference would start is reported too.
            self.add(id).await?;
        }
        let label = inference.label;
        async {
            self.hooks.inference_started(id, label);
            let started = Instant::now();
            let result = self.inner.infer(id, inference).await;
            self.hooks.inferred(id, label, result.as_ref().map(|_| ()), started.elapsed().as_secs_f64());
            result
        }
        .instrument(self.hooks.inference_span(id, label))
        .await
    }

    fn inventory(&self) -> &dyn Inventory {
        self.inner.inventory()
    }

    fn set_pinned(&self, id: &ModelId, pinned: bool) {
        self.inner.set_pinned(id, pinned)
    }
}
