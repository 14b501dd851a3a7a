//! The model artifact cache: `root/<dataset>/<version>/` holds a model's files and, written last,
//! its manifest. Fills are single-flight within a process (waiters share one future) and across
//! processes (an entry lock); every use re-checks the files against the manifest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};
use serde::Serialize;
use tracing::Instrument;

use crate::entry_lock::EntryLock;
use crate::entry_writer::{EntryWriter, NoProgress, Progress};
use crate::manifest::{EntryProblem, Manifest, VerifyLevel};
use crate::metrics::{ArtifactMetrics, Lookup};
use crate::retry::RetryPolicy;
use crate::source::ArtifactSource;
use sightline_core::{CoreError, ModelId};

#[derive(Debug, Clone)]
pub struct CacheOptions {
    pub root: PathBuf,
    pub verify: VerifyLevel,
    pub retry: RetryPolicy,
    /// Largest model (all files together) a source may write.
    pub max_model_bytes: u64,
}

/// A usable cache entry.
#[derive(Debug, Clone)]
pub struct CachedEntry {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Whether this call downloaded it (false: it was already cached).
    pub downloaded: bool,
}

/// One row of the cache listing.
#[derive(Debug, Clone, Serialize)]
pub struct CacheListing {
    pub model_id: String,
    /// `ok`, `corrupt` or `incomplete` (no manifest: never finished).
    pub integrity: &'static str,
    /// What `integrity` checked: `size` or `sha256`.
    pub checked: &'static str,
    pub problem: Option<String>,
    pub source: Option<String>,
    pub origin: Option<String>,
    pub fetched_at: Option<u64>,
    pub bytes: u64,
    pub files: Vec<String>,
}

type FillResult = Result<CachedEntry, CoreError>;
type FillFuture = Shared<BoxFuture<'static, FillResult>>;

pub struct ArtifactCache {
    options: CacheOptions,
    sources: Vec<Arc<dyn ArtifactSource>>,
    /// Fills in progress in this process, keyed by model and requested source.
    in_flight: Mutex<HashMap<(ModelId, Option<String>), FillFuture>>,
    metrics: ArtifactMetrics,
}

impl ArtifactCache {
    pub fn new(options: CacheOptions, sources: Vec<Arc<dyn ArtifactSource>>) -> Arc<Self> {
        let metrics = ArtifactMetrics::new();
        metrics.start_at_zero(&sources.iter().map(|s| s.name()).collect::<Vec<_>>());
        Arc::new(ArtifactCache { options, sources, in_flight: Mutex::new(HashMap::new()), metrics })
    }

    /// The cache's counters, for the server to register.
    pub fn metrics(&self) -> &ArtifactMetrics {
        &self.metrics
    }

    pub fn root(&self) -> &Path {
        &self.options.root
    }

    pub fn source_names(&self) -> Vec<&'static str> {
        self.sources.iter().map(|s| s.name()).collect()
    }

    /// What each source that can list its models holds, by source name, in `MODEL_SOURCES` order.
    pub async fn listed_by_sources(&self) -> Vec<(&'static str, Result<Vec<ModelId>, CoreError>)> {
        let mut listed = Vec::new();
        for source in &self.sources {
            if let Some(models) = source.list_models().await {
                listed.push((source.name(), models));
            }
        }
        listed
    }

    /// The verified entry of `id`, fetched from the first source that has it when absent or damaged.
    pub async fn ensure(self: &Arc<Self>, id: &ModelId) -> Result<CachedEntry, CoreError> {
        self.shared_fill(id, None, Arc::new(NoProgress)).await
    }

    /// Like [`Self::ensure`], optionally from one named source (re-fetching an entry that came from
    /// another), reporting download progress.
    pub async fn pull(
        self: &Arc<Self>,
        id: &ModelId,
        source: Option<&str>,
        progress: Arc<dyn Progress>,
    ) -> Result<CachedEntry, CoreError> {
        if let Some(name) = source {
            if !self.sources.iter().any(|s| s.name() == name) {
                return Err(CoreError::InvalidParameter(format!(
                    "unknown model source {name:?}; configured (MODEL_SOURCES): {}",
                    self.source_names().join(", ")
                )));
            }
        }
        self.shared_fill(id, source.map(str::to_owned), progress).await
    }

    /// Removes the entry from disk (loaded sessions keep their memory); false when there was none.
    pub async fn remove(&self, id: &ModelId) -> Result<bool, CoreError> {
        let lock = EntryLock::acquire(&self.options.root, id).await?;
        let dir = self.entry_dir(id);
        blocking(move || {
            let existed = remove_dir_if_present(&dir)?;
            lock.release_and_delete();
            Ok(existed)
        })
        .await
    }

    /// Every entry on disk, checked at `level`. Takes no locks: an entry being filled shows as incomplete.
    pub async fn list(&self, level: VerifyLevel) -> Result<Vec<CacheListing>, CoreError> {
        let root = self.options.root.clone();
        blocking(move || list_entries(&root, level)).await
    }

    /// The versions of `dataset` that have an entry on disk, complete or not (nothing is checked:
    /// a load checks its entry anyway).
    pub async fn versions(&self, dataset: &str) -> Vec<String> {
        let dir = self.options.root.join(dataset);
        let dataset = dataset.to_owned();
        blocking(move || Ok(entry_ids(&dir, &dataset).into_iter().map(|(id, _)| id.version().to_owned()).collect()))
            .await
            .unwrap_or_default()
    }

    fn entry_dir(&self, id: &ModelId) -> PathBuf {
        self.options.root.join(id.relative_path())
    }

    /// Joins the fill of `(id, source)` in progress, or starts one on its own task, so that a
    /// client that goes away does not abort a download others wait for.
    async fn shared_fill(
        self: &Arc<Self>,
        id: &ModelId,
        source: Option<String>,
        progress: Arc<dyn Progress>,
    ) -> FillResult {
        let key = (id.clone(), source.clone());
        let future = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(future) = in_flight.get(&key) {
                future.clone()
            } else {
                let cache = self.clone();
                let task_key = key.clone();
                let task = tokio::spawn(async move {
                    let result = cache.fill(&task_key.0, task_key.1.as_deref(), progress).await;
                    cache.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&task_key);
                    result
                });
                let future = async move {
                    task.await.unwrap_or_else(|e| Err(CoreError::Internal(format!("artifact fill task failed: {e}"))))
                }
                .boxed()
                .shared();
                in_flight.insert(key, future.clone());
                future
            }
        };
        future.await
    }

    /// Under the entry lock: use the entry if it checks out, else fetch it (again) and check once more.
    async fn fill(&self, id: &ModelId, source: Option<&str>, progress: Arc<dyn Progress>) -> FillResult {
        let dir = self.entry_dir(id);
        let lock = match EntryLock::acquire_unless_read_only(&self.options.root, id).await? {
            Ok(lock) => lock,
            Err(cause) => return self.read_only(id, dir, cause).await,
        };
        let result = self.fill_locked(id, &dir, source, progress).await;
        if result.is_err() && !dir.exists() {
            // Nothing is cached (unknown model, failed fetch): leave no lock file behind either.
            lock.release_and_delete();
        }
        result
    }

    async fn fill_locked(
        &self,
        id: &ModelId,
        dir: &Path,
        source: Option<&str>,
        progress: Arc<dyn Progress>,
    ) -> FillResult {
        let dir = dir.to_path_buf();
        match self.check(&dir).await? {
            Ok(manifest) if source.is_none_or(|s| s == manifest.source) && !self.is_stale(id, &manifest) => {
                self.metrics.lookup(Lookup::Hit);
                return Ok(CachedEntry { dir, manifest, downloaded: false });
            }
            Ok(manifest) if source.is_none_or(|s| s == manifest.source) => self.metrics.lookup(Lookup::Stale),
            Ok(_) | Err(EntryProblem::Incomplete) => self.metrics.lookup(Lookup::Miss),
            Err(EntryProblem::Corrupt { file, reason }) => {
                self.metrics.lookup(Lookup::Refetch);
                tracing::warn!(model_id = %id, file = %file.display(), %reason, "cached model differs from its manifest; fetching it again");
            }
        }
        self.fetch(id, &dir, source, progress).await?;
        match self.check(&dir).await? {
            Ok(manifest) => Ok(CachedEntry { dir, manifest, downloaded: true }),
            Err(EntryProblem::Corrupt { file, reason }) => Err(CoreError::BrokenModel {
                file,
                reason: format!("differs from its manifest right after a fresh download: {reason}"),
            }),
            Err(EntryProblem::Incomplete) => {
                Err(CoreError::Cache(format!("the manifest of {id} vanished after writing")))
            }
        }
    }

    /// A cache that cannot be written (a pre-filled image layer, a read-only volume) is served as it
    /// is: a verified entry is used without a lock (nothing here can change it), and anything else
    /// fails with the directory named, as it cannot be fetched into it.
    async fn read_only(&self, id: &ModelId, dir: PathBuf, cause: std::io::Error) -> FillResult {
        match self.check(&dir).await? {
            Ok(manifest) => {
                self.metrics.lookup(Lookup::Hit);
                Ok(CachedEntry { dir, manifest, downloaded: false })
            }
            Err(problem) => {
                let state = match problem {
                    EntryProblem::Incomplete => "not in it".to_owned(),
                    EntryProblem::Corrupt { reason, .. } => format!("damaged there ({reason})"),
                };
                Err(CoreError::Cache(format!(
                    "the model cache {} cannot be written ({cause}), and {id} is {state}: it can serve only the models it holds",
                    self.options.root.display()
                )))
            }
        }
    }

    /// The source the copy came from says the model changed since (only sources that can tell cheaply).
    fn is_stale(&self, id: &ModelId, manifest: &Manifest) -> bool {
        let Some(source) = self.sources.iter().find(|s| s.name() == manifest.source) else { return false };
        let stale = source.fingerprint(id).is_some_and(|now| manifest.source_fingerprint.as_ref() != Some(&now));
        if stale {
            tracing::info!(model_id = %id, source = source.name(), "the model changed at its source; fetching it again");
        }
        stale
    }

    async fn check(&self, dir: &Path) -> Result<Result<Manifest, EntryProblem>, CoreError> {
        let dir = dir.to_path_buf();
        let level = self.options.verify;
        blocking(move || Ok(Manifest::read(&dir).and_then(|m| m.verify(&dir, level).map(|()| m)))).await
    }

    /// Tries the sources in order. "Not found" moves on to the next; so does a source that cannot
    /// be reached or refuses the credentials (with a warning), so that a later source can still
    /// serve. A model that fails its checks, or a cache that cannot be written, is final. When no
    /// source has it, the first failure that was not "not found" is the answer (a 503 for a store
    /// that is down, rather than a 404 that would blame the id).
    async fn fetch(
        &self,
        id: &ModelId,
        dir: &Path,
        only: Option<&str>,
        progress: Arc<dyn Progress>,
    ) -> Result<(), CoreError> {
        let mut not_found = Vec::new();
        let mut passed_over: Option<CoreError> = None;
        for source in self.sources.iter().filter(|s| only.is_none_or(|name| s.name() == name)) {
            let span =
                tracing::info_span!("model_fetch", model_id = %id, source = source.name(), origin = %source.origin(id));
            match self.fetch_from(source.as_ref(), id, dir, progress.clone()).instrument(span).await {
                Err(CoreError::ModelNotFound(why)) => not_found.push(why),
                Err(e) if passes_over(&e) => {
                    tracing::warn!(model_id = %id, source = source.name(), error = %e, "model source failed; trying the next one");
                    passed_over.get_or_insert(e);
                }
                other => return other,
            }
        }
        if let Some(first) = passed_over {
            return Err(first);
        }
        Err(CoreError::ModelNotFound(if not_found.is_empty() {
            format!("{id}: no model source is configured (MODEL_SOURCES)")
        } else {
            not_found.join("; ")
        }))
    }

    /// One source, with retries on transient failures; every attempt starts from an empty entry
    /// and a failed one leaves no entry behind.
    async fn fetch_from(
        &self,
        source: &dyn ArtifactSource,
        id: &ModelId,
        dir: &Path,
        progress: Arc<dyn Progress>,
    ) -> Result<(), CoreError> {
        let retry = self.options.retry;
        let origin = source.origin(id);
        let fingerprint = source.fingerprint(id);
        for attempt in 0..retry.attempts.max(1) {
            reset_entry(dir).await?;
            let mut writer = EntryWriter::new(dir.to_path_buf(), self.options.max_model_bytes, progress.clone());
            let started = std::time::Instant::now();
            self.metrics.attempt(source.name());
            let result = source.fetch(id, &mut writer).await.and_then(|()| {
                let revision = writer.revision();
                writer.finish().map(|files| (files, revision))
            });
            if let Err(e) = &result {
                self.metrics.failure(source.name(), e.kind());
            }
            match result {
                Ok((files, revision)) => {
                    let mut manifest = Manifest::new(id.to_string(), source.name().to_owned(), origin.clone(), files);
                    manifest.source_fingerprint = fingerprint.clone();
                    manifest.revision = revision;
                    let write_dir = dir.to_path_buf();
                    let written = manifest.clone();
                    blocking(move || {
                        written
                            .write(&write_dir)
                            .map_err(|e| CoreError::Cache(format!("cannot write the manifest: {e}")))
                    })
                    .await?;
                    self.metrics.downloaded(source.name(), manifest.total_bytes());
                    tracing::info!(
                        bytes = manifest.total_bytes(),
                        files = manifest.files.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "model fetched into the cache"
                    );
                    return Ok(());
                }
                Err(e) if e.is_transient() && attempt + 1 < retry.attempts => {
                    let delay = retry.delay(attempt);
                    tracing::warn!(attempt = attempt + 1, error = %e, retry_in_ms = delay.as_millis() as u64, "model fetch failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    let _ = remove_entry(dir).await;
                    return Err(e);
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CoreError> + Send + 'static,
) -> Result<T, CoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| CoreError::Internal(format!("cache task failed: {e}")))?
}

/// Removes `dir` and everything in it; false when it was not there.
fn remove_dir_if_present(dir: &Path) -> Result<bool, CoreError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CoreError::Cache(format!("cannot remove {}: {e}", dir.display()))),
    }
}

async fn remove_entry(dir: &Path) -> Result<(), CoreError> {
    let dir = dir.to_path_buf();
    blocking(move || remove_dir_if_present(&dir).map(|_| ())).await
}

/// An empty entry directory: whatever a previous, unfinished or damaged fill left is gone.
async fn reset_entry(dir: &Path) -> Result<(), CoreError> {
    remove_entry(dir).await?;
    let dir = dir.to_path_buf();
    blocking(move || {
        std::fs::create_dir_all(&dir).map_err(|e| CoreError::Cache(format!("cannot create {}: {e}", dir.display())))
    })
    .await
}

fn list_entries(root: &Path, level: VerifyLevel) -> Result<Vec<CacheListing>, CoreError> {
    let mut rows = Vec::new();
    let Ok(datasets) = std::fs::read_dir(root) else { return Ok(rows) };
    for dataset in datasets.flatten() {
        for (id, dir) in entry_ids(&dataset.path(), &dataset.file_name().to_string_lossy()) {
            rows.push(describe_entry(id.to_string(), &dir, level));
        }
    }
    rows.sort_by(|a, b| a.model_id.cmp(&b.model_id));
    Ok(rows)
}

/// The entry folders of one dataset folder, with their ids; lock files and anything else that is
/// not a model id are skipped.
fn entry_ids(dataset_dir: &Path, dataset: &str) -> Vec<(ModelId, PathBuf)> {
    let Ok(versions) = std::fs::read_dir(dataset_dir) else { return Vec::new() };
    versions
        .flatten()
        .filter_map(|version| {
            let id = ModelId::parse(&format!("{dataset}/{}", version.file_name().to_string_lossy())).ok()?;
            version.path().is_dir().then(|| (id, version.path()))
        })
        .collect()
}

fn describe_entry(model_id: String, dir: &Path, level: VerifyLevel) -> CacheListing {
    let checked = match level {
        VerifyLevel::Size => "size",
        VerifyLevel::Sha256 => "sha256",
    };
    let mut row = CacheListing {
        model_id,
        integrity: "ok",
        checked,
        problem: None,
        source: None,
        origin: None,
        fetched_at: None,
        bytes: 0,
        files: Vec::new(),
    };
    let manifest = match Manifest::read(dir) {
        Ok(m) => m,
        Err(EntryProblem::Incomplete) => {
            row.integrity = "incomplete";
            return row;
        }
        Err(EntryProblem::Corrupt { reason, .. }) => {
            row.integrity = "corrupt";
            row.problem = Some(reason);
            return row;
        }
    };
    if let Err(EntryProblem::Corrupt { file, reason }) = manifest.verify(dir, level) {
        row.integrity = "corrupt";
        row.problem = Some(format!("{}: {reason}", file.file_name().unwrap_or_default().to_string_lossy()));
    }
    row.bytes = manifest.total_bytes();
    row.files = manifest.files.keys().cloned().collect();
    row.source = Some(manifest.source);
    row.origin = Some(manifest.origin);
    row.fetched_at = Some(manifest.fetched_at);
    row
}

/// A failure of the source itself (unreachable, timing out, refusing the credentials or the
/// account), after which the next source is tried; what the source sent failing its checks, or the
/// cache failing, is not.
fn passes_over(e: &CoreError) -> bool {
    matches!(
        e,
        CoreError::SourceUnavailable(_)
            | CoreError::SourceTimeout(_)
            | CoreError::SourceUnauthorized(_)
            | CoreError::SourceForbidden(_)
            | CoreError::SourcePaymentRequired(_)
            | CoreError::SourceLocked(_)
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::LocalSource;

    /// A real folder source that counts fetches and can fail its first `fail_first` of them,
    /// after writing half a file (a source dying mid-download).
    struct Flaky {
        inner: LocalSource,
        fetches: AtomicU32,
        fail_first: u32,
        failure: fn(String) -> CoreError,
        delay: Duration,
    }

    #[async_trait]
    impl ArtifactSource for Flaky {
        fn name(&self) -> &'static str {
            "local"
        }
        fn origin(&self, id: &ModelId) -> String {
            self.inner.origin(id)
        }
        fn fingerprint(&self, id: &ModelId) -> Option<String> {
            self.inner.fingerprint(id)
        }
        async fn fetch(&self, id: &ModelId, writer: &mut EntryWriter) -> Result<(), CoreError> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            if n < self.fail_first {
                let mut part = writer.create("weights.onnx", Some(100)).await?;
                part.write(b"half").await?;
                return Err((self.failure)(format!("source died (fetch {n})")));
            }
            self.inner.fetch(id, writer).await
        }
    }

    struct Fixture {
        root: PathBuf,
        models: PathBuf,
    }

    impl Fixture {
        fn new(tag: &str) -> Fixture {
            let base = std::env::temp_dir().join(format!("sightline-cache-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&base);
            let models = base.join("models");
            std::fs::create_dir_all(models.join("shapes/1")).unwrap();
            std::fs::write(models.join("shapes/1/weights.onnx"), vec![7u8; 3000]).unwrap();
            std::fs::write(models.join("shapes/1/environment.json"), b"{}").unwrap();
            Fixture { root: base.join("cache"), models }
        }

        fn source(&self, fail_first: u32, failure: fn(String) -> CoreError, delay: Duration) -> Arc<Flaky> {
            Arc::new(Flaky {
                inner: LocalSource::new(self.models.clone()),
                fetches: AtomicU32::new(0),
                fail_first,
                failure,
                delay,
            })
        }

        fn cache(&self, source: Arc<Flaky>, attempts: u32) -> Arc<ArtifactCache> {
            let options = CacheOptions {
                root: self.root.clone(),
                verify: VerifyLevel::Sha256,
                retry: RetryPolicy {
                    attempts,
                    base_delay: Duration::from_millis(5),
                    max_delay: Duration::from_millis(20),
                },
                max_model_bytes: 1 << 20,
            };
            ArtifactCache::new(options, vec![source])
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.root.parent().unwrap());
        }
    }

    fn id() -> ModelId {
        ModelId::parse("shapes/1").unwrap()
    }

    fn visible_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_callers_and_a_second_cache_on_the_same_dir_share_one_download() {
        let fx = Fixture::new("single");
        let source = fx.source(0, CoreError::SourceUnavailable, Duration::from_millis(200));
        // Two caches on one directory behave like two processes: only the entry lock joins them.
        let a = fx.cache(source.clone(), 1);
        let b = fx.cache(source.clone(), 1);
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let cache = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { cache.ensure(&id()).await })
            })
            .collect();
        let mut downloaded = 0;
        for call in calls {
            let entry = call.await.unwrap().unwrap();
            downloaded += entry.downloaded as u32;
            assert_eq!(entry.manifest.files.len(), 2);
        }
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
        // The four callers that joined the downloading cache's fill; the other four waited on the lock.
        assert_eq!(downloaded, 4);
        assert_eq!(visible_files(&fx.root.join("shapes/1")), ["environment.json", "manifest.json", "weights.onnx"]);
    }

    #[tokio::test]
    async fn a_flipped_byte_or_truncation_is_fetched_again() {
        let fx = Fixture::new("corrupt");
        let source = fx.source(0, CoreError::SourceUnavailable, Duration::ZERO);
        let cache = fx.cache(source.clone(), 1);
        let entry = cache.ensure(&id()).await.unwrap();
        let weights = entry.dir.join("weights.onnx");
        let mut bytes = std::fs::read(&weights).unwrap();
        bytes[1234] ^= 1;
        std::fs::write(&weights, &bytes).unwrap();
        let again = cache.ensure(&id()).await.unwrap();
        assert!(again.downloaded);
        assert_eq!(std::fs::read(&weights).unwrap(), vec![7u8; 3000]);
        std::fs::write(&weights, &bytes[..10]).unwrap();
        assert!(cache.ensure(&id()).await.unwrap().downloaded);
        assert!(!cache.ensure(&id()).await.unwrap().downloaded);
        assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_edit_to_the_source_folder_is_fetched_again() {
        let fx = Fixture::new("stale");
        let source = fx.source(0, CoreError::SourceUnavailable, Duration::ZERO);
        let cache = fx.cache(source.clone(), 1);
        assert!(cache.ensure(&id()).await.unwrap().downloaded);
        assert!(!cache.ensure(&id()).await.unwrap().downloaded, "unchanged: the copy is used");
        std::fs::write(fx.models.join("shapes/1/environment.json"), b"{\"edited\": true}").unwrap();
        let entry = cache.ensure(&id()).await.unwrap();
        assert!(entry.downloaded);
        assert_eq!(std::fs::read(entry.dir.join("environment.json")).unwrap(), b"{\"edited\": true}");
        std::fs::remove_file(fx.models.join("shapes/1/environment.json")).unwrap();
        let entry = cache.ensure(&id()).await.unwrap();
        assert!(entry.downloaded && !entry.dir.join("environment.json").exists(), "a removed file goes too");
        assert!(!cache.ensure(&id()).await.unwrap().downloaded);
        assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_leave_nothing_half_written() {
        let fx = Fixture::new("retry");
        let source = fx.source(2, CoreError::SourceUnavailable, Duration::ZERO);
        let entry = fx.cache(source.clone(), 3).ensure(&id()).await.unwrap();
        assert!(entry.downloaded);
        assert_eq!(source.fetches.load(Ordering::SeqCst), 3);

        let fx = Fixture::new("retry-exhausted");
        let source = fx.source(5, CoreError::SourceUnavailable, Duration::ZERO);
        let cache = fx.cache(source.clone(), 3);
        let err = cache.ensure(&id()).await.unwrap_err();
        assert!(matches!(err, CoreError::SourceUnavailable(_)), "{err}");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
        assert!(!fx.root.join("shapes/1").exists(), "{:?}", visible_files(&fx.root.join("shapes/1")));
        assert_eq!(cache.list(VerifyLevel::Sha256).await.unwrap().len(), 0);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let fx = Fixture::new("permanent");
        let source = fx.source(5, CoreError::SourceForbidden, Duration::ZERO);
        let err = fx.cache(source.clone(), 4).ensure(&id()).await.unwrap_err();
        assert!(matches!(err, CoreError::SourceForbidden(_)), "{err}");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn not_found_names_every_source_looked_at_and_listing_and_removal_work() {
        let fx = Fixture::new("list");
        let cache = fx.cache(fx.source(0, CoreError::SourceUnavailable, Duration::ZERO), 1);
        let err = cache.ensure(&ModelId::parse("nope/1").unwrap()).await.unwrap_err();
        assert!(matches!(&err, CoreError::ModelNotFound(m) if m.contains("nope/1")), "{err}");
        assert!(!fx.root.join("nope").exists(), "an unknown id leaves no lock file or folder");
        let err = cache.pull(&id(), Some("s3"), Arc::new(NoProgress)).await.unwrap_err();
        assert!(matches!(err, CoreError::InvalidParameter(_)), "{err}");

        cache.pull(&id(), Some("local"), Arc::new(NoProgress)).await.unwrap();
        let rows = cache.list(VerifyLevel::Sha256).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].model_id.as_str(), rows[0].integrity, rows[0].bytes), ("shapes/1", "ok", 3002));
        assert_eq!(rows[0].source.as_deref(), Some("local"));
        std::fs::write(fx.root.join("shapes/1/environment.json"), b"[]").unwrap();
        let rows = cache.list(VerifyLevel::Sha256).await.unwrap();
        assert_eq!(rows[0].integrity, "corrupt");
        assert!(rows[0].problem.as_deref().unwrap().starts_with("environment.json: sha256"), "{:?}", rows[0].problem);
        assert_eq!(cache.list(VerifyLevel::Size).await.unwrap()[0].integrity, "ok");

        assert!(cache.remove(&id()).await.unwrap());
        assert!(!cache.remove(&id()).await.unwrap());
        assert!(cache.list(VerifyLevel::Size).await.unwrap().is_empty());
    }

    /// A source that always fails with `failure` before anything is written.
    struct Failing {
        failure: fn(String) -> CoreError,
        fetches: AtomicU32,
    }

    #[async_trait]
    impl ArtifactSource for Failing {
        fn name(&self) -> &'static str {
            "s3"
        }
        fn origin(&self, id: &ModelId) -> String {
            format!("s3://bucket/{id}/")
        }
        async fn fetch(&self, _id: &ModelId, _writer: &mut EntryWriter) -> Result<(), CoreError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            Err((self.failure)("the store said no".into()))
        }
    }

    #[tokio::test]
    async fn a_source_that_is_down_or_refuses_passes_to_the_next_and_a_broken_model_does_not() {
        let passing: [fn(String) -> CoreError; 4] = [
            CoreError::SourceUnavailable,
            CoreError::SourceTimeout,
            CoreError::SourceUnauthorized,
            CoreError::SourceForbidden,
        ];
        for failure in passing {
            let fx = Fixture::new("pass-over");
            let first = Arc::new(Failing { failure, fetches: AtomicU32::new(0) });
            let options = fx.cache(fx.source(0, CoreError::SourceUnavailable, Duration::ZERO), 1).options.clone();
            let local = Arc::new(LocalSource::new(fx.models.clone()));
            let cache = ArtifactCache::new(options, vec![first.clone(), local]);
            let entry = cache.ensure(&id()).await.unwrap();
            assert_eq!(entry.manifest.source, "local", "{}", failure(String::new()));
            // Not in the next source either: the first source's failure, not a 404.
            let err = cache.ensure(&ModelId::parse("nope/1").unwrap()).await.unwrap_err();
            assert_eq!(std::mem::discriminant(&err), std::mem::discriminant(&failure(String::new())), "{err}");
        }

        let fx = Fixture::new("no-pass-over");
        let broken = |why: String| CoreError::BrokenModel { file: "weights.onnx".into(), reason: why };
        let first = Arc::new(Failing { failure: broken, fetches: AtomicU32::new(0) });
        let options = fx.cache(fx.source(0, CoreError::SourceUnavailable, Duration::ZERO), 1).options.clone();
        let cache = ArtifactCache::new(options, vec![first.clone(), Arc::new(LocalSource::new(fx.models.clone()))]);
        let err = cache.ensure(&id()).await.unwrap_err();
        assert!(matches!(err, CoreError::BrokenModel { .. }), "a model failing its checks is final: {err}");
    }
}
