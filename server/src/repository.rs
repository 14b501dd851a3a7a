//! Triton's model repository extension over the service: the index of what could be served (the
//! loaded models, the disk cache, and every source that can list its models), explicit loads that
//! pin a model until it is unloaded, and unloads. A load goes through the manager like any other,
//! so one that fails leaves the loaded models as they were.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use sightline_artifacts::VerifyLevel;
use sightline_core::{CoreError, ModelId};

use crate::error::ApiError;
use crate::service::{newest, Service};
use crate::types::protocol::RepositoryModel;

/// Failed loads remembered for the index's `reason`, at most this many.
const REMEMBERED_FAILURES: usize = 1024;

#[derive(Default)]
pub struct Repository {
    /// Why each model's last repository load failed, until one succeeds.
    failures: Mutex<HashMap<ModelId, String>>,
}

/// A model's state in the index, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Unavailable,
    Loading,
    Ready,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Ready => "READY",
            State::Loading => "LOADING",
            State::Unavailable => "UNAVAILABLE",
        }
    }
}

impl Repository {
    /// Every model version known, sorted, with its state; only the loaded ones when `ready_only`.
    /// A source that cannot be listed now is left out with a warning (the rest still answer).
    pub async fn index(&self, service: &Service, ready_only: bool) -> Result<Vec<RepositoryModel>, ApiError> {
        let mut known: BTreeMap<ModelId, (State, String)> = BTreeMap::new();
        for description in service.loaded() {
            note(&mut known, description.model_id, State::Ready, String::new());
        }
        for id in service.loading() {
            note(&mut known, id, State::Loading, String::new());
        }
        // Before the cache and the sources: a failure is the reason a model there is not loaded.
        for (id, reason) in self.failures().iter() {
            note(&mut known, id.clone(), State::Unavailable, reason.clone());
        }
        for (entry, _) in service.cached(VerifyLevel::Size).await? {
            let Ok(id) = ModelId::parse(&entry.model_id) else { continue };
            let reason = match entry.problem {
                Some(problem) => format!("disk cache entry {}: {problem}", entry.integrity),
                None => "not loaded (disk cache)".into(),
            };
            note(&mut known, id, State::Unavailable, reason);
        }
        for (source, listed) in service.listed_by_sources().await {
            match listed {
                Ok(ids) => {
                    for id in ids {
                        note(&mut known, id, State::Unavailable, format!("not loaded (source {source})"));
                    }
                }
                Err(e) => tracing::warn!(source, error = %e, "the repository index leaves out a source it cannot list"),
            }
        }
        Ok(known
            .into_iter()
            .filter(|(_, (state, _))| !ready_only || *state == State::Ready)
            .map(|(id, (state, reason))| RepositoryModel {
                name: id.dataset().to_owned(),
                version: id.version().to_owned(),
                state: state.as_str(),
                reason,
            })
            .collect())
    }

    /// Loads `name` (`dataset`, whose newest known version is taken, or `dataset/version`) and
    /// keeps it loaded until it is unloaded; waits as long as the load takes.
    pub async fn load(&self, service: &Service, name: &str) -> Result<ModelId, ApiError> {
        let id = resolve(service, name).await?;
        service.pin(&id, true);
        match service.add(&id).await {
            Ok(_) => {
                self.failures().remove(&id);
                Ok(id)
            }
            Err(e) => {
                service.pin(&id, false);
                if !matches!(e, CoreError::ModelNotFound(_) | CoreError::InvalidModelId(_)) {
                    self.remember(&id, format!("load failed: {e}"));
                }
                Err(e.into())
            }
        }
    }

    /// Unloads `name`: `dataset/version`, or every version of `dataset` that is loaded or loading;
    /// the models unloaded (none is not an error: the state asked for holds).
    pub async fn unload(&self, service: &Service, name: &str) -> Result<Vec<ModelId>, ApiError> {
        let ids: Vec<ModelId> = if name.contains('/') {
            vec![ModelId::parse(name)?]
        } else {
            ModelId::parse(&format!("{name}/0"))?;
            let loaded = service.loaded().into_iter().map(|d| d.model_id);
            loaded.chain(service.loading()).filter(|id| id.dataset() == name).collect()
        };
        let mut unloaded = Vec::new();
        for id in ids {
            service.pin(&id, false);
            if service.remove(&id).await {
                unloaded.push(id);
            }
        }
        Ok(unloaded)
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<ModelId, String>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, id: &ModelId, reason: String) {
        let mut failures = self.failures();
        if failures.len() >= REMEMBERED_FAILURES && !failures.contains_key(id) {
            failures.clear();
        }
        failures.insert(id.clone(), reason);
    }
}

/// Records `id`'s state: a higher state replaces a lower one; the first reason of a state stays.
fn note(known: &mut BTreeMap<ModelId, (State, String)>, id: ModelId, state: State, reason: String) {
    match known.get_mut(&id) {
        Some(entry) if state > entry.0 => *entry = (state, reason),
        Some(_) => {}
        None => {
            known.insert(id, (state, reason));
        }
    }
}

/// `dataset/version` as it is, or `dataset` at its newest version loaded, in the disk cache or in
/// a source that lists its models.
async fn resolve(service: &Service, name: &str) -> Result<ModelId, ApiError> {
    if name.contains('/') {
        return Ok(ModelId::parse(name)?);
    }
    ModelId::parse(&format!("{name}/0"))?;
    let mut versions: Vec<String> = service.newest_version(name).await.into_iter().collect();
    for (_, listed) in service.listed_by_sources().await {
        let listed = listed.unwrap_or_default();
        versions.extend(listed.into_iter().filter(|id| id.dataset() == name).map(|id| id.version().to_owned()));
    }
    let version = newest(versions.iter().map(String::as_str)).ok_or_else(|| {
        ApiError::NotFoundMessage(format!(
            "no version of model {name:?} is loaded, cached or in a source that lists its models; name one: {name}/<version>"
        ))
    })?;
    Ok(ModelId::parse(&format!("{name}/{version}"))?)
}

/// Refuses Triton's load-time overrides, which Sightline has no place for.
pub fn check_parameters<'a>(mut names: impl Iterator<Item = &'a str>) -> Result<(), ApiError> {
    match names.find(|n| *n == "config" || n.starts_with("file:")) {
        Some(name) => Err(ApiError::BadRequest(format!(
            "parameter {name:?} is not supported: Sightline loads a model's files from its sources (MODEL_SOURCES), not from the request"
        ))),
        None => Ok(()),
    }
}
