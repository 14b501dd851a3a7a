//! Building one session on one execution provider: the provider's options, its caches (TensorRT
//! engines, OpenVINO blobs, ONNX Runtime's optimised graph) and the threads it runs on.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;

use crate::cache_dirs::{openvino_cache_dir, optimized_graph_path, optimized_graphs_dir, tensorrt_cache_dir};
use crate::environment::{cpu_device, environment, openvino_device, runtime_version, tensorrt_version};
use crate::gpu::GpuSnapshot;
use crate::provider::{ArenaStrategy, OpenVinoDevice, Provider, ProviderOptions};
use crate::session::{broken, ModelSession, SessionShape};
use crate::threads::ServingThreads;
use crate::EngineError;

/// Where a session runs: the provider, and the GPU for the NVIDIA ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target<'g> {
    pub provider: Provider,
    /// The GPU placed for the model (its name and compute capability key TensorRT's engines).
    pub gpu: Option<&'g GpuSnapshot>,
    /// The input's shape changes from request to request (see `build_on`).
    pub varying_shapes: bool,
    /// Intra-op threads of this session when not the deployment's (instances share the cores).
    pub intra_threads: Option<usize>,
    /// The solo session of an adaptive engine: its pool threads spin while a run lasts and stop
    /// when it ends (between runs they would take the cores the instances and decoding need).
    pub solo: bool,
}

/// Builds a session for `file` on `target`, configured from `options`; provider caches (TensorRT
/// engines, OpenVINO blobs) go under `cache_root`, the model's cache entry. Errors are the cause
/// as ONNX Runtime gave it.
pub fn build_on(
    target: Target<'_>,
    file: &Path,
    options: &ProviderOptions,
    cache_root: &Path,
) -> Result<Session, String> {
    if target.provider == Provider::OpenVino {
        return build_openvino_at_serving_priority(target, file, options, cache_root);
    }
    build_here(target, file, options, cache_root)
}

/// OpenVINO makes the threads that will run a compiled model's inferences while it compiles, and
/// Linux threads inherit their creator's priority: compiling on a lowered load thread would leave
/// the model serving at the load's priority for good. So OpenVINO sessions are built on a thread
/// at normal priority (their compile is then not deprioritised; the rest of the load still is).
fn build_openvino_at_serving_priority(
    target: Target<'_>,
    file: &Path,
    options: &ProviderOptions,
    cache_root: &Path,
) -> Result<Session, String> {
    let (file, options, cache_root) = (file.to_path_buf(), options.clone(), cache_root.to_path_buf());
    let (provider, varying_shapes, intra_threads, solo) =
        (target.provider, target.varying_shapes, target.intra_threads, target.solo);
    let (reply, built) = std::sync::mpsc::sync_channel(1);
    crate::threads::spawn_serving("openvino-compile".into(), move || {
        let target = Target { provider, gpu: None, varying_shapes, intra_threads, solo };
        let _ = reply.send(build_here(target, &file, &options, &cache_root));
    })
    .map_err(|e| format!("cannot start the OpenVINO compile thread: {e}"))?;
    built.recv().unwrap_or_else(|_| Err("the OpenVINO compile thread panicked".into()))
}

fn build_here(
    target: Target<'_>,
    file: &Path,
    options: &ProviderOptions,
    cache_root: &Path,
) -> Result<Session, String> {
    let env = environment().map_err(|e| e.to_string())?;
    let mut builder = Session::builder(env).map_err(|e| e.to_string())?;
    // Without a fixed count, the session runs on the environment's shared pool where it has one.
    let intra_threads = target.intra_threads.unwrap_or(options.intra_threads);
    let shared = intra_threads == 0 && crate::environment::shared_threads().is_some();
    if !shared {
        builder = builder.with_independent_thread_pool().map_err(|e| e.to_string())?;
    }
    if intra_threads > 0 {
        builder = builder.with_intra_threads(intra_threads).map_err(|e| e.to_string())?;
    }
    // Spinning keeps a waiting intra-op thread busy for a while after each operator: it buys a
    // little latency with a core that decoding and pre-processing need (docs/benchmarks.md).
    let spinning = target.solo || options.intra_spinning;
    builder = builder.with_intra_op_spinning(spinning).map_err(|e| e.to_string())?;
    builder = builder.with_inter_op_spinning(spinning).map_err(|e| e.to_string())?;
    if target.solo {
        builder = builder.with_config_entry("session.force_spinning_stop", "1").map_err(|e| e.to_string())?;
    }
    builder = builder.with_thread_manager(ServingThreads).map_err(|e| e.to_string())?;
    if target.varying_shapes {
        // A memory pattern is planned per input shape and kept: for inputs whose shape changes with
        // every image (OCR) the plans only accumulate (1.7 GB after two passes over the OCR
        // fixtures, 0.77 GB without; docs/benchmarks.md). The CPU arena stays (without it every
        // operator's output is a fresh mmap: 5x slower OCR) and is shrunk after each run instead
        // (`shrinking_run_options`).
        builder = builder.with_memory_pattern(false).map_err(|e| e.to_string())?;
    }
    let gpu = target.gpu.map_or(0, |g| g.index);
    let mut tensorrt_dir = None;
    builder = match target.provider {
        Provider::Cpu => {
            let no_options: Vec<(String, String)> = Vec::new();
            builder.with_devices([cpu_device()?], Some(no_options.as_slice())).map_err(|e| e.to_string())?
        }
        Provider::Cuda => builder.with_execution_providers([cuda(options, gpu)]).map_err(|e| e.to_string())?,
        Provider::TensorRt => {
            let dir = tensorrt_cache_dir(cache_root, &gpu_key(target.gpu), &tensorrt_version()?);
            let writable = side_cache(&dir, "TensorRT engine");
            let trt = ort::ep::TensorRT::default()
                .with_device_id(gpu as i32)
                .with_fp16(options.tensorrt_fp16)
                .with_engine_cache(writable)
                .with_engine_cache_path(dir.display())
                .with_timing_cache(writable)
                .with_timing_cache_path(dir.display())
                .build()
                .error_on_failure();
            if writable {
                let engines_before = count_engines(&dir);
                tensorrt_dir = Some((dir, engines_before));
            }
            // Nodes TensorRT does not take run on CUDA, not on the CPU.
            builder.with_execution_providers([trt, cuda(options, gpu)]).map_err(|e| e.to_string())?
        }
        Provider::OpenVino => {
            let device = openvino_device(options.openvino_device)?;
            let dir = openvino_cache_dir(cache_root, options.openvino_device, options.openvino_precision);
            let dir = side_cache(&dir, "OpenVINO blob").then_some(dir.as_path());
            let config = openvino_options(device.ep().map_err(|e| e.to_string())?, options, intra_threads, dir);
            // A session reported as OpenVINO runs wholly on OpenVINO: a model with nodes it cannot
            // take fails here and is built on the next provider instead, with the cause logged.
            let builder =
                builder.with_config_entry("session.disable_cpu_ep_fallback", "1").map_err(|e| e.to_string())?;
            builder.with_devices([device], Some(&config)).map_err(|e| e.to_string())?
        }
    };
    let started = Instant::now();
    let graph = Graph { file, rewrites: target.provider == Provider::Cpu && options.graph_rewrites };
    let session = if target.provider == Provider::Cpu && options.optimized_graph_cache {
        let rewrites = graph.rewrites.then_some(crate::graph_rewrite::REWRITES_VERSION);
        commit_cached(builder, &graph, &optimized_graph_path(cache_root, file, runtime_version(), rewrites))?
    } else {
        graph.commit(&mut builder, &graph.read()).map_err(not_loadable)?
    };
    if let Some((dir, before)) = tensorrt_dir {
        let seconds = started.elapsed().as_secs_f64();
        if count_engines(&dir) > before {
            tracing::info!(file = %file.display(), cache = %dir.display(), seconds, "built a TensorRT engine (first build for this GPU and TensorRT version; later loads reuse it)");
        } else {
            tracing::info!(file = %file.display(), cache = %dir.display(), seconds, "TensorRT engine loaded from the cache");
        }
    }
    Ok(session)
}

/// The model a CPU session is built from: its file, or that file's graph rewritten.
struct Graph<'f> {
    file: &'f Path,
    rewrites: bool,
}

impl Graph<'_> {
    /// The rewritten model when a rewrite applies; `None` builds from the file as it is (read
    /// here only when rewrites are on, and then dropped unless rewritten).
    fn read(&self) -> Option<Vec<u8>> {
        if !self.rewrites {
            return None;
        }
        let bytes = std::fs::read(self.file).ok()?;
        let rewritten = crate::graph_rewrite::rewrite_graph(&bytes)?;
        tracing::info!(file = %self.file.display(), softmaxes = rewritten.softmaxes, split_convs = rewritten.split_convs, "graph rewritten: each Softmax over a middle axis runs on its last axis between two Transposes, each Conv a Split divides runs as one Conv per part (ORT_GRAPH_REWRITES)");
        Some(rewritten.model)
    }

    /// A rewritten model that does not build falls back to the file as it is: the rewrite is an
    /// optimisation, and a model it cannot serve (one whose data the in-memory build cannot find,
    /// say) must load as it would without it.
    fn commit(&self, builder: &mut SessionBuilder, rewritten: &Option<Vec<u8>>) -> Result<Session, ort::Error> {
        if let Some(model) = rewritten {
            match builder.commit_from_memory(model) {
                Ok(session) => return Ok(session),
                Err(cause) => {
                    tracing::warn!(file = %self.file.display(), %cause, "the rewritten graph does not load; loading the model as exported")
                }
            }
        }
        builder.commit_from_file(self.file)
    }
}

fn not_loadable(e: ort::Error) -> String {
    format!("not a loadable ONNX model: {e}")
}

/// Starts the session from ONNX Runtime's optimised graph saved by an earlier load, or builds it
/// from `graph` and saves that graph (written aside, then renamed, so a crash leaves no half file).
/// A saved graph that no longer loads is deleted and rebuilt. The saved graph is an optimisation:
/// when it cannot be written (a full or read-only disk, a graph with compiled nodes) the session is
/// built from `graph` as if there were no cache, with a warning, and nothing is left aside.
fn commit_cached(mut builder: SessionBuilder, graph: &Graph<'_>, cached: &Path) -> Result<Session, String> {
    let file = graph.file;
    if cached.is_file() {
        let from_cache = builder
            .clone()
            .with_optimization_level(GraphOptimizationLevel::Disable)
            .map_err(|e| e.to_string())
            .and_then(|mut b| b.commit_from_file(cached).map_err(|e| e.to_string()));
        match from_cache {
            Ok(session) => {
                tracing::debug!(file = %file.display(), cached = %cached.display(), "session started from its saved optimised graph");
                return Ok(session);
            }
            Err(e) => {
                tracing::warn!(file = %file.display(), cached = %cached.display(), cause = %e, "saved optimised graph does not load; rebuilding it");
                let _ = std::fs::remove_file(cached);
            }
        }
    }
    let rewritten = graph.read();
    let Some(dir) = cached.parent().filter(|d| std::fs::create_dir_all(d).is_ok()) else {
        return graph.commit(&mut builder, &rewritten).map_err(not_loadable);
    };
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let aside = dir.join(format!("{SAVING_PREFIX}{}-{}", std::process::id(), SERIAL.fetch_add(1, Ordering::Relaxed)));
    let saving = builder
        .clone()
        .with_optimized_model_path(&aside)
        .map_err(|e| e.to_string())
        .and_then(|mut b| graph.commit(&mut b, &rewritten).map_err(|e| e.to_string()));
    let session = match saving {
        Ok(session) => session,
        Err(cause) => {
            // Whether the model or the saving failed, the model alone tells: built without saving.
            let _ = std::fs::remove_file(&aside);
            let session = graph.commit(&mut builder, &rewritten).map_err(not_loadable)?;
            tracing::warn!(file = %file.display(), cached = %cached.display(), %cause, "cannot save the optimised graph; the model is served without it");
            return Ok(session);
        }
    };
    if let Err(e) = std::fs::rename(&aside, cached) {
        tracing::warn!(cached = %cached.display(), cause = %e, "cannot save the optimised graph");
        let _ = std::fs::remove_file(&aside);
    }
    Ok(session)
}

/// The name an optimised graph is written under until it is complete.
const SAVING_PREFIX: &str = ".saving-";

/// Removes the optimised graphs left half written under `cache_root` by a process that stopped
/// while saving one (a crash, a full disk): at start-up, before any load. Returns how many.
pub fn sweep_unfinished_graphs(cache_root: &Path) -> usize {
    let entries = |dir: &Path| std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path());
    let mut removed = 0;
    for dataset in entries(cache_root) {
        for version in entries(&dataset) {
            for keyed in entries(&optimized_graphs_dir(&version)) {
                for file in entries(&keyed) {
                    let unfinished = file.file_name().is_some_and(|n| n.to_string_lossy().starts_with(SAVING_PREFIX));
                    if unfinished && !saved_by_a_live_process(&file) && std::fs::remove_file(&file).is_ok() {
                        removed += 1;
                    }
                }
            }
        }
    }
    removed
}

/// Whether `.saving-<pid>-<n>` names a process running here other than this one (another server
/// sharing the cache may be writing it).
fn saved_by_a_live_process(file: &Path) -> bool {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let pid = name.strip_prefix(SAVING_PREFIX).and_then(|rest| rest.split('-').next()?.parse::<u32>().ok());
    match pid {
        Some(pid) if pid != std::process::id() => Path::new(&format!("/proc/{pid}")).exists(),
        _ => false,
    }
}

fn cuda(options: &ProviderOptions, gpu: u32) -> ort::ep::ExecutionProviderDispatch {
    let mut cuda = ort::ep::CUDA::default().with_device_id(gpu as i32).with_arena_extend_strategy(
        match options.cuda_arena_strategy {
            ArenaStrategy::NextPowerOfTwo => ort::ep::ArenaExtendStrategy::NextPowerOfTwo,
            ArenaStrategy::SameAsRequested => ort::ep::ArenaExtendStrategy::SameAsRequested,
        },
    );
    if let Some(limit) = options.cuda_memory_limit {
        cuda = cuda.with_memory_limit(limit);
    }
    cuda.build().error_on_failure()
}

/// Whether a provider's compiled forms can be kept in `dir` (created if need be): a cache that
/// cannot be written (a read-only or full disk) only means compiling at each load, with a warning.
fn side_cache(dir: &Path, what: &str) -> bool {
    match std::fs::create_dir_all(dir) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(cache = %dir.display(), cause = %e, "cannot keep the {what} cache; compiling without it");
            false
        }
    }
}

/// The GPU's name and compute capability, which a TensorRT engine is only valid for.
fn gpu_key(gpu: Option<&GpuSnapshot>) -> String {
    match gpu {
        Some(g) => format!("{}-sm{}", g.name, g.compute_capability.as_deref().unwrap_or_default()),
        None => "gpu0".into(),
    }
}

fn count_engines(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".engine")).count())
        .unwrap_or(0)
}

/// The plugin's options, keyed by the device's provider name as `with_devices` expects. The
/// plugin ignores `precision`, `cache_dir` and `num_of_threads` as options (it warns): they go
/// into `load_config`, OpenVINO's own properties per device.
fn openvino_options(
    ep_name: &str,
    options: &ProviderOptions,
    threads: usize,
    cache_dir: Option<&Path>,
) -> Vec<(String, String)> {
    let mut properties = serde_json::json!({ "INFERENCE_PRECISION_HINT": options.openvino_precision.name() });
    if let Some(dir) = cache_dir {
        properties["CACHE_DIR"] = serde_json::json!(dir.display().to_string());
    }
    if threads > 0 {
        properties["INFERENCE_NUM_THREADS"] = serde_json::json!(threads);
    }
    // AUTO hands each property set to the device it is named for.
    let devices: &[&str] = match options.openvino_device {
        OpenVinoDevice::Auto => &["CPU", "GPU", "NPU"],
        other => &[other.name()],
    };
    let load_config: serde_json::Map<String, serde_json::Value> = devices
        .iter()
        .map(|&d| {
            let mut device = properties.clone();
            // Pinned, each compiled model's threads start on the first cores: two instances then
            // share one core (162-174 req/s at 16 clients against 235-263 unpinned), and a thread
            // that decoding preempts cannot move to the core that is free.
            if d == "CPU" {
                device["ENABLE_CPU_PINNING"] = serde_json::json!(false);
            }
            (d.to_string(), device)
        })
        .collect();
    vec![(format!("{ep_name}.load_config"), serde_json::Value::Object(load_config).to_string())]
}

/// A session of `file` on `provider` (and `gpu`), configured from `options`, unchecked: for
/// benchmarks of the raw runtime on each provider.
pub fn build_raw(
    provider: Provider,
    gpu: Option<&GpuSnapshot>,
    file: &Path,
    options: &ProviderOptions,
    cache_root: &Path,
) -> Result<ModelSession, String> {
    let target = Target { provider, gpu, varying_shapes: false, intra_threads: None, solo: false };
    build_on(target, file, options, cache_root).map(ModelSession)
}

/// A CPU session with ONNX Runtime's defaults but for the thread count (benchmarks and tests of
/// the raw runtime).
pub fn build_session(path: &Path, intra_threads: usize) -> Result<(ModelSession, SessionShape), EngineError> {
    let options = ProviderOptions { intra_threads, ..ProviderOptions::default() };
    let target = Target { provider: Provider::Cpu, gpu: None, varying_shapes: false, intra_threads: None, solo: false };
    let session =
        build_on(target, path, &options, path.parent().unwrap_or(Path::new("."))).map_err(|e| broken(path, e))?;
    let shape = SessionShape::of(&session, path)?;
    Ok((ModelSession(session), shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_config(device: OpenVinoDevice, threads: usize) -> serde_json::Value {
        let options = ProviderOptions { openvino_device: device, ..ProviderOptions::default() };
        let config = openvino_options("OpenVINOExecutionProvider", &options, threads, None);
        assert_eq!(config.len(), 1);
        assert_eq!(config[0].0, "OpenVINOExecutionProvider.load_config");
        serde_json::from_str(&config[0].1).unwrap()
    }

    /// Pinned, two instances' threads share the first core; the CPU device alone knows the property.
    #[test]
    fn openvinos_cpu_threads_are_not_pinned_and_other_devices_are_not_told() {
        let cpu = load_config(OpenVinoDevice::Cpu, 1);
        assert_eq!(cpu["CPU"]["ENABLE_CPU_PINNING"], serde_json::json!(false), "{cpu}");
        assert_eq!(cpu["CPU"]["INFERENCE_NUM_THREADS"], serde_json::json!(1), "{cpu}");
        let gpu = load_config(OpenVinoDevice::Gpu, 0);
        assert!(gpu["GPU"].get("ENABLE_CPU_PINNING").is_none(), "{gpu}");
        let auto = load_config(OpenVinoDevice::Auto, 0);
        assert_eq!(auto["CPU"]["ENABLE_CPU_PINNING"], serde_json::json!(false), "{auto}");
        assert!(auto["NPU"].get("ENABLE_CPU_PINNING").is_none(), "{auto}");
    }
}
