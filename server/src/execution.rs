//! Start-up of the execution providers: the deployment's list, each provider checked on this host
//! (its libraries, its registration), the GPUs and their placer, and the memory probe that matches
//! where models will live. A provider that cannot be used is logged with its cause; a list with
//! none usable stops the server with those causes.

use std::path::Path;
use std::sync::Arc;

use sightline_core::MemoryProbe;
use sightline_engine::{
    choose_provider_list, probe_provider, DevicePlacer, Engine, GpuMemoryProbe, HostMemoryProbe, NvmlSource,
    OpenVinoDevice, Provider, RuntimeInfo, UnavailableProvider,
};

use crate::config::{Config, DEFAULT_EXECUTION_PROVIDERS};
use crate::startup_error::StartupError;

/// What start-up hands the rest of the server.
pub struct Execution {
    pub engine: Arc<Engine>,
    pub runtime: RuntimeInfo,
    /// The GPUs in `DEVICE_IDS`, where NVML sees any (also without a GPU provider: metrics report them).
    pub gpus: Option<Arc<DevicePlacer>>,
    pub memory_probe: Arc<dyn MemoryProbe>,
}

pub fn start(config: &Config, dylib: &Path) -> Result<Execution, StartupError> {
    let explicit = config.execution_providers.is_some() || config.onnxruntime_execution_providers.is_some();
    let list = choose_provider_list(
        config.execution_providers.as_deref(),
        config.onnxruntime_execution_providers.as_deref(),
        DEFAULT_EXECUTION_PROVIDERS,
    )
    .map_err(StartupError::Providers)?;
    for name in &list.skipped {
        tracing::warn!(execution_provider = %name, "not an execution provider Sightline builds; skipped");
    }
    let options = config.provider_options(dylib);
    let gpus = gpu_placer(&options.device_ids)?;
    let gpu_count = gpus.as_ref().map_or(0, |p| p.devices().len() as u32);

    let mut usable = Vec::new();
    let mut unavailable = Vec::new();
    for &provider in &list.providers {
        match probe_provider(provider, dylib, &options, gpu_count) {
            None => usable.push(provider),
            Some(cause) => {
                // The default list names providers a host may well lack; only an explicit choice is a warning.
                if explicit {
                    tracing::warn!(execution_provider = provider.ort_name(), %cause, "execution provider cannot be used; models use the next one listed");
                } else {
                    tracing::info!(execution_provider = provider.ort_name(), %cause, "execution provider of the default list not available here");
                }
                unavailable.push(UnavailableProvider { execution_provider: provider.ort_name().into(), cause });
            }
        }
    }
    if usable.is_empty() {
        let causes: Vec<String> =
            unavailable.iter().map(|u| format!("{}: {}", u.execution_provider, u.cause)).collect();
        return Err(StartupError::NoProvider(causes.join("; ")));
    }
    tracing::info!(execution_providers = %usable.iter().map(|p| p.key()).collect::<Vec<_>>().join(","), "execution providers");
    let memory_probe: Arc<dyn MemoryProbe> = match (&gpus, usable[0].is_gpu()) {
        (Some(placer), true) => Arc::new(GpuMemoryProbe::new(placer.clone())),
        _ => Arc::new(HostMemoryProbe::new()),
    };
    let instances =
        instances_per_model(config.model_instances as usize, usable[0], config.openvino_device, gpus.as_deref());
    tracing::info!(instances, "sessions per model file");
    let execution_providers = usable.iter().map(|p| p.ort_name().to_owned()).collect();
    let engine = Arc::new(
        Engine::new(usable, options, gpus.clone()).with_instances(instances).with_adaptive(config.adaptive_execution),
    );
    let runtime = RuntimeInfo {
        library: dylib.display().to_string(),
        execution_providers,
        unavailable_providers: unavailable,
        intra_op_threads: engine.intra_op_threads(),
    };
    Ok(Execution { engine, runtime, gpus, memory_probe })
}

/// `MODEL_INSTANCES`, or when 0 (auto): one per GPU for the NVIDIA providers (instances spread
/// over the GPUs); two on the host's cores, with the CPU provider or OpenVINO's CPU device (each
/// with half the cores: 1.25x the throughput of one instance with all of them on the CPU provider,
/// 1.27x on OpenVINO, on the 2-core benchmark machines), one on a single core; one on OpenVINO's
/// other devices, which schedule their own work (docs/benchmarks.md).
fn instances_per_model(
    configured: usize,
    first: Provider,
    openvino_device: OpenVinoDevice,
    gpus: Option<&DevicePlacer>,
) -> usize {
    if configured > 0 {
        return configured;
    }
    match (first, gpus) {
        (Provider::Cuda | Provider::TensorRt, Some(placer)) => placer.devices().len().max(1),
        _ if first.on_host_cores(openvino_device) => std::thread::available_parallelism().map_or(1, |n| n.get()).min(2),
        _ => 1,
    }
}

/// NVML's GPUs restricted to `DEVICE_IDS`; `None` without a driver or a GPU.
fn gpu_placer(device_ids: &[u32]) -> Result<Option<Arc<DevicePlacer>>, StartupError> {
    match NvmlSource::try_new() {
        Ok(source) => {
            let placer = DevicePlacer::new(Box::new(source), device_ids).map_err(StartupError::Providers)?;
            Ok(Some(Arc::new(placer)))
        }
        Err(reason) => {
            if !device_ids.is_empty() {
                return Err(StartupError::Providers(format!("DEVICE_IDS is set, but {reason}")));
            }
            tracing::info!(%reason, "no GPU: memory pressure is read from host memory");
            Ok(None)
        }
    }
}
