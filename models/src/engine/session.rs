//! Sessions: built on the first execution provider of the deployment's list that registers and
//! passes the model's load-time test inference, with every provider that could not be used logged
//! with its cause. A model's sessions share one placement (one GPU for all of an OCR pipeline).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ndarray::{Array4, ArrayD};
use std::sync::atomic::{AtomicU64, Ordering};

use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{RunOptions, Session};
use ort::value::TensorRef;
use sightline_core::{DevicePlacer, GpuSnapshot};

use super::cache_dirs::{openvino_cache_dir, optimized_graph_path, tensorrt_cache_dir};
use super::environment::{cpu_device, environment, openvino_device, runtime_version, tensorrt_version};
use super::provider::{ArenaStrategy, OpenVinoDevice, Provider, ProviderOptions};
use super::threads::ServingThreads;
use crate::ModelError;

pub type Outputs = Vec<ArrayD<f32>>;

/// Static facts about a session's single input and its outputs; `-1` marks a symbolic dimension.
#[derive(Debug, Clone)]
pub struct SessionShape {
    /// Task models take one input; the protocol's models any number (the first is described here).
    pub input_count: usize,
    pub input_name: String,
    pub input_dims: Vec<i64>,
    pub output_names: Vec<String>,
    pub output_dims: Vec<Vec<i64>>,
}

fn broken(path: &Path, reason: String) -> ModelError {
    ModelError::BrokenModel { file: path.to_path_buf(), reason }
}

impl SessionShape {
    fn of(session: &Session, path: &Path) -> Result<SessionShape, ModelError> {
        let Some(input) = session.inputs().first() else {
            return Err(broken(path, "the model has no input".into()));
        };
        let dims = |t: &ort::value::ValueType| t.tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
        Ok(SessionShape {
            input_count: session.inputs().len(),
            input_name: input.name().to_owned(),
            input_dims: dims(input.dtype()),
            output_names: session.outputs().iter().map(|o| o.name().to_owned()).collect(),
            output_dims: session.outputs().iter().map(|o| dims(o.dtype())).collect(),
        })
    }

    /// `(width, height)` of a `(batch, 3, height, width)` input with a fixed height and width.
    pub fn fixed_input_size(&self, file: &Path) -> Result<(u32, u32), ModelError> {
        let fixed = |d: i64| u32::try_from(d).ok().filter(|&d| d > 0);
        match self.input_dims.as_slice() {
            [_, 3, h, w] => match (fixed(*w), fixed(*h)) {
                (Some(w), Some(h)) => Ok((w, h)),
                _ => Err(broken(file, format!("input {:?} must have a fixed height and width", self.input_dims))),
            },
            dims => Err(broken(file, format!("input must be (batch, 3, height, width), found {dims:?}"))),
        }
    }

    /// The fixed batch size, or `None` for a symbolic batch axis.
    pub fn batch_size(&self) -> Option<usize> {
        self.input_dims.first().and_then(|&b| usize::try_from(b).ok()).filter(|&b| b > 0)
    }
}

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
    let (provider, varying_shapes, intra_threads) = (target.provider, target.varying_shapes, target.intra_threads);
    let (reply, built) = std::sync::mpsc::sync_channel(1);
    super::threads::spawn_serving("openvino-compile".into(), move || {
        let target = Target { provider, gpu: None, varying_shapes, intra_threads };
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
    let intra_threads = target.intra_threads.unwrap_or(options.intra_threads);
    if intra_threads > 0 {
        builder = builder.with_intra_threads(intra_threads).map_err(|e| e.to_string())?;
    }
    // Spinning keeps a waiting intra-op thread busy for a while after each operator: it buys a
    // little latency with a core that decoding and pre-processing need (docs/benchmarks.md).
    builder = builder.with_intra_op_spinning(options.intra_spinning).map_err(|e| e.to_string())?;
    builder = builder.with_inter_op_spinning(options.intra_spinning).map_err(|e| e.to_string())?;
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
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let trt = ort::ep::TensorRT::default()
                .with_device_id(gpu as i32)
                .with_fp16(options.tensorrt_fp16)
                .with_engine_cache(true)
                .with_engine_cache_path(dir.display())
                .with_timing_cache(true)
                .with_timing_cache_path(dir.display())
                .build()
                .error_on_failure();
            let engines_before = count_engines(&dir);
            tensorrt_dir = Some((dir, engines_before));
            // Nodes TensorRT does not take run on CUDA, not on the CPU.
            builder.with_execution_providers([trt, cuda(options, gpu)]).map_err(|e| e.to_string())?
        }
        Provider::OpenVino => {
            let device = openvino_device(options.openvino_device)?;
            let dir = openvino_cache_dir(cache_root, options.openvino_device, options.openvino_precision);
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let config = openvino_options(device.ep().map_err(|e| e.to_string())?, options, intra_threads, &dir);
            // A session reported as OpenVINO runs wholly on OpenVINO: a model with nodes it cannot
            // take fails here and is built on the next provider instead, with the cause logged.
            let builder =
                builder.with_config_entry("session.disable_cpu_ep_fallback", "1").map_err(|e| e.to_string())?;
            builder.with_devices([device], Some(&config)).map_err(|e| e.to_string())?
        }
    };
    let started = Instant::now();
    let session = if target.provider == Provider::Cpu && options.optimized_graph_cache {
        commit_cached(builder, file, &optimized_graph_path(cache_root, file, runtime_version()))?
    } else {
        builder.commit_from_file(file).map_err(|e| format!("not a loadable ONNX model: {e}"))?
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

/// Starts the session from ONNX Runtime's optimised graph saved by an earlier load, or builds it
/// from `file` and saves that graph (written aside, then renamed, so a crash leaves no half file).
/// A saved graph that no longer loads is deleted and rebuilt.
fn commit_cached(mut builder: SessionBuilder, file: &Path, cached: &Path) -> Result<Session, String> {
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
    let not_loadable = |e: ort::Error| format!("not a loadable ONNX model: {e}");
    let Some(dir) = cached.parent().filter(|d| std::fs::create_dir_all(d).is_ok()) else {
        return builder.commit_from_file(file).map_err(not_loadable);
    };
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let aside = dir.join(format!(".saving-{}-{}", std::process::id(), SERIAL.fetch_add(1, Ordering::Relaxed)));
    let saving = builder.clone().with_optimized_model_path(&aside).map_err(|e| e.to_string())?.commit_from_file(file);
    let session = match saving {
        Ok(session) => session,
        // A graph holding nodes compiled by a provider cannot be saved; the session still serves.
        Err(e) if e.to_string().contains("serialize") => {
            tracing::warn!(file = %file.display(), cause = %e, "cannot save the optimised graph");
            let _ = std::fs::remove_file(&aside);
            return builder.commit_from_file(file).map_err(not_loadable);
        }
        Err(e) => return Err(not_loadable(e)),
    };
    if let Err(e) = std::fs::rename(&aside, cached) {
        tracing::warn!(cached = %cached.display(), cause = %e, "cannot save the optimised graph");
        let _ = std::fs::remove_file(&aside);
    }
    Ok(session)
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
    cache_dir: &Path,
) -> Vec<(String, String)> {
    let mut properties = serde_json::json!({
        "INFERENCE_PRECISION_HINT": options.openvino_precision.name(),
        "CACHE_DIR": cache_dir.display().to_string(),
    });
    if threads > 0 {
        properties["INFERENCE_NUM_THREADS"] = serde_json::json!(threads);
    }
    // AUTO hands each property set to the device it is named for.
    let devices: &[&str] = match options.openvino_device {
        OpenVinoDevice::Auto => &["CPU", "GPU", "NPU"],
        other => &[other.name()],
    };
    let load_config: serde_json::Map<String, serde_json::Value> =
        devices.iter().map(|d| (d.to_string(), properties.clone())).collect();
    vec![(format!("{ep_name}.load_config"), serde_json::Value::Object(load_config).to_string())]
}

/// A CPU session with ONNX Runtime's defaults but for the thread count (benchmarks and tests of
/// the raw runtime).
pub fn build_session(path: &Path, intra_threads: usize) -> Result<(Session, SessionShape), ModelError> {
    let options = ProviderOptions { intra_threads, ..ProviderOptions::default() };
    let target = Target { provider: Provider::Cpu, gpu: None, varying_shapes: false, intra_threads: None };
    let session =
        build_on(target, path, &options, path.parent().unwrap_or(Path::new("."))).map_err(|e| broken(path, e))?;
    let shape = SessionShape::of(&session, path)?;
    Ok((session, shape))
}

/// Run options that hand the CPU arena's unused memory back after each run: for sessions whose
/// input shape changes with every request, whose arena would otherwise keep the largest run's
/// memory for as long as the model is loaded.
pub fn shrinking_run_options() -> Result<RunOptions, ModelError> {
    let mut options = RunOptions::new().map_err(|e| ModelError::Inference(e.to_string()))?;
    options.set("memory.enable_memory_arena_shrinkage", "cpu:0").map_err(|e| ModelError::Inference(e.to_string()))?;
    Ok(options)
}

/// Runs one batch synchronously; outputs in the session's output order.
pub fn run_session(session: &mut Session, input: &Array4<f32>) -> Result<Outputs, ModelError> {
    run_session_with(session, input, None)
}

/// As [`run_session`], with run options.
pub fn run_session_with(
    session: &mut Session,
    input: &Array4<f32>,
    options: Option<&RunOptions>,
) -> Result<Outputs, ModelError> {
    let tensor = TensorRef::from_array_view(input).map_err(|e| ModelError::Inference(e.to_string()))?;
    let names: Vec<String> = session.outputs().iter().map(|o| o.name().to_owned()).collect();
    let outputs = match options {
        Some(options) => session.run_with_options(ort::inputs![tensor], options),
        None => session.run(ort::inputs![tensor]),
    }
    .map_err(|e| ModelError::Inference(e.to_string()))?;
    names
        .iter()
        .map(|name| {
            let value =
                outputs.get(name.as_str()).ok_or_else(|| ModelError::Inference(format!("no output {name:?}")))?;
            let array =
                value.try_extract_array::<f32>().map_err(|e| ModelError::Inference(format!("output {name:?}: {e}")))?;
            Ok(array.to_owned())
        })
        .collect()
}

/// The deployment's providers (those that passed the start-up check, in its order) and their
/// options: what every model load builds its sessions with.
pub struct Engine {
    providers: Vec<Provider>,
    options: ProviderOptions,
    placer: Option<Arc<DevicePlacer>>,
    /// Sessions per model file (`MODEL_INSTANCES`).
    instances: usize,
}

impl Engine {
    pub fn new(providers: Vec<Provider>, options: ProviderOptions, placer: Option<Arc<DevicePlacer>>) -> Engine {
        Engine { providers, options, placer, instances: 1 }
    }

    /// Serves each model file with `instances` sessions. Unless the deployment fixed the intra-op
    /// thread count, the cores are divided between them, so instances do not oversubscribe them.
    pub fn with_instances(mut self, instances: usize) -> Engine {
        self.instances = instances.max(1);
        self
    }

    pub fn instances(&self) -> usize {
        self.instances
    }

    /// Intra-op threads per session when instances divide the cores; `None`: the deployment's.
    fn instance_threads(&self) -> Option<usize> {
        if self.options.intra_threads > 0 || self.instances == 1 {
            return None;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Some((cores / self.instances).max(1))
    }

    /// CPU only, ONNX Runtime's defaults but for `intra_threads`.
    pub fn cpu(intra_threads: usize) -> Engine {
        Engine::new(vec![Provider::Cpu], ProviderOptions { intra_threads, ..ProviderOptions::default() }, None)
    }

    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// Starts one model's load: a GPU is chosen now (when an NVIDIA provider is listed) and used by
    /// all the model's sessions. `cache_root` is the model's cache entry.
    pub fn for_model(&self, cache_root: &Path) -> ModelSessions<'_> {
        let gpu = match (&self.placer, self.providers.iter().any(|p| p.is_gpu())) {
            (Some(placer), true) => placer.place(),
            _ => None,
        };
        ModelSessions { engine: self, cache_root: cache_root.to_path_buf(), gpu, used: Vec::new() }
    }
}

/// What a loaded model reports about where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunsOn {
    pub execution_provider: String,
    pub device: String,
    pub vram_bytes: Option<u64>,
}

/// One model's sessions as they are built.
pub struct ModelSessions<'e> {
    engine: &'e Engine,
    cache_root: PathBuf,
    /// The GPU placed for this model, with its memory before the load.
    gpu: Option<GpuSnapshot>,
    used: Vec<(Provider, String)>,
}

impl ModelSessions<'_> {
    fn device_label(&self, provider: Provider) -> String {
        match provider {
            Provider::Cpu => "cpu".into(),
            Provider::Cuda | Provider::TensorRt => format!("cuda:{}", self.gpu.as_ref().map_or(0, |g| g.index)),
            Provider::OpenVino => format!("openvino:{}", self.engine.options.openvino_device.name()),
        }
    }

    /// Builds `file`'s session on the first provider that registers and passes `check` (the
    /// load-time test inference); each provider passed over is logged with its cause. When none
    /// works, the error is the last provider's, with the causes of the others.
    pub fn checked<T>(
        &mut self,
        file: &Path,
        varying_shapes: bool,
        mut check: impl FnMut(&mut Session, &SessionShape) -> Result<T, ModelError>,
    ) -> Result<(Session, SessionShape, T), ModelError> {
        let mut causes: Vec<(Provider, String)> = Vec::new();
        for &provider in &self.engine.providers {
            let target = Target {
                provider,
                gpu: self.gpu.as_ref(),
                varying_shapes,
                intra_threads: self.engine.instance_threads(),
            };
            let attempt = build_on(target, file, &self.engine.options, &self.cache_root)
                .map_err(|e| broken(file, e))
                .and_then(|mut session| {
                    let shape = SessionShape::of(&session, file)?;
                    let checked = check(&mut session, &shape)?;
                    Ok((session, shape, checked))
                });
            match attempt {
                Ok(built) => {
                    if !causes.is_empty() {
                        tracing::warn!(file = %file.display(), execution_provider = provider.ort_name(), "session fell back to {provider}");
                    }
                    self.used.push((provider, self.device_label(provider)));
                    return Ok(built);
                }
                Err(e) => {
                    let cause = match &e {
                        ModelError::BrokenModel { reason, .. } => reason.clone(),
                        other => other.to_string(),
                    };
                    tracing::warn!(file = %file.display(), execution_provider = provider.ort_name(), %cause, "execution provider not used for this session");
                    causes.push((provider, cause));
                }
            }
        }
        let (_, last) = causes.pop().unwrap_or((Provider::Cpu, "no execution provider is configured".into()));
        let others: Vec<String> = causes.iter().map(|(p, c)| format!("{p}: {c}")).collect();
        let reason = if others.is_empty() { last } else { format!("{last} (also tried {})", others.join("; ")) };
        Err(broken(file, reason))
    }

    /// A session for a fixed-size `(batch, 3, height, width)` model, checked on a grey (114) image,
    /// and how many images one run of it may take (see [`batch_limit`]).
    pub fn fixed_size(&mut self, file: &Path) -> Result<FixedSizeSession, ModelError> {
        let (session, shape, (size, outputs, batch_limit)) = self.checked(file, false, |session, shape| {
            if shape.input_count != 1 {
                return Err(broken(file, format!("expected one input, found {}", shape.input_count)));
            }
            let (width, height) = shape.fixed_input_size(file)?;
            let grey = Array4::<f32>::from_elem((1, 3, height as usize, width as usize), 114.0 / 255.0);
            let outputs = test_inference(session, file, &grey)?;
            let limit = batch_limit(session, shape, file, &grey, &outputs);
            Ok(((width, height), outputs, limit))
        })?;
        Ok(FixedSizeSession { session, shape, size, outputs, batch_limit })
    }

    /// `first` and the other instances of `file` (`MODEL_INSTANCES` in all), on the provider that
    /// `first` was built on; on a GPU host each further instance is placed anew, so instances
    /// spread over the GPUs.
    pub fn instances(&mut self, file: &Path, first: Session, varying_shapes: bool) -> Result<Vec<Session>, ModelError> {
        let mut all = vec![first];
        let Some(&(provider, _)) = self.used.last() else { return Ok(all) };
        while all.len() < self.engine.instances {
            let placed = match (&self.engine.placer, provider.is_gpu()) {
                (Some(placer), true) => placer.place(),
                _ => None,
            };
            let gpu = placed.as_ref().or(self.gpu.as_ref());
            let target = Target { provider, gpu, varying_shapes, intra_threads: self.engine.instance_threads() };
            let session =
                build_on(target, file, &self.engine.options, &self.cache_root).map_err(|e| broken(file, e))?;
            let label = match (provider.is_gpu(), gpu) {
                (true, Some(g)) => format!("cuda:{}", g.index),
                _ => self.device_label(provider),
            };
            self.used.push((provider, label));
            all.push(session);
        }
        Ok(all)
    }

    /// A session for inputs whose shape changes with every request (OCR), checked with one input
    /// of `input`'s shape; returns its test outputs.
    pub fn varying_shapes(&mut self, file: &Path, input: &Array4<f32>) -> Result<(Session, Outputs), ModelError> {
        let (session, _, outputs) = self.checked(file, true, |session, _| test_inference(session, file, input))?;
        Ok((session, outputs))
    }

    /// Where the model's sessions run; on a GPU, how much device memory the load took.
    pub fn runs_on(&self) -> RunsOn {
        let mut providers: Vec<&str> = Vec::new();
        let mut devices: Vec<&str> = Vec::new();
        for (provider, device) in &self.used {
            if !providers.contains(&provider.ort_name()) {
                providers.push(provider.ort_name());
            }
            if !devices.contains(&device.as_str()) {
                devices.push(device);
            }
        }
        let on_gpu = self.used.iter().any(|(p, _)| p.is_gpu());
        let vram_bytes = match (&self.gpu, &self.engine.placer, on_gpu) {
            (Some(before), Some(placer), true) => {
                placer.snapshot(before.index).map(|after| after.used_bytes.saturating_sub(before.used_bytes))
            }
            _ => None,
        };
        RunsOn { execution_provider: providers.join("+"), device: devices.join("+"), vram_bytes }
    }
}

/// A checked session of a fixed-size model.
pub struct FixedSizeSession {
    pub session: Session,
    pub shape: SessionShape,
    /// `(width, height)` of the input.
    pub size: (u32, u32),
    /// The test inference's outputs.
    pub outputs: Outputs,
    /// The most images one run may take: 1 for a fixed batch axis.
    pub batch_limit: usize,
}

/// How many images a run of this session may take: unlimited for a symbolic batch axis whose
/// batch of two gives, per image, what one image gives; 1 otherwise (a fixed axis, or a graph
/// that does not batch along its first axis, which is logged).
fn batch_limit(session: &mut Session, shape: &SessionShape, file: &Path, one: &Array4<f32>, single: &Outputs) -> usize {
    if shape.batch_size().is_some() {
        return 1;
    }
    let mut check = || -> Result<(), String> {
        let two = super::batch::stack(&[one, one]).map_err(|e| e.to_string())?;
        let outputs = run_session(session, &two).map_err(|e| e.to_string())?;
        let parts = super::batch::split(outputs, 2).map_err(|e| e.to_string())?;
        for part in &parts {
            for (batched, alone) in part.iter().zip(single) {
                let matches = super::batch::batched_matches(batched.iter().copied(), alone.iter().copied());
                if batched.shape() != alone.shape() || matches.is_err() {
                    let worst = matches.err().unwrap_or(0.0);
                    return Err(format!("a batch of two differs from one image (relative {worst:.2e})"));
                }
            }
        }
        Ok(())
    };
    super::batch::limit_after_check(file, check())
}

/// Runs `input` once at load time, so a model that cannot infer is refused before it is served.
pub fn test_inference(session: &mut Session, path: &Path, input: &Array4<f32>) -> Result<Outputs, ModelError> {
    run_session(session, input).map_err(|e| broken(path, format!("test inference failed: {e}")))
}
