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

/// Drops `value` (an unloaded model's session) on a background thread at `priority`, then hands
/// the freed heap back to the OS: tearing a model down, like loading one, yields to the models that
/// serve. Drops here when the thread cannot start.
pub fn retire<T: Send + 'static>(value: T, priority: LoadPriority) {
    let queue = RETIREMENT.get_or_init(|| {
        let (sender, retired) = sync_channel::<Retired>(64);
        let started = std::thread::Builder::new().name("model-retire".into()).spawn(move || {
            let _ = lower_current_thread_priority(priority);
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

/// The OS priority model loads and unloads run at (`MODEL_LOAD_PRIORITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadPriority {
    /// Linux's `SCHED_IDLE` policy (and nice 19): the thread runs on CPU time no other thread
    /// wants, and a waking serving thread takes its core at once. At nice 19 a load still ran for
    /// up to 12 ms at a time beside busy serving threads, and a serving model's p99 rose ×1.15–1.32
    /// while others loaded; under `SCHED_IDLE`, ×1.02–1.13 (docs/benchmarks.md).
    Idle,
    /// A nice value, 0 (the priority of inference) to 19.
    Nice(i32),
}

impl std::str::FromStr for LoadPriority {
    type Err = String;

    fn from_str(value: &str) -> Result<LoadPriority, String> {
        match value.trim() {
            "idle" => Ok(LoadPriority::Idle),
            nice => match nice.parse::<i32>() {
                Ok(n) if (0..=19).contains(&n) => Ok(LoadPriority::Nice(n)),
                _ => Err(format!("`{value}` is neither `idle` nor a nice value from 0 to 19")),
            },
        }
    }
}

impl std::fmt::Display for LoadPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadPriority::Idle => f.write_str("idle"),
            LoadPriority::Nice(n) => write!(f, "{n}"),
        }
    }
}

/// Lowers the calling thread's scheduling priority to `priority`. Linux applies `setpriority` and
/// `sched_setscheduler` to the one thread named by its id; elsewhere this does nothing. Lowering
/// needs no privilege; raising it again would, which is why serving threads come from the spawner.
pub fn lower_current_thread_priority(priority: LoadPriority) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        let nice = match priority {
            LoadPriority::Idle => 19,
            LoadPriority::Nice(n) => n,
        };
        // SAFETY: gettid has no preconditions; setpriority and sched_setscheduler only read their
        // arguments (the latter a live `sched_param`).
        let tid = unsafe { libc::gettid() };
        if nice != 0 && unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        if priority == LoadPriority::Idle {
            let param = libc::sched_param { sched_priority: 0 };
            if unsafe { libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) } != 0 {
                let cause = std::io::Error::last_os_error();
                return Err(format!("SCHED_IDLE refused ({cause}); the thread stays at nice 19"));
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
    Ok(())
}

/// Whether the calling thread runs under `SCHED_IDLE` (Linux), for tests.
pub fn current_thread_is_idle() -> bool {
    #[cfg(target_os = "linux")]
    // SAFETY: sched_getscheduler only reads the thread id.
    return unsafe { libc::sched_getscheduler(libc::gettid()) } == libc::SCHED_IDLE;
    #[cfg(not(target_os = "linux"))]
    false
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
        let state = || (current_thread_is_idle(), current_thread_nice());
        let (inherited, serving) = std::thread::spawn(move || {
            lower_current_thread_priority(LoadPriority::Idle).unwrap();
            assert_eq!(state(), (true, Some(19)));
            let inherited = std::thread::spawn(state).join().unwrap();
            let (tx, rx) = sync_channel(1);
            spawn_serving("t".into(), move || tx.send(state()).unwrap()).unwrap().join().unwrap();
            (inherited, rx.recv().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(inherited, (true, Some(19)), "a plain thread inherits the lowered priority");
        assert_eq!(serving, (false, Some(base)), "the spawner's threads do not");
    }
}
