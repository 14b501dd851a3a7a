//! Thread priorities. Model loads run at a lower OS priority than inference, so a cold load takes
//! the CPU only where serving models leave it. A Linux thread inherits its creator's priority and
//! an unprivileged process cannot raise it again, so every thread that serves requests (a model's
//! instance threads, ONNX Runtime's intra-op pools, made during a load) is created by one spawner
//! thread started at normal priority, never by the load thread itself.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

type Work = Box<dyn FnOnce() + Send + 'static>;

struct SpawnRequest {
    name: String,
    work: Work,
    reply: SyncSender<std::io::Result<JoinHandle<()>>>,
}

static SPAWNER: OnceLock<Mutex<SyncSender<SpawnRequest>>> = OnceLock::new();

/// Starts the spawner from the calling thread, which must run at normal priority (the runtime's
/// initialisation on the main thread does this). Later calls do nothing.
pub fn start_spawner() {
    SPAWNER.get_or_init(|| {
        let (sender, requests) = sync_channel::<SpawnRequest>(0);
        let started = std::thread::Builder::new().name("sightline-spawner".into()).spawn(move || serve(requests));
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start the thread spawner; inference threads will be spawned directly");
        }
        Mutex::new(sender)
    });
}

fn serve(requests: Receiver<SpawnRequest>) {
    for request in requests {
        let spawned = std::thread::Builder::new().name(request.name).spawn(request.work);
        let _ = request.reply.send(spawned);
    }
}

/// Spawns a thread at normal priority whatever the caller's priority: through the spawner when it
/// runs, directly otherwise (then the thread has the caller's priority).
pub fn spawn_serving<F: FnOnce() + Send + 'static>(name: String, work: F) -> std::io::Result<JoinHandle<()>> {
    let Some(spawner) = SPAWNER.get() else { return std::thread::Builder::new().name(name).spawn(work) };
    let (reply, response) = sync_channel(1);
    let request = SpawnRequest { name: name.clone(), work: Box::new(work), reply };
    let sent = spawner.lock().unwrap_or_else(|p| p.into_inner()).send(request);
    match sent {
        Ok(()) => response.recv().unwrap_or_else(|_| Err(std::io::Error::other("the thread spawner stopped"))),
        Err(returned) => std::thread::Builder::new().name(name).spawn(returned.0.work),
    }
}

type Retired = Box<dyn Send + 'static>;

static RETIREMENT: OnceLock<Mutex<SyncSender<Retired>>> = OnceLock::new();

/// Drops `value` (an unloaded model's session) on a background thread at `nice`, then hands the
/// freed heap back to the OS: tearing a model down, like loading one, yields to the models that
/// serve. Drops here when the thread cannot start.
pub fn retire<T: Send + 'static>(value: T, nice: i32) {
    let queue = RETIREMENT.get_or_init(|| {
        let (sender, retired) = sync_channel::<Retired>(64);
        let started = std::thread::Builder::new().name("model-retire".into()).spawn(move || {
            let _ = lower_current_thread_priority(nice);
            for value in retired {
                drop(value);
                crate::process_memory::release_free_memory();
            }
        });
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start the model retirement thread; sessions are dropped where they stop");
        }
        Mutex::new(sender)
    });
    let sent = queue.lock().unwrap_or_else(|p| p.into_inner()).try_send(Box::new(value));
    if let Err(std::sync::mpsc::TrySendError::Full(value) | std::sync::mpsc::TrySendError::Disconnected(value)) = sent {
        drop(value);
        crate::process_memory::release_free_memory();
    }
}

/// ONNX Runtime's intra-op threads for a session, made through [`spawn_serving`].
pub struct ServingThreads;

impl ort::environment::ThreadManager for ServingThreads {
    type Thread = JoinHandle<()>;

    fn create(&self, work: impl FnOnce() + Send + 'static) -> ort::Result<Self::Thread> {
        spawn_serving("ort-intra-op".into(), work).map_err(|e| ort::Error::new(e.to_string()))
    }

    fn join(thread: Self::Thread) -> ort::Result<()> {
        thread.join().map_err(|_| ort::Error::new("an intra-op thread panicked"))
    }
}

/// Lowers the calling thread's scheduling priority to `nice` (0 normal … 19 lowest). Linux applies
/// `setpriority` to the one thread named by its id; elsewhere this does nothing.
pub fn lower_current_thread_priority(nice: i32) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority only reads its arguments.
        let tid = unsafe { libc::gettid() };
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
    Ok(())
}

/// The calling thread's nice value (Linux), for tests and logs.
pub fn current_thread_nice() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: as above; errno is cleared first because -1 is a valid priority.
        unsafe {
            *libc::__errno_location() = 0;
            let tid = libc::gettid();
            let nice = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
            if *libc::__errno_location() != 0 {
                return None;
            }
            Some(nice)
        }
    }
    #[cfg(not(target_os = "linux"))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_spawned_for_serving_keep_normal_priority_under_a_lowered_caller() {
        start_spawner();
        let base = current_thread_nice().unwrap();
        let child_nice = std::thread::spawn(move || {
            lower_current_thread_priority(base + 5).unwrap();
            assert_eq!(current_thread_nice(), Some(base + 5));
            let inherited = std::thread::spawn(current_thread_nice).join().unwrap();
            let serving = spawn_serving("t".into(), || ()).unwrap();
            serving.join().unwrap();
            let (tx, rx) = sync_channel(1);
            spawn_serving("t".into(), move || tx.send(current_thread_nice()).unwrap()).unwrap().join().unwrap();
            (inherited, rx.recv().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(child_nice, (Some(base + 5), Some(base)));
    }
}
