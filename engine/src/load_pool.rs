//! Where model loads run: a few threads of their own (`MODEL_LOAD_CONCURRENCY`) at a lower OS
//! priority than inference, so that a cold load (graph optimisation, weight prepacking, the test
//! inference) takes the CPU the serving models leave and does not stall them. The threads a load
//! creates for serving are made at normal priority (`engine::threads`).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use sightline_core::CoreError;
use tokio::sync::oneshot;

use crate::threads::{lower_current_thread_priority, LoadPriority};

type Load = Box<dyn FnOnce() + Send + 'static>;

pub struct LoadPool {
    sender: Mutex<Sender<Load>>,
}

impl LoadPool {
    /// `concurrency` threads, each lowering its own priority to `priority` (nice 0 leaves it normal).
    pub fn new(concurrency: usize, priority: LoadPriority) -> std::io::Result<LoadPool> {
        let (sender, loads) = channel::<Load>();
        let loads = Arc::new(Mutex::new(loads));
        for index in 0..concurrency.max(1) {
            let loads = loads.clone();
            std::thread::Builder::new().name(format!("model-load-{index}")).spawn(move || {
                if let Err(cause) = lower_current_thread_priority(priority) {
                    tracing::warn!(%cause, %priority, "cannot lower the priority of model loads as configured");
                }
                serve(&loads);
            })?;
        }
        Ok(LoadPool { sender: Mutex::new(sender) })
    }

    /// Runs `load` on the pool, after the loads queued before it.
    pub async fn run<T: Send + 'static>(&self, load: impl FnOnce() -> T + Send + 'static) -> Result<T, CoreError> {
        let (reply, result) = oneshot::channel();
        let job: Load = Box::new(move || {
            let _ = reply.send(load());
        });
        self.sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| CoreError::Internal("the model load threads have stopped".into()))?;
        result.await.map_err(|_| CoreError::Internal("a model load panicked".into()))
    }
}

fn serve(loads: &Mutex<Receiver<Load>>) {
    loop {
        let load = loads.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(load) = load else { return };
        // A panicking load fails its own request (its reply is dropped), not the pool.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads::{current_thread_is_idle, current_thread_nice};

    #[tokio::test]
    async fn loads_run_one_at_a_time_at_the_lower_priority() {
        let pool = LoadPool::new(1, LoadPriority::Nice(3)).unwrap();
        let base = tokio::task::spawn_blocking(current_thread_nice).await.unwrap().unwrap();
        let nice = pool.run(current_thread_nice).await.unwrap().unwrap();
        assert_eq!(nice, (base + 3).min(19));
        assert!(!pool.run(current_thread_is_idle).await.unwrap());
        let panicked = pool.run(|| -> u32 { panic!("broken load") }).await;
        assert!(panicked.is_err());
        assert_eq!(pool.run(|| 7).await.unwrap(), 7, "the pool survives a panicking load");
    }

    #[tokio::test]
    async fn idle_loads_run_under_sched_idle_at_nice_19() {
        let pool = LoadPool::new(1, LoadPriority::Idle).unwrap();
        assert!(pool.run(current_thread_is_idle).await.unwrap());
        assert_eq!(pool.run(current_thread_nice).await.unwrap(), Some(19));
        assert!(!tokio::task::spawn_blocking(current_thread_is_idle).await.unwrap(), "only the pool's threads");
    }

    #[test]
    fn priorities_parse_from_idle_or_a_nice_value() {
        assert_eq!("idle".parse::<LoadPriority>(), Ok(LoadPriority::Idle));
        assert_eq!("19".parse::<LoadPriority>(), Ok(LoadPriority::Nice(19)));
        assert_eq!(" 0".parse::<LoadPriority>(), Ok(LoadPriority::Nice(0)));
        for bad in ["20", "-1", "low", ""] {
            assert!(bad.parse::<LoadPriority>().is_err(), "{bad}");
        }
    }
}
