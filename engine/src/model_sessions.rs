//! One model's sessions as its load builds them: on the first provider of the deployment's list
//! that registers and passes the model's test inference, all on one placement (one GPU for all of
//! an OCR pipeline), with every provider passed over logged with its cause.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Array4;

use crate::batch::{batched_matches, limit_after_check, split, stack, Outputs};
use crate::build::{build_on, Target};
use crate::environment::IntraOpThreads;
use crate::gpu::{DevicePlacer, GpuSnapshot};
use crate::provider::{Provider, ProviderOptions};
use crate::session::{broken, ModelSession, SessionShape};
use crate::EngineError;

/// The deployment's providers (those that passed the start-up check, in its order) and their
/// options: what every model load builds its sessions with.
pub struct Engine {
    providers: Vec<Provider>,
    options: ProviderOptions,
    placer: Option<Arc<DevicePlacer>>,
    /// Sessions per model file (`MODEL_INSTANCES`).
    instances: usize,
    /// Instances that divide the cores come with a solo session of all of them (`ADAPTIVE_EXECUTION`).
    adaptive: bool,
}

impl Engine {
    pub fn new(providers: Vec<Provider>, options: ProviderOptions, placer: Option<Arc<DevicePlacer>>) -> Engine {
        Engine { providers, options, placer, instances: 1, adaptive: false }
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

    /// Gives each model on the host's cores (the CPU provider, OpenVINO's CPU device) whose
    /// instances divide the cores one more session on all of them, which runs a request that finds
    /// the model otherwise idle: alone it gets every core, under load the instances share them
    /// (see [`InstanceGroup`]).
    pub fn with_adaptive(mut self, adaptive: bool) -> Engine {
        self.adaptive = adaptive;
        self
    }

    /// The solo session's thread count: every core, where instances divide them.
    fn solo_threads(&self) -> Option<usize> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let divided = self.instance_threads().filter(|&threads| threads < cores);
        (self.adaptive && divided.is_some()).then_some(cores)
    }

    /// Intra-op threads per session when instances divide the cores; `None`: the deployment's
    /// count, or the shared pool, which the instances share instead of dividing it.
    fn instance_threads(&self) -> Option<usize> {
        if self.options.intra_threads > 0 || self.instances == 1 || crate::environment::shared_threads().is_some() {
            return None;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Some((cores / self.instances).max(1))
    }

    /// What one CPU run may use: the shared pool, the deployment's count, or the cores divided
    /// between the instances (all of them for one instance, ONNX Runtime's default).
    pub fn intra_op_threads(&self) -> IntraOpThreads {
        match (crate::environment::shared_threads(), self.options.intra_threads) {
            (Some(pool), 0) => IntraOpThreads { shared: true, threads: pool.threads, alone: pool.threads },
            (_, 0) => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let threads = self.instance_threads().unwrap_or(cores);
                IntraOpThreads { shared: false, threads, alone: self.solo_threads().unwrap_or(threads) }
            }
            (_, fixed) => IntraOpThreads { shared: false, threads: fixed, alone: fixed },
        }
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
        mut check: impl FnMut(&mut ModelSession, &SessionShape) -> Result<T, EngineError>,
    ) -> Result<(ModelSession, SessionShape, T), EngineError> {
        let mut causes: Vec<(Provider, String)> = Vec::new();
        for &provider in &self.engine.providers {
            let target = Target {
                provider,
                gpu: self.gpu.as_ref(),
                varying_shapes,
                intra_threads: self.engine.instance_threads(),
                solo: false,
            };
            let attempt = build_on(target, file, &self.engine.options, &self.cache_root)
                .map(ModelSession)
                .map_err(|e| broken(file, e))
                .and_then(|mut session| {
                    let shape = SessionShape::of(&session.0, file)?;
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
                        EngineError::BrokenModel { reason, .. } => reason.clone(),
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
    pub fn fixed_size(&mut self, file: &Path) -> Result<FixedSizeSession, EngineError> {
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
    /// `first` was built on, with the solo session where the engine is adaptive; on a GPU host each
    /// further instance is placed anew, so instances spread over the GPUs.
    pub fn instances(
        &mut self,
        file: &Path,
        first: ModelSession,
        varying_shapes: bool,
    ) -> Result<InstanceGroup, EngineError> {
        let mut sessions = vec![first];
        let threads = self.engine.intra_op_threads().threads;
        let Some(&(provider, _)) = self.used.last() else { return Ok(InstanceGroup { sessions, threads, solo: None }) };
        while sessions.len() < self.engine.instances {
            let placed = match (&self.engine.placer, provider.is_gpu()) {
                (Some(placer), true) => placer.place(),
                _ => None,
            };
            let gpu = placed.as_ref().or(self.gpu.as_ref());
            let intra_threads = self.engine.instance_threads();
            let target = Target { provider, gpu, varying_shapes, intra_threads, solo: false };
            let session =
                build_on(target, file, &self.engine.options, &self.cache_root).map_err(|e| broken(file, e))?;
            let label = match (provider.is_gpu(), gpu) {
                (true, Some(g)) => format!("cuda:{}", g.index),
                _ => self.device_label(provider),
            };
            self.used.push((provider, label));
            sessions.push(ModelSession(session));
        }
        let solo = match self.engine.solo_threads() {
            Some(threads) if provider.on_host_cores(self.engine.options.openvino_device) => {
                Some(self.solo(provider, file, varying_shapes, threads)?)
            }
            _ => None,
        };
        Ok(InstanceGroup { sessions, threads, solo })
    }

    /// The solo session: all the cores, on the CPU provider its pool threads spinning while a run
    /// lasts (OpenVINO runs its own threads). Without the
    /// spinning, waking a thread for each operator costs what the second core gains a small model;
    /// spinning on after a run would take the cores from decoding (docs/benchmarks.md).
    fn solo(
        &self,
        provider: Provider,
        file: &Path,
        varying_shapes: bool,
        threads: usize,
    ) -> Result<(ModelSession, usize), EngineError> {
        let target = Target { provider, gpu: None, varying_shapes, intra_threads: Some(threads), solo: true };
        let session = build_on(target, file, &self.engine.options, &self.cache_root).map_err(|e| broken(file, e))?;
        Ok((ModelSession(session), threads))
    }

    /// A session for inputs whose shape changes with every request (OCR), checked with one input
    /// of `input`'s shape; returns its test outputs.
    pub fn varying_shapes(&mut self, file: &Path, input: &Array4<f32>) -> Result<(ModelSession, Outputs), EngineError> {
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

/// A model file's sessions: its instances, which share the cores between them, and where the
/// engine is adaptive the solo session with its thread count, which a request alone runs on.
pub struct InstanceGroup {
    pub sessions: Vec<ModelSession>,
    /// Intra-op threads of each instance (reported per run).
    pub threads: usize,
    pub solo: Option<(ModelSession, usize)>,
}

/// A checked session of a fixed-size model.
pub struct FixedSizeSession {
    pub session: ModelSession,
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
fn batch_limit(
    session: &mut ModelSession,
    shape: &SessionShape,
    file: &Path,
    one: &Array4<f32>,
    single: &Outputs,
) -> usize {
    if shape.batch_size().is_some() {
        return 1;
    }
    let mut check = || -> Result<(), String> {
        let two = stack(&[one, one]).map_err(|e| e.to_string())?;
        let outputs = session.run(&two).map_err(|e| e.to_string())?;
        let parts = split(outputs, 2).map_err(|e| e.to_string())?;
        for part in &parts {
            for (batched, alone) in part.iter().zip(single) {
                let matches = batched_matches(batched.iter().copied(), alone.iter().copied());
                if batched.shape() != alone.shape() || matches.is_err() {
                    let worst = matches.err().unwrap_or(0.0);
                    return Err(format!("a batch of two differs from one image (relative {worst:.2e})"));
                }
            }
        }
        Ok(())
    };
    limit_after_check(file, check())
}

/// Runs `input` once at load time, so a model that cannot infer is refused before it is served.
pub fn test_inference(session: &mut ModelSession, path: &Path, input: &Array4<f32>) -> Result<Outputs, EngineError> {
    session.run(input).map_err(|e| broken(path, format!("test inference failed: {e}")))
}
