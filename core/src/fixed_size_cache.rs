//! `WithFixedSizeCache`: an LRU over loaded models, capped in count and evicting under memory pressure.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use lru::LruCache;

use crate::{
    CoreError, EvictionCause, InferRequest, InferResponse, MemoryProbe, ModelDescription, ModelId, ModelManager,
    RemovalReason,
};

pub struct CacheConfig {
    /// At most this many models loaded (or loading) at once; pinned models count too.
    pub max_active_models: usize,
    /// Evict while the probe's free fraction is below this; `0` turns memory pressure off.
    pub memory_free_threshold: f64,
    /// Never evicted.
    pub pinned: HashSet<ModelId>,
}

struct CacheState {
    /// Loaded models, most recently used first; the value is unused.
    lru: LruCache<ModelId, ()>,
    /// Loads in flight, with the number of callers waiting on each: they hold a slot against the cap.
    loading: HashMap<ModelId, usize>,
}

pub struct WithFixedSizeCache<M> {
    inner: M,
    config: CacheConfig,
    probe: Arc<dyn MemoryProbe>,
    state: Mutex<CacheState>,
}

impl<M: ModelManager> WithFixedSizeCache<M> {
    pub fn new(inner: M, config: CacheConfig, probe: Arc<dyn MemoryProbe>) -> Self {
        let state = CacheState { lru: LruCache::unbounded(), loading: HashMap::new() };
        WithFixedSizeCache { inner, config, probe, state: Mutex::new(state) }
    }

    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// Model ids from least to most recently used.
    pub fn lru_order(&self) -> Vec<ModelId> {
        self.lock().lru.iter().rev().map(|(k, _)| k.clone()).collect()
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn under_pressure(&self) -> bool {
        let threshold = self.config.memory_free_threshold;
        threshold > 0.0 && self.probe.free_fraction().is_some_and(|free| free < threshold)
    }

    /// Marks `id` most-recently-used if loaded (`true`), else registers the caller as waiting on its load.
    fn touch_or_reserve(&self, id: &ModelId) -> bool {
        let mut state = self.lock();
        if state.lru.get(id).is_some() {
            return true;
        }
        *state.loading.entry(id.clone()).or_default() += 1;
        false
    }

    /// Picks the next least-recently-used, unpinned model to evict before `id` loads, if any must go.
    fn next_victim(&self, id: &ModelId) -> Option<(ModelId, EvictionCause)> {
        let mut state = self.lock();
        let others_loading = state.loading.keys().filter(|k| *k != id).count();
        let lru = &mut state.lru;
        let cause = if lru.len() + others_loading >= self.config.max_active_models {
            EvictionCause::Capacity
        } else if self.under_pressure() {
            EvictionCause::MemoryPressure
        } else {
            return None;
        };
        let victim = lru.iter().rev().map(|(k, _)| k).find(|k| !self.config.pinned.contains(*k)).cloned();
        match victim {
            Some(victim) => {
                lru.pop(&victim);
                Some((victim, cause))
            }
            None => {
                tracing::warn!(model_id = %id, cause = cause.as_str(), "no evictable model left (all pinned); loading anyway");
                None
            }
        }
    }

    fn finish_load(&self, id: &ModelId, loaded: bool) {
        let mut state = self.lock();
        if let Some(waiting) = state.loading.get_mut(id) {
            *waiting -= 1;
            if *waiting == 0 {
                state.loading.remove(id);
            }
        }
        if loaded && self.inner.contains(id) {
            state.lru.put(id.clone(), ());
        }
    }

    async fn ensure_loaded(&self, id: &ModelId) -> Result<ModelDescription, CoreError> {
        if self.touch_or_reserve(id) {
            return self.inner.add(id).await;
        }
        // Evicting one model at a time lets the memory probe see what each eviction freed.
        while let Some((victim, cause)) = self.next_victim(id) {
            self.inner.remove(&victim, RemovalReason::Evicted(cause)).await;
        }
        let result = self.inner.add(id).await;
        self.finish_load(id, result.is_ok());
        result
    }
}

#[async_trait]
impl<M: ModelManager> ModelManager for WithFixedSizeCache<M> {
    async fn add(&self, id: &ModelId) -> Result<ModelDescription, CoreError> {
        self.ensure_loaded(id).await
    }

    async fn remove(&self, id: &ModelId, reason: RemovalReason) -> bool {
        self.lock().lru.pop(id);
        self.inner.remove(id, reason).await
    }

    async fn clear(&self) {
        self.lock().lru.clear();
        self.inner.clear().await;
    }

    async fn infer(&self, id: &ModelId, request: InferRequest) -> Result<InferResponse, CoreError> {
        self.ensure_loaded(id).await?;
        let result = self.inner.infer(id, request).await;
        // If another request evicted the model between the load and this call, the inner manager
        // loaded it again: track it so the cap still sees it.
        if self.inner.contains(id) {
            let mut state = self.lock();
            if !state.lru.contains(id) {
                state.lru.put(id.clone(), ());
            }
        }
        result
    }

    fn describe(&self) -> Vec<ModelDescription> {
        self.inner.describe()
    }

    fn contains(&self, id: &ModelId) -> bool {
        self.inner.contains(id)
    }
}
