//! The innermost manager: holds loaded models and guarantees one load per model at a time.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::future::{BoxFuture, FutureExt, Shared};

use crate::{
    CoreError, Inference, Inventory, Model, ModelDescription, ModelId, ModelLoader, ModelManager, RemovalReason,
};

type LoadResult = Result<Arc<dyn Model>, CoreError>;
type LoadFuture = Shared<BoxFuture<'static, LoadResult>>;

enum Slot {
    /// `generation` tells a finished load whether its slot is still the one it started in
    /// (a remove or clear during the load must not be undone by the load finishing).
    Loading {
        generation: u64,
        future: LoadFuture,
    },
    Ready(Arc<dyn Model>),
}

type Slots = Arc<Mutex<HashMap<ModelId, Slot>>>;

/// Loads run on their own task, so a client that disconnects does not cancel a load that other
/// requests are waiting for; every waiter gets the same result, and a failure leaves no entry.
pub struct BaseManager {
    loader: Arc<dyn ModelLoader>,
    slots: Slots,
    next_generation: AtomicU64,
    /// Models whose artifacts are being fetched and checked (`prepare`), with the callers doing
    /// so: they are loading too, as far as anyone asking is concerned.
    preparing: Mutex<HashMap<ModelId, usize>>,
}

fn lock(slots: &Mutex<HashMap<ModelId, Slot>>) -> MutexGuard<'_, HashMap<ModelId, Slot>> {
    // A panic while holding this lock cannot leave the map half-updated (single inserts/removes).
    slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl BaseManager {
    pub fn new(loader: Arc<dyn ModelLoader>) -> Self {
        BaseManager {
            loader,
            slots: Arc::new(Mutex::new(HashMap::new())),
            next_generation: AtomicU64::new(0),
            preparing: Mutex::new(HashMap::new()),
        }
    }

    async fn get_or_load(&self, id: &ModelId) -> LoadResult {
        let future = {
            let mut slots = lock(&self.slots);
            match slots.get(id) {
                Some(Slot::Ready(model)) => return Ok(model.clone()),
                Some(Slot::Loading { future, .. }) => future.clone(),
                None => {
                    let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                    let future = self.start_load(id.clone(), generation);
                    slots.insert(id.clone(), Slot::Loading { generation, future: future.clone() });
                    future
                }
            }
        };
        future.await
    }

    fn start_load(&self, id: ModelId, generation: u64) -> LoadFuture {
        let loader = self.loader.clone();
        let slots = self.slots.clone();
        let task = tokio::spawn(async move {
            let result = match AssertUnwindSafe(loader.load(&id)).catch_unwind().await {
                Ok(result) => result,
                Err(_) => Err(CoreError::Internal(format!("loading model {id} panicked"))),
            };
            settle(&slots, &id, generation, &result);
            result
        });
        async move { task.await.unwrap_or_else(|e| Err(CoreError::Internal(format!("model load task failed: {e}")))) }
            .boxed()
            .shared()
    }
}

/// A caller's preparation of a model, counted until it ends (also when the caller goes away).
struct Preparing<'a> {
    preparing: &'a Mutex<HashMap<ModelId, usize>>,
    id: ModelId,
}

impl<'a> Preparing<'a> {
    fn start(preparing: &'a Mutex<HashMap<ModelId, usize>>, id: &ModelId) -> Preparing<'a> {
        *preparing.lock().unwrap_or_else(|p| p.into_inner()).entry(id.clone()).or_default() += 1;
        Preparing { preparing, id: id.clone() }
    }
}

impl Drop for Preparing<'_> {
    fn drop(&mut self) {
        let mut preparing = self.preparing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = preparing.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                preparing.remove(&self.id);
            }
        }
    }
}

/// Turns the loading slot into a ready one, or drops it on failure, if it is still ours.
fn settle(slots: &Mutex<HashMap<ModelId, Slot>>, id: &ModelId, generation: u64, result: &LoadResult) {
    let mut slots = lock(slots);
    let ours = matches!(slots.get(id), Some(Slot::Loading { generation: g, .. }) if *g == generation);
    if !ours {
        return;
    }
    match result {
        Ok(model) => {
            slots.insert(id.clone(), Slot::Ready(model.clone()));
        }
        Err(_) => {
            slots.remove(id);
        }
    }
}

#[async_trait]
impl ModelManager for BaseManager {
    async fn prepare(&self, id: &ModelId) -> Result<(), CoreError> {
        if lock(&self.slots).contains_key(id) {
            return Ok(()); // loaded, or its load (which prepares it) is under way
        }
        let _preparing = Preparing::start(&self.preparing, id);
        self.loader.prepare(id).await
    }

    async fn add(&self, id: &ModelId) -> Result<ModelDescription, CoreError> {
        Ok(self.get_or_load(id).await?.description().clone())
    }

    async fn remove(&self, id: &ModelId, _reason: RemovalReason) -> bool {
        lock(&self.slots).remove(id).is_some()
    }

    async fn clear(&self) {
        lock(&self.slots).clear();
    }

    async fn infer(&self, id: &ModelId, inference: Inference<'_>) -> Result<(), CoreError> {
        let model = self.get_or_load(id).await?;
        inference.run(model).await
    }

    fn inventory(&self) -> &dyn Inventory {
        self
    }
}

impl Inventory for BaseManager {
    fn describe(&self) -> Vec<ModelDescription> {
        let slots = lock(&self.slots);
        let mut out: Vec<(ModelId, ModelDescription)> = slots
            .iter()
            .filter_map(|(id, slot)| match slot {
                Slot::Ready(model) => Some((id.clone(), model.description().clone())),
                Slot::Loading { .. } => None,
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, d)| d).collect()
    }

    fn contains(&self, id: &ModelId) -> bool {
        matches!(lock(&self.slots).get(id), Some(Slot::Ready(_)))
    }

    fn loading(&self) -> Vec<ModelId> {
        let mut ids: Vec<ModelId> = lock(&self.slots)
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Loading { .. }))
            .map(|(id, _)| id.clone())
            .collect();
        ids.extend(self.preparing.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned());
        ids.sort();
        ids.dedup();
        ids
    }

    fn estimate_bytes(&self, id: &ModelId) -> Option<u64> {
        self.loader.estimate_bytes(id)
    }
}
