//! A server's life in a container or pod: readiness (pinned models loaded, not shutting down),
//! pinned models retried with backoff until they load, and graceful shutdown on SIGTERM/SIGINT.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sightline_core::{ModelId, ModelManager};
use utoipa::ToSchema;

/// What `/readiness` answers, and whether it is ready.
#[derive(Default)]
pub struct Readiness {
    preloaded: AtomicBool,
    shutting_down: AtomicBool,
    /// Pinned models whose last load failed, with the cause; retried until they load.
    failing: Mutex<BTreeMap<String, String>>,
}

/// The body of `/readiness`.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct ReadinessReport {
    /// `ready`, `not ready` (pinned models still loading or failing) or `shutting down`.
    pub status: &'static str,
    /// Pinned models that failed to load, with the cause of the last attempt (only when not ready).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub failing_models: BTreeMap<String, String>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.preloaded.load(Ordering::Acquire) && !self.shutting_down.load(Ordering::Acquire)
    }

    pub fn report(&self) -> ReadinessReport {
        let status = if self.shutting_down.load(Ordering::Acquire) {
            "shutting down"
        } else if self.preloaded.load(Ordering::Acquire) {
            "ready"
        } else {
            "not ready"
        };
        let failing = if status == "ready" { BTreeMap::new() } else { self.failing().clone() };
        ReadinessReport { status, failing_models: failing }
    }

    fn failing(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The first pause between attempts to load a pinned model that failed; it doubles up to `MAX`.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Loads every pinned model, retrying each failure with backoff, and reports ready once all of
/// them are loaded: a pod whose pinned model cannot load is never sent traffic it would fail.
pub async fn preload(manager: Arc<dyn ModelManager>, pinned: HashSet<ModelId>, readiness: Arc<Readiness>) {
    let mut pending: Vec<ModelId> = pinned.into_iter().collect();
    pending.sort_by_key(ToString::to_string);
    let mut pause = RETRY_FIRST;
    loop {
        let mut still = Vec::new();
        for id in pending {
            match manager.add(&id).await {
                Ok(_) => {
                    readiness.failing().remove(&id.to_string());
                }
                Err(e) => {
                    tracing::error!(model_id = %id, error = %e, retry_in_secs = pause.as_secs(), "pinned model failed to load; not ready until it loads");
                    readiness.failing().insert(id.to_string(), e.to_string());
                    still.push(id);
                }
            }
        }
        if still.is_empty() || readiness.shutting_down.load(Ordering::Acquire) {
            break;
        }
        pending = still;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
    readiness.preloaded.store(true, Ordering::Release);
}

/// How the server goes down on SIGTERM or SIGINT.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownPolicy {
    /// Readiness is false for this long before new connections are refused, so that balancers
    /// and Kubernetes' endpoints stop sending new requests first.
    pub drain: Duration,
    /// Requests in flight get this long to finish once connections are refused.
    pub timeout: Duration,
}

/// Waits for SIGTERM or SIGINT, turns readiness false at once, waits the drain window, then stops
/// the HTTP server gracefully (in-flight requests finish within `timeout`). Loads in flight are
/// abandoned with the process: the cache only ever shows complete entries (each is written aside
/// and renamed into place).
/// `also_stop` (the gRPC server's stop, not started until awaited) runs beside the HTTP server's.
pub async fn shutdown_on_signal(
    server: actix_web::dev::ServerHandle,
    also_stop: impl std::future::Future<Output = ()>,
    readiness: Arc<Readiness>,
    policy: ShutdownPolicy,
) {
    let signal = wait_for_signal().await;
    readiness.shutting_down.store(true, Ordering::Release);
    tracing::info!(
        signal,
        drain_secs = policy.drain.as_secs_f64(),
        timeout_secs = policy.timeout.as_secs_f64(),
        "shutting down: not ready; draining"
    );
    tokio::time::sleep(policy.drain).await;
    tracing::info!("no new connections; waiting for requests in flight");
    tokio::join!(server.stop(true), also_stop);
    tracing::info!("stopped");
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT; the server stops only when killed");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_failing_pinned_models_and_shutting_down_wins() {
        let readiness = Readiness::default();
        assert_eq!(readiness.report().status, "not ready");
        readiness.failing().insert("late/1".into(), "model not found".into());
        assert_eq!(readiness.report().failing_models["late/1"], "model not found");
        readiness.failing().clear();
        readiness.preloaded.store(true, Ordering::Release);
        assert!(readiness.is_ready());
        assert_eq!(readiness.report(), ReadinessReport { status: "ready", failing_models: BTreeMap::new() });
        readiness.shutting_down.store(true, Ordering::Release);
        assert!(!readiness.is_ready());
        assert_eq!(readiness.report().status, "shutting down");
    }
}
