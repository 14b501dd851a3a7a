//! Manager behaviour with a stand-in model: LRU order, cap, memory pressure, pinning,
//! single-flight loading and failure rollback, through the same decorator stack the server uses.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use sightline_core::{
    BaseManager, CacheConfig, CoreError, Detect, DetectOptions, DetectionOutput, DetectionParams, ImageRequest,
    Inference, ManagerMetrics, MemoryProbe, Model, ModelDescription, ModelId, ModelLoader, ModelManager, RemovalReason,
    Task, WithFixedSizeCache, WithLogger, WithMetrics,
};

struct StandIn {
    description: ModelDescription,
    live: Arc<AtomicUsize>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Model for StandIn {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn detector(&self) -> Option<&dyn Detect> {
        Some(self)
    }
}

#[async_trait]
impl Detect for StandIn {
    async fn detect(&self, _request: ImageRequest<DetectOptions>) -> Result<DetectionOutput, CoreError> {
        Ok(DetectionOutput { image_width: 1, image_height: 1, predictions: vec![], visualization: None })
    }
}

/// Counts loads per id; loads of ids in `failing` fail after `delay`; ids in `unknown` fail to
/// prepare (no such model at any source).
#[derive(Default)]
struct StandInLoader {
    loads: Mutex<HashMap<String, usize>>,
    failing: Mutex<HashSet<String>>,
    unknown: Mutex<HashSet<String>>,
    delay: Duration,
    /// Models alive in memory (a drop decrements): what the fake memory probe reads.
    live: Arc<AtomicUsize>,
    /// `resident_bytes` each model measures when loaded.
    sizes: Mutex<HashMap<String, u64>>,
    /// What `estimate_bytes` answers before a load (from "files").
    estimates: Mutex<HashMap<String, u64>>,
}

impl StandInLoader {
    fn with_delay(delay: Duration) -> Self {
        StandInLoader { delay, ..Default::default() }
    }

    fn loads_of(&self, id: &str) -> usize {
        self.loads.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

#[async_trait]
impl ModelLoader for StandInLoader {
    async fn prepare(&self, id: &ModelId) -> Result<(), CoreError> {
        match self.unknown.lock().unwrap().contains(&id.to_string()) {
            true => Err(CoreError::ModelNotFound(id.to_string())),
            false => Ok(()),
        }
    }

    async fn load(&self, id: &ModelId) -> Result<Arc<dyn Model>, CoreError> {
        *self.loads.lock().unwrap().entry(id.to_string()).or_default() += 1;
        tokio::time::sleep(self.delay).await;
        if self.failing.lock().unwrap().contains(&id.to_string()) {
            return Err(CoreError::BrokenModel {
                file: format!("{id}/weights.onnx").into(),
                reason: "stand-in".into(),
            });
        }
        self.live.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(StandIn {
            description: ModelDescription {
                model_id: id.clone(),
                task: Task::ObjectDetection,
                architecture: "stand-in".into(),
                batch_size: Some(1),
                input_width: Some(8),
                input_height: Some(8),
                class_names: vec!["a".into()],
                resident_bytes: self.sizes.lock().unwrap().get(&id.to_string()).copied(),
                execution_provider: "CPUExecutionProvider".into(),
                device: "cpu".into(),
                vram_bytes: None,
                tensors: None,
                artifact_source: "cache".into(),
            },
            live: self.live.clone(),
        }))
    }

    fn estimate_bytes(&self, id: &ModelId) -> Option<u64> {
        self.estimates.lock().unwrap().get(&id.to_string()).copied()
    }
}

/// Free memory falls by `per_model` for each live model.
struct FakeProbe {
    live: Arc<AtomicUsize>,
    per_model: f64,
}

impl MemoryProbe for FakeProbe {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn free_fraction(&self) -> Option<f64> {
        Some((1.0 - self.per_model * self.live.load(Ordering::SeqCst) as f64).max(0.0))
    }
}

type Stack = WithFixedSizeCache<WithMetrics<WithLogger<BaseManager>>>;

fn stack(
    loader: Arc<StandInLoader>,
    cap: usize,
    threshold: f64,
    pinned: &[&str],
    per_model: f64,
) -> (Stack, prometheus::Registry) {
    stack_with_budget(loader, cap, threshold, pinned, per_model, None)
}

fn stack_with_budget(
    loader: Arc<StandInLoader>,
    cap: usize,
    threshold: f64,
    pinned: &[&str],
    per_model: f64,
    budget: Option<u64>,
) -> (Stack, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    let metrics = ManagerMetrics::register(&registry).unwrap();
    let probe = Arc::new(FakeProbe { live: loader.live.clone(), per_model });
    let base = BaseManager::new(loader);
    let config = CacheConfig {
        max_active_models: cap,
        memory_free_threshold: threshold,
        pinned: pinned.iter().map(|p| id(p)).collect(),
        max_model_memory: budget,
    };
    (WithFixedSizeCache::new(WithMetrics::new(WithLogger::new(base), metrics), config, probe), registry)
}

fn id(s: &str) -> ModelId {
    ModelId::parse(s).unwrap()
}

/// An object detection of an empty image, as the service asks it.
fn request() -> Inference<'static> {
    let request = ImageRequest {
        image: vec![],
        preprocessing: Default::default(),
        visualize: None,
        options: DetectOptions::boxes(DetectionParams::default()),
        ticket: None,
    };
    Inference::new("object-detection", move |model| {
        async move {
            let detector = model.detector().ok_or_else(|| CoreError::Internal("no detector".into()))?;
            detector.detect(request).await.map(|_| ())
        }
        .boxed()
    })
}

fn loaded(m: &impl ModelManager) -> Vec<String> {
    m.describe().into_iter().map(|d| d.model_id.to_string()).collect()
}

fn ids(v: &[ModelId]) -> Vec<String> {
    v.iter().map(|i| i.to_string()).collect()
}

fn metric_value(registry: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    for family in registry.gather() {
        if family.name() != name {
            continue;
        }
        for m in family.get_metric() {
            let matches = labels.iter().all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v));
            if matches {
                return match family.get_field_type() {
                    prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
                    _ => m.get_gauge().get_value(),
                };
            }
        }
    }
    0.0
}

#[tokio::test]
async fn lru_order_follows_use_and_the_least_recent_is_evicted() {
    let loader = Arc::new(StandInLoader::default());
    let (m, registry) = stack(loader.clone(), 3, 0.0, &[], 0.0);
    for name in ["a/1", "b/1", "c/1"] {
        m.add(&id(name)).await.unwrap();
    }
    assert_eq!(ids(&m.lru_order()), ["a/1", "b/1", "c/1"]);
    m.infer(&id("a/1"), request()).await.unwrap(); // a becomes most recent
    m.add(&id("b/1")).await.unwrap(); // then b
    assert_eq!(ids(&m.lru_order()), ["c/1", "a/1", "b/1"]);
    m.add(&id("d/1")).await.unwrap();
    assert_eq!(loaded(&m), ["a/1", "b/1", "d/1"]);
    assert_eq!(ids(&m.lru_order()), ["a/1", "b/1", "d/1"]);
    assert_eq!(loader.loads_of("a/1"), 1, "hits must not reload");
    assert_eq!(
        metric_value(&registry, "sightline_model_evictions_total", &[("model_id", "c/1"), ("cause", "capacity")]),
        1.0
    );
    assert_eq!(metric_value(&registry, "sightline_model_loaded", &[("model_id", "d/1")]), 1.0);
    assert_eq!(metric_value(&registry, "sightline_inference_requests_total", &[("model_id", "a/1")]), 1.0);
}

#[tokio::test]
async fn an_unknown_id_or_a_failed_load_costs_no_loaded_model() {
    let loader = Arc::new(StandInLoader::default());
    loader.unknown.lock().unwrap().insert("nope/8".into());
    loader.failing.lock().unwrap().insert("bad/1".into());
    let (m, registry) = stack(loader.clone(), 2, 0.0, &[], 0.0);
    for name in ["a/1", "b/1"] {
        m.add(&id(name)).await.unwrap();
    }
    assert!(matches!(m.add(&id("nope/8")).await, Err(CoreError::ModelNotFound(_))));
    assert!(matches!(m.infer(&id("nope/8"), request()).await, Err(CoreError::ModelNotFound(_))));
    assert_eq!(loader.loads_of("nope/8"), 0, "an id that does not prepare is never built");
    assert!(matches!(m.add(&id("bad/1")).await, Err(CoreError::BrokenModel { .. })));
    assert_eq!(loaded(&m), ["a/1", "b/1"], "nothing was evicted for loads that failed");
    assert_eq!(metric_value(&registry, "sightline_model_evictions_total", &[("cause", "capacity")]), 0.0);
    assert_eq!(
        metric_value(&registry, "sightline_model_loads_total", &[("model_id", "other"), ("outcome", "error")]),
        2.0,
        "a failed preparation is reported as the load's failure, unknown ids under one label"
    );
    m.add(&id("c/1")).await.unwrap();
    assert_eq!(loaded(&m), ["b/1", "c/1"], "a load that succeeds evicts the least recently used");
    assert_eq!(loader.loads_of("a/1"), 1);
}

#[tokio::test]
async fn never_more_models_than_the_cap() {
    let loader = Arc::new(StandInLoader::default());
    let (m, _) = stack(loader.clone(), 2, 0.0, &[], 0.0);
    for i in 0..10 {
        m.infer(&id(&format!("m/{i}")), request()).await.unwrap();
        assert!(m.describe().len() <= 2);
        assert!(loader.live.load(Ordering::SeqCst) <= 2, "evicted models must be dropped");
    }
    assert_eq!(loaded(&m), ["m/8", "m/9"]);
}

#[tokio::test]
async fn concurrent_loads_of_different_models_respect_the_cap() {
    let loader = Arc::new(StandInLoader::with_delay(Duration::from_millis(30)));
    let (m, _) = stack(loader.clone(), 3, 0.0, &[], 0.0);
    let m = Arc::new(m);
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let m = m.clone();
            tokio::spawn(async move { m.add(&id(&format!("m/{i}"))).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(m.describe().len() <= 3, "{:?}", loaded(&*m));
}

#[tokio::test]
async fn memory_pressure_evicts_least_recently_used_until_enough_is_free() {
    let loader = Arc::new(StandInLoader::default());
    // Each model takes 20 % of memory; keep at least 50 % free; the count cap is far away.
    let (m, registry) = stack(loader.clone(), 100, 0.5, &[], 0.2);
    for name in ["a/1", "b/1", "c/1"] {
        m.add(&id(name)).await.unwrap();
    }
    // 3 live = 40 % free, under the 50 % threshold: the next load evicts a (2 live = 60 % free), then loads.
    m.add(&id("d/1")).await.unwrap();
    assert_eq!(loaded(&m), ["b/1", "c/1", "d/1"]);
    assert_eq!(
        metric_value(
            &registry,
            "sightline_model_evictions_total",
            &[("model_id", "a/1"), ("cause", "memory_pressure")]
        ),
        1.0
    );
    m.add(&id("e/1")).await.unwrap();
    assert_eq!(loaded(&m), ["c/1", "d/1", "e/1"]);
}

#[tokio::test]
async fn pressure_off_when_threshold_is_zero() {
    let loader = Arc::new(StandInLoader::default());
    let (m, _) = stack(loader.clone(), 100, 0.0, &[], 0.5);
    for i in 0..5 {
        m.add(&id(&format!("m/{i}"))).await.unwrap();
    }
    assert_eq!(m.describe().len(), 5);
}

#[tokio::test]
async fn pinned_models_are_never_evicted() {
    let loader = Arc::new(StandInLoader::default());
    let (m, _) = stack(loader.clone(), 2, 0.0, &["p/1"], 0.0);
    m.add(&id("p/1")).await.unwrap();
    for i in 0..5 {
        m.add(&id(&format!("m/{i}"))).await.unwrap();
    }
    assert_eq!(loaded(&m), ["m/4", "p/1"]);
    assert_eq!(loader.loads_of("p/1"), 1);

    // Under memory pressure too.
    let loader = Arc::new(StandInLoader::default());
    let (m, _) = stack(loader.clone(), 100, 0.9, &["p/1"], 0.2);
    m.add(&id("p/1")).await.unwrap();
    m.add(&id("x/1")).await.unwrap();
    m.add(&id("y/1")).await.unwrap();
    assert_eq!(loaded(&m), ["p/1", "y/1"]);
}

#[tokio::test]
async fn models_pinned_while_running_stay_until_unpinned_and_configured_pins_stay_for_good() {
    let loader = Arc::new(StandInLoader::default());
    let (m, _) = stack(loader.clone(), 2, 0.0, &["p/1"], 0.0);
    let manager: &dyn ModelManager = &m;
    manager.set_pinned(&id("r/1"), true);
    manager.add(&id("r/1")).await.unwrap();
    manager.add(&id("p/1")).await.unwrap();
    for i in 0..3 {
        manager.add(&id(&format!("m/{i}"))).await.unwrap();
    }
    assert_eq!(loaded(&m), ["m/2", "p/1", "r/1"], "both pinned models stay; one over the cap is held");
    assert_eq!(loader.loads_of("r/1"), 1);

    // Unpinned, r/1 is the least recently used and goes at the next load; p/1's pin is the config's.
    manager.set_pinned(&id("r/1"), false);
    manager.set_pinned(&id("p/1"), false);
    manager.add(&id("m/3")).await.unwrap();
    assert_eq!(loaded(&m), ["m/3", "p/1"]);
}

#[tokio::test]
async fn single_flight_under_32_concurrent_callers() {
    let loader = Arc::new(StandInLoader::with_delay(Duration::from_millis(100)));
    let (m, registry) = stack(loader.clone(), 8, 0.0, &[], 0.0);
    let m = Arc::new(m);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.infer(&id("shapes/1"), request()).await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(loader.loads_of("shapes/1"), 1);
    assert_eq!(loaded(&*m), ["shapes/1"]);
    assert_eq!(loader.live.load(Ordering::SeqCst), 1);
    assert_eq!(
        metric_value(&registry, "sightline_model_loads_total", &[("model_id", "shapes/1"), ("outcome", "success")]),
        1.0
    );
    assert_eq!(metric_value(&registry, "sightline_inference_requests_total", &[("model_id", "shapes/1")]), 32.0);
}

#[tokio::test]
async fn a_failed_load_reaches_every_waiter_and_leaves_nothing_behind() {
    let loader = Arc::new(StandInLoader::with_delay(Duration::from_millis(100)));
    loader.failing.lock().unwrap().insert("bad/1".into());
    let (m, _) = stack(loader.clone(), 8, 0.0, &[], 0.0);
    let m = Arc::new(m);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.infer(&id("bad/1"), request()).await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(matches!(err, CoreError::BrokenModel { .. }), "{err:?}");
    }
    assert_eq!(loader.loads_of("bad/1"), 1, "one load for all 32 waiters");
    assert!(!m.contains(&id("bad/1")));
    assert!(m.describe().is_empty());
    assert!(m.lru_order().is_empty());
    // Nothing cached: once fixed, the next request loads again and succeeds.
    loader.failing.lock().unwrap().clear();
    m.infer(&id("bad/1"), request()).await.unwrap();
    assert_eq!(loader.loads_of("bad/1"), 2);
}

#[tokio::test]
async fn remove_and_clear() {
    let loader = Arc::new(StandInLoader::default());
    let (m, registry) = stack(loader.clone(), 8, 0.0, &[], 0.0);
    m.add(&id("a/1")).await.unwrap();
    m.add(&id("b/1")).await.unwrap();
    assert!(m.remove(&id("a/1"), RemovalReason::Requested).await);
    assert!(!m.remove(&id("a/1"), RemovalReason::Requested).await, "second remove is a no-op");
    assert_eq!(loaded(&m), ["b/1"]);
    assert_eq!(metric_value(&registry, "sightline_model_loaded", &[("model_id", "a/1")]), 0.0);
    m.clear().await;
    assert!(m.describe().is_empty());
    assert!(m.lru_order().is_empty());
    assert_eq!(loader.live.load(Ordering::SeqCst), 0, "unloaded models are dropped");
}

#[tokio::test]
async fn a_remove_during_a_load_is_not_undone_by_the_load_finishing() {
    let loader = Arc::new(StandInLoader::with_delay(Duration::from_millis(100)));
    let base = Arc::new(BaseManager::new(loader.clone()));
    let b = base.clone();
    let pending = tokio::spawn(async move { b.add(&id("a/1")).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(base.remove(&id("a/1"), RemovalReason::Requested).await);
    pending.await.unwrap().unwrap();
    assert!(!base.contains(&id("a/1")));
}

#[tokio::test]
async fn a_cancelled_load_gives_its_slot_back() {
    let loader = Arc::new(StandInLoader::with_delay(Duration::from_millis(200)));
    let (m, _) = stack(loader.clone(), 1, 0.0, &[], 0.0);
    let m = Arc::new(m);
    let m2 = m.clone();
    let first = tokio::spawn(async move { m2.add(&id("a/1")).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    first.abort(); // the client went away mid-load
    let _ = first.await;
    // With the slot returned, another model can be admitted (and evicts `a/1` once that finishes loading).
    tokio::time::timeout(Duration::from_secs(5), m.add(&id("b/1")))
        .await
        .expect("not stuck waiting for a slot")
        .unwrap();
    assert!(m.contains(&id("b/1")));
}

#[tokio::test]
async fn a_load_in_progress_is_listed_as_loading_through_the_whole_stack() {
    let loader = Arc::new(StandInLoader::with_delay(Duration::from_millis(200)));
    let (m, _) = stack(loader, 8, 0.0, &[], 0.0);
    let m = Arc::new(m);
    let adding = {
        let m = m.clone();
        tokio::spawn(async move { m.add(&id("slow/1")).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ids(&m.loading()), ["slow/1"]);
    assert!(loaded(&*m).is_empty(), "not ready yet");
    adding.await.unwrap().unwrap();
    assert!(m.loading().is_empty());
    assert_eq!(loaded(&*m), ["slow/1"]);
}

impl StandInLoader {
    /// `id` measures `size` bytes when loaded and is estimated at `estimate` before.
    fn sized(self, models: &[(&str, u64, Option<u64>)]) -> Self {
        for (id, size, estimate) in models {
            self.sizes.lock().unwrap().insert(id.to_string(), *size);
            if let Some(e) = estimate {
                self.estimates.lock().unwrap().insert(id.to_string(), *e);
            }
        }
        self
    }
}

#[tokio::test]
async fn the_memory_budget_evicts_least_recently_used_until_the_new_model_fits() {
    let loader =
        Arc::new(StandInLoader::default().sized(&[("a/1", 40, None), ("b/1", 40, None), ("c/1", 50, Some(50))]));
    let (m, registry) = stack_with_budget(loader.clone(), 8, 0.0, &[], 0.0, Some(100));
    m.add(&id("a/1")).await.unwrap();
    m.add(&id("b/1")).await.unwrap();
    m.infer(&id("c/1"), request()).await.unwrap();
    assert_eq!(loaded(&m), ["b/1", "c/1"], "a (least recently used) made room; b was enough to keep");
    assert_eq!(
        metric_value(&registry, "sightline_model_evictions_total", &[("model_id", "a/1"), ("cause", "memory_budget")]),
        1.0
    );
    assert_eq!(metric_value(&registry, "sightline_model_resident_bytes", &[("model_id", "c/1")]), 50.0);
}

#[tokio::test]
async fn a_load_that_fails_after_making_room_in_memory_gives_the_room_back() {
    let loader =
        Arc::new(StandInLoader::default().sized(&[("a/1", 40, None), ("b/1", 40, None), ("bad/1", 50, Some(50))]));
    loader.failing.lock().unwrap().insert("bad/1".into());
    let (m, _) = stack_with_budget(loader.clone(), 8, 0.0, &[], 0.0, Some(100));
    m.add(&id("a/1")).await.unwrap();
    m.add(&id("b/1")).await.unwrap();
    assert!(matches!(m.add(&id("bad/1")).await, Err(CoreError::BrokenModel { .. })));
    assert_eq!(loaded(&m), ["a/1", "b/1"], "the model evicted for the failed load is loaded again");
    assert_eq!(loader.loads_of("a/1"), 2);
    assert_eq!(ids(&m.lru_order()), ["b/1", "a/1"]);
}

#[tokio::test]
async fn a_model_that_cannot_fit_is_refused_and_nothing_else_breaks() {
    let loader =
        Arc::new(StandInLoader::default().sized(&[("p/1", 70, None), ("x/1", 50, Some(50)), ("y/1", 20, Some(20))]));
    let (m, _) = stack_with_budget(loader.clone(), 8, 0.0, &["p/1"], 0.0, Some(100));
    m.add(&id("p/1")).await.unwrap();
    let error = m.infer(&id("x/1"), request()).await.unwrap_err();
    match &error {
        CoreError::InsufficientMemory { model_id, needed_bytes, available_bytes, budget_bytes } => {
            assert_eq!((model_id.as_str(), *needed_bytes, *available_bytes, *budget_bytes), ("x/1", 50, 30, 100));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error.kind(), "insufficient_memory");
    assert_eq!(loader.loads_of("x/1"), 0, "refused before loading");
    assert_eq!(loaded(&m), ["p/1"], "the pinned model stays");
    m.infer(&id("p/1"), request()).await.unwrap();
    m.infer(&id("y/1"), request()).await.unwrap();
    assert_eq!(loaded(&m), ["p/1", "y/1"], "a model that fits still loads");
}

#[tokio::test]
async fn a_models_last_measured_size_is_its_expected_size_next_time() {
    // Not downloaded yet, so no estimate: the first load is admitted and measures 60.
    let loader = Arc::new(StandInLoader::default().sized(&[("a/1", 60, None), ("b/1", 50, Some(50))]));
    let (m, _) = stack_with_budget(loader.clone(), 8, 0.0, &[], 0.0, Some(100));
    m.add(&id("a/1")).await.unwrap();
    m.remove(&id("a/1"), RemovalReason::Requested).await;
    m.add(&id("b/1")).await.unwrap();
    m.add(&id("a/1")).await.unwrap();
    assert_eq!(loaded(&m), ["a/1"], "60 + 50 > 100: b made room for a's measured 60");
}
