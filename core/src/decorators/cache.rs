//! `WithFixedSizeCache`: an LRU over loaded models, capped in count and evicting under memory pressure.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use lru::LruCache;
use tokio::sync::Notify;

use crate::{
    CoreError, EvictionCause, Inference, Inventory, MemoryProbe, ModelDescription, ModelId, ModelManager, RemovalReason,
};

pub struct CacheConfig {
    /// At most this many models loaded (or loading) at once; pinned models count too.
    pub max_active_models: usize,
    /// Evict while the probe's free fraction is below this; `0` turns memory pressure off.
    pub memory_free_threshold: f64,
    /// Never evicted.
    pub pinned: HashSet<ModelId>,
    /// `MAX_MODEL_MEMORY`: bytes of host memory the loaded models may hold (their measured
    /// `resident_bytes`); `None` = no budget.
    pub max_model_memory: Option<u64>,
}

struct CacheState {
    /// Loaded models, most recently used first; the value is unused.
    lru: LruCache<ModelId, ()>,
    /// Admitted loads in flight, with the number of callers sharing each: they hold a slot against the cap.
    loading: HashMap<ModelId, usize>,
    /// What each model measured when it was last loaded: its expected size next time.
    measured: HashMap<ModelId, u64>,
    /// Pinned while running, beside `CacheConfig::pinned` (see [`ModelManager::set_pinned`]).
    pins: HashSet<ModelId>,
}

impl CacheState {
    fn is_pinned(&self, config: &CacheConfig, id: &ModelId) -> bool {
        config.pinned.contains(id) || self.pins.contains(id)
    }
}

pub struct WithFixedSizeCache<M> {
    inner: M,
    config: CacheConfig,
    probe: Arc<dyn MemoryProbe>,
    state: Mutex<CacheState>,
    /// Wakes callers waiting for a slot held by a load in flight.
    load_finished: Notify,
}

impl<M: ModelManager> WithFixedSizeCache<M> {
    pub fn new(inner: M, config: CacheConfig, probe: Arc<dyn MemoryProbe>) -> Self {
        let state = CacheState {
            lru: LruCache::unbounded(),
            loading: HashMap::new(),
            measured: HashMap::new(),
            pins: HashSet::new(),
        };
        WithFixedSizeCache { inner, config, probe, state: Mutex::new(state), load_finished: Notify::new() }
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

    /// The bytes a load of `id` is expected to take: its last measured size, else the estimate
    /// from its files, else nothing known (0).
    fn expected_bytes(&self, state: &CacheState, id: &ModelId) -> u64 {
        state.measured.get(id).copied().or_else(|| self.inner.estimate_bytes(id)).unwrap_or(0)
    }

    /// Whether loading `id` now would exceed `MAX_MODEL_MEMORY`: `Some((needed, available))`.
    fn over_budget(&self, state: &CacheState, id: &ModelId) -> Option<(u64, u64)> {
        let budget = self.config.max_model_memory?;
        let loaded: u64 = self.inner.describe().iter().filter_map(|d| d.resident_bytes).sum();
        let in_flight: u64 = state.loading.keys().map(|l| self.expected_bytes(state, l)).sum();
        let needed = self.expected_bytes(state, id);
        let available = budget.saturating_sub(loaded + in_flight);
        (needed > available).then_some((needed, available))
    }

    /// Decides the next step for a caller that wants `id` loaded (and prepared), under the lock.
    /// Over the count cap, the load goes ahead while enough loaded models can be evicted once it
    /// has succeeded (a failed load then costs none); over a memory bound, room is made first.
    fn next_step(&self, id: &ModelId) -> Step {
        let mut state = self.lock();
        if state.lru.get(id).is_some() {
            return Step::Loaded; // a hit: now most recently used
        }
        if let Some(waiting) = state.loading.get_mut(id) {
            *waiting += 1; // someone is loading it already: share that load
            return Step::Load;
        }
        let over_budget = self.over_budget(&state, id);
        let memory = if over_budget.is_some() {
            Some(EvictionCause::MemoryBudget)
        } else if self.under_pressure() {
            Some(EvictionCause::MemoryPressure)
        } else {
            None
        };
        let Some(cause) = memory else {
            let occupied = state.lru.len() + state.loading.len();
            let evictable = state.lru.iter().filter(|(k, _)| !state.is_pinned(&self.config, k)).count();
            if occupied < self.config.max_active_models || evictable > occupied - self.config.max_active_models {
                state.loading.insert(id.clone(), 1);
                return Step::Load;
            }
            if !state.loading.is_empty() {
                return Step::WaitForLoads; // the slots are held by loads in flight: one will finish
            }
            tracing::warn!(model_id = %id, cause = EvictionCause::Capacity.as_str(), "no evictable model left (all pinned); loading anyway");
            state.loading.insert(id.clone(), 1);
            return Step::Load;
        };
        let victim = state.lru.iter().rev().map(|(k, _)| k).find(|k| !state.is_pinned(&self.config, k)).cloned();
        if let Some(victim) = victim {
            state.lru.pop(&victim);
            return Step::Evict(victim, cause);
        }
        if cause == EvictionCause::MemoryBudget && !state.loading.is_empty() {
            return Step::WaitForLoads; // the bytes are held by loads in flight: one will finish
        }
        if let (EvictionCause::MemoryBudget, Some((needed, available))) = (cause, over_budget) {
            return Step::Refuse(CoreError::InsufficientMemory {
                model_id: id.to_string(),
                needed_bytes: needed,
                available_bytes: available,
                budget_bytes: self.config.max_model_memory.unwrap_or(0),
            });
        }
        tracing::warn!(model_id = %id, cause = cause.as_str(), "no evictable model left (all pinned); loading anyway");
        state.loading.insert(id.clone(), 1);
        Step::Load
    }

    /// The least recently used evictable model while more than the cap are loaded or loading
    /// (never `loaded`, which has just been loaded), taken out of the LRU.
    fn over_capacity(&self, loaded: &ModelId) -> Option<ModelId> {
        let mut state = self.lock();
        if state.lru.len() + state.loading.len() <= self.config.max_active_models {
            return None;
        }
        let victim = state
            .lru
            .iter()
            .rev()
            .map(|(k, _)| k)
            .find(|k| *k != loaded && !state.is_pinned(&self.config, k))
            .cloned()?;
        state.lru.pop(&victim);
        Some(victim)
    }

    /// `loaded`: the load succeeded, with the bytes the model measured, if it did.
    fn finish_load(&self, id: &ModelId, loaded: Option<Option<u64>>) {
        {
            let mut state = self.lock();
            if let Some(waiting) = state.loading.get_mut(id) {
                *waiting -= 1;
                if *waiting == 0 {
                    state.loading.remove(id);
                }
            }
            if let (Some(resident), true) = (loaded, self.inner.contains(id)) {
                state.lru.put(id.clone(), ());
                if let Some(bytes) = resident {
                    state.measured.insert(id.clone(), bytes);
                }
            }
        }
        self.load_finished.notify_waiters();
    }

    /// Loads `id` unless it is loaded (`None` then, and nothing was asked of the inner manager).
    /// Its artifacts are fetched and checked before anything is evicted, and models over the
    /// count cap are evicted only once it has loaded: an unknown id, a failed download, a broken
    /// folder or a failed build leaves the loaded models as they were.
    async fn ensure_loaded(&self, id: &ModelId) -> Result<Option<ModelDescription>, CoreError> {
        if self.lock().lru.get(id).is_some() {
            return Ok(None);
        }
        self.inner.prepare(id).await?;
        // Evicted to make room in memory for this load: given back if the load fails.
        let mut made_room = Vec::new();
        loop {
            // Registered before the state is read, so a load finishing in between is not missed.
            let finished = self.load_finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            match self.next_step(id) {
                Step::Loaded => return Ok(None),
                // One eviction at a time lets the memory probe see what each eviction freed.
                Step::Evict(victim, cause) => {
                    self.inner.remove(&victim, RemovalReason::Evicted(cause)).await;
                    made_room.push(victim);
                }
                Step::WaitForLoads => finished.await,
                Step::Refuse(error) => return Err(error),
                Step::Load => break,
            }
        }
        // Released on drop, so a caller cancelled mid-load (client gone) does not hold its slot forever.
        let mut admission = Admission { cache: self, id, loaded: None };
        let result = self.inner.add(id).await;
        admission.loaded = result.as_ref().ok().map(|d| d.resident_bytes);
        drop(admission);
        match &result {
            Ok(_) => {
                while let Some(victim) = self.over_capacity(id) {
                    self.inner.remove(&victim, RemovalReason::Evicted(EvictionCause::Capacity)).await;
                }
            }
            Err(_) => self.restore(made_room).await,
        }
        result.map(Some)
    }

    /// Loads again the models evicted for a load that then failed (its files were fine, its build
    /// or test inference was not), so the loaded set is what it was before; the memory they need is
    /// what the failed model gave back.
    async fn restore(&self, evicted: Vec<ModelId>) {
        for victim in evicted.into_iter().rev() {
            match self.inner.add(&victim).await {
                Ok(description) => {
                    let mut state = self.lock();
                    state.lru.put(victim.clone(), ());
                    if let Some(bytes) = description.resident_bytes {
                        state.measured.insert(victim, bytes);
                    }
                }
                Err(e) => {
                    tracing::warn!(model_id = %victim, error = %e, "cannot load again a model evicted for a load that failed")
                }
            }
        }
    }
}

struct Admission<'a, M: ModelManager> {
    cache: &'a WithFixedSizeCache<M>,
    id: &'a ModelId,
    /// Set when the load succeeded: the bytes the model measured.
    loaded: Option<Option<u64>>,
}

impl<M: ModelManager> Drop for Admission<'_, M> {
    fn drop(&mut self) {
        self.cache.finish_load(self.id, self.loaded);
    }
}

enum Step {
    Loaded,
    Evict(ModelId, EvictionCause),
    WaitForLoads,
    /// Cannot fit even with every evictable model gone.
    Refuse(CoreError),
    Load,
}

#[async_trait]
impl<M: ModelManager> ModelManager for WithFixedSizeCache<M> {
    async fn prepare(&self, id: &ModelId) -> Result<(), CoreError> {
        self.inner.prepare(id).await
    }

    async fn add(&self, id: &ModelId) -> Result<ModelDescription, CoreError> {
        match self.ensure_loaded(id).await? {
            Some(description) => Ok(description),
            None => self.inner.add(id).await,
        }
    }

    async fn remove(&self, id: &ModelId, reason: RemovalReason) -> bool {
        self.lock().lru.pop(id);
        self.inner.remove(id, reason).await
    }

    async fn clear(&self) {
        self.lock().lru.clear();
        self.inner.clear().await;
    }

    async fn infer(&self, id: &ModelId, inference: Inference<'_>) -> Result<(), CoreError> {
        self.ensure_loaded(id).await?;
        let result = self.inner.infer(id, inference).await;
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

    fn inventory(&self) -> &dyn Inventory {
        self.inner.inventory()
    }

    fn set_pinned(&self, id: &ModelId, pinned: bool) {
        let mut state = self.lock();
        if pinned {
            state.pins.insert(id.clone());
        } else {
            state.pins.remove(id);
        }
    }
}
