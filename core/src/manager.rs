//! The `ModelManager` trait: one interface that the base manager and every decorator implement, so
//! that caching, logging and metrics stack in any order at start-up.

use async_trait::async_trait;

use crate::{CoreError, InferRequest, InferResponse, ModelDescription, ModelId};

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
    /// Loads the model if it is absent; a no-op (apart from bookkeeping) when it is loaded.
    async fn add(&self, id: &ModelId) -> Result<ModelDescription, CoreError>;
    /// Unloads the model; returns whether it was loaded (or loading).
    async fn remove(&self, id: &ModelId, reason: RemovalReason) -> bool;
    /// Unloads every model.
    async fn clear(&self);
    /// Runs one inference, loading the model first if it is absent.
    async fn infer(&self, id: &ModelId, request: InferRequest) -> Result<InferResponse, CoreError>;
    /// The loaded models, sorted by id.
    fn describe(&self) -> Vec<ModelDescription>;
    fn contains(&self, id: &ModelId) -> bool;
    /// Models whose load is in progress, sorted.
    fn loading(&self) -> Vec<ModelId>;
    /// Bytes a load of `id` is expected to take, before it is loaded (an estimate from its files);
    /// `None` when nothing is known yet (not downloaded).
    fn estimate_bytes(&self, id: &ModelId) -> Option<u64>;
}
