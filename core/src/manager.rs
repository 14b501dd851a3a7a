//! The `ModelManager` trait: one interface that the base manager and every decorator implement, so
//! that caching, logging and metrics stack in any order at start-up.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::{BoxFuture, FutureExt};

use crate::{CoreError, Model, ModelDescription, ModelId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionCause {
    Capacity,
    MemoryPressure,
    /// `MAX_MODEL_MEMORY`: the new model's expected size did not fit beside the loaded ones.
    MemoryBudget,
}

impl EvictionCause {
    pub fn as_str(self) -> &'static str {
        match self {
            EvictionCause::Capacity => "capacity",
            EvictionCause::MemoryPressure => "memory_pressure",
            EvictionCause::MemoryBudget => "memory_budget",
        }
    }
}

/// Why a model leaves memory; decorators report evictions differently from requested removals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    Requested,
    Evicted(EvictionCause),
}

#[async_trait]
pub trait ModelManager: Send + Sync {
    /// Fetches and checks what loading `id` needs without building it (see
    /// [`crate::ModelLoader::prepare`]); nothing when it is loaded.
    async fn prepare(&self, id: &ModelId) -> Result<(), CoreError>;
    /// Loads the model if it is absent; a no-op (apart from bookkeeping) when it is loaded.
    async fn add(&self, id: &ModelId) -> Result<ModelDescription, CoreError>;
    /// Unloads the model; returns whether it was loaded (or loading).
    async fn remove(&self, id: &ModelId, reason: RemovalReason) -> bool;
    /// Unloads every model.
    async fn clear(&self);
    /// Runs one use of the model, loading it first if it is absent.
    async fn infer(&self, id: &ModelId, inference: Inference<'_>) -> Result<(), CoreError>;
    /// What is loaded and loading: the innermost manager's, which every decorator hands on.
    fn inventory(&self) -> &dyn Inventory;

    /// Keeps `id` from eviction until it is unpinned, as `PINNED_MODELS` keeps its models (the
    /// repository extension's explicit loads). Unpinning never touches `PINNED_MODELS`' own pins;
    /// a manager that never evicts has nothing to keep.
    fn set_pinned(&self, _id: &ModelId, _pinned: bool) {}

    /// The loaded models, sorted by id.
    fn describe(&self) -> Vec<ModelDescription> {
        self.inventory().describe()
    }

    fn contains(&self, id: &ModelId) -> bool {
        self.inventory().contains(id)
    }

    /// Models whose load is in progress, sorted.
    fn loading(&self) -> Vec<ModelId> {
        self.inventory().loading()
    }

    /// Bytes a load of `id` is expected to take, before it is loaded (an estimate from its files);
    /// `None` when nothing is known yet (not downloaded).
    fn estimate_bytes(&self, id: &ModelId) -> Option<u64> {
        self.inventory().estimate_bytes(id)
    }
}

/// What the innermost manager knows of its models (see [`ModelManager`]'s methods of the same names).
pub trait Inventory: Send + Sync {
    fn describe(&self) -> Vec<ModelDescription>;
    fn contains(&self, id: &ModelId) -> bool;
    fn loading(&self) -> Vec<ModelId>;
    fn estimate_bytes(&self, id: &ModelId) -> Option<u64>;
}

/// One use of a loaded model. The manager and its decorators see only its label (the task asked
/// for, or `tensor`), time it and count its outcome; what it asks of the model, and the type of
/// what comes back, stay with the caller (see [`infer`]).
pub struct Inference<'a> {
    pub label: &'static str,
    run: UseOfModel<'a>,
}

/// What an [`Inference`] does with the loaded model.
type UseOfModel<'a> = Box<dyn FnOnce(Arc<dyn Model>) -> BoxFuture<'a, Result<(), CoreError>> + Send + 'a>;

impl<'a> Inference<'a> {
    pub fn new(
        label: &'static str,
        run: impl FnOnce(Arc<dyn Model>) -> BoxFuture<'a, Result<(), CoreError>> + Send + 'a,
    ) -> Self {
        Inference { label, run: Box::new(run) }
    }

    /// Runs it on the loaded model.
    pub async fn run(self, model: Arc<dyn Model>) -> Result<(), CoreError> {
        (self.run)(model).await
    }
}

/// Runs `use_model` on the model `id` through `manager` (loading it if needed, with the
/// decorators' metrics and logs under `label`) and returns what it gave.
pub async fn infer<T, F, Fut>(
    manager: &dyn ModelManager,
    id: &ModelId,
    label: &'static str,
    use_model: F,
) -> Result<T, CoreError>
where
    T: Send,
    F: FnOnce(Arc<dyn Model>) -> Fut + Send,
    Fut: Future<Output = Result<T, CoreError>> + Send,
{
    let mut answer = None;
    let slot = &mut answer;
    let inference = Inference::new(label, move |model: Arc<dyn Model>| {
        async move {
            *slot = Some(use_model(model).await?);
            Ok(())
        }
        .boxed()
    });
    manager.infer(id, inference).await?;
    answer.ok_or_else(|| CoreError::Internal(format!("the manager answered {id} without running the inference")))
}
