//! The process-wide ONNX Runtime environment, loaded from `ORT_DYLIB_PATH` (ort's `load-dynamic`),
//! and the start-up check of each listed execution provider: can its libraries be loaded and does
//! it register, so that a provider that cannot work is named, with its cause, before any model loads.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;

use crate::provider::{OpenVinoDevice, Provider, ProviderOptions};
use crate::EngineError;

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
static VERSION: OnceLock<String> = OnceLock::new();

/// What `/info` reports about the runtime.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuntimeInfo {
    pub library: String,
    /// The providers this server can use, in the deployment's order of preference.
    pub execution_providers: Vec<String>,
    /// Listed providers that cannot be used here, with the cause.
    pub unavailable_providers: Vec<UnavailableProvider>,
    /// The intra-op threads a CPU session's run may use.
    pub intra_op_threads: IntraOpThreads,
}

/// Whether CPU sessions share one intra-op pool, and how many threads one run may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IntraOpThreads {
    pub shared: bool,
    /// Per instance's run.
    pub threads: usize,
    /// Of a run that finds its model otherwise idle (all the cores with `ADAPTIVE_EXECUTION`).
    pub alone: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UnavailableProvider {
    pub execution_provider: String,
    pub cause: String,
}

/// The intra-op thread pool every CPU session shares, where the deployment fixes no per-session
/// thread count: a request alone gets all its threads, and requests running at once share them
/// instead of each instance owning a fixed slice of the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedThreads {
    /// Threads one run may use, the caller's included.
    pub threads: usize,
    /// Whether its waiting threads spin (`ORT_INTRA_OP_SPINNING`).
    pub spinning: bool,
}

static SHARED_THREADS: OnceLock<Option<SharedThreads>> = OnceLock::new();

/// The shared pool, where the environment has one.
pub fn shared_threads() -> Option<SharedThreads> {
    SHARED_THREADS.get().copied().flatten()
}

/// Loads the library and builds the environment. `ort::init_from` (not `ort::init`) so a missing or
/// wrong library is an error the server reports at start-up instead of a panic at the first request.
pub fn init_runtime(dylib_path: &Path) -> Result<&'static Environment, EngineError> {
    init_runtime_with(dylib_path, None)
}

/// [`init_runtime`] with the sessions' shared thread pool, when `shared` is given. The first call
/// builds the environment; later ones return it as it is.
pub fn init_runtime_with(
    dylib_path: &Path,
    shared: Option<SharedThreads>,
) -> Result<&'static Environment, EngineError> {
    let runtime_error = |reason: String| EngineError::Runtime { path: dylib_path.display().to_string(), reason };
    if ENVIRONMENT.get().is_none() {
        if !dylib_path.is_file() {
            return Err(runtime_error(
                "no such file (run `make setup`, or point ORT_DYLIB_PATH at libonnxruntime.so.1.31.x)".into(),
            ));
        }
        let builder = ort::init_from(dylib_path).map_err(|e| runtime_error(e.to_string()))?;
        let _ = VERSION.set(read_version(dylib_path).map_err(runtime_error)?);
        // Before any load runs, from this (normal-priority) thread: see `threads`.
        super::threads::start_spawner();
        let mut builder = builder.with_name("sightline");
        if let Some(pool) = shared {
            let options = ort::environment::GlobalThreadPoolOptions::default()
                .with_intra_threads(pool.threads)
                // Sessions run their graphs sequentially: an inter-op pool would only sleep.
                .and_then(|o| o.with_inter_threads(1))
                .and_then(|o| o.with_spin_control(pool.spinning))
                .and_then(|o| o.with_thread_manager(super::threads::ServingThreads))
                .map_err(|e| runtime_error(e.to_string()))?;
            builder = builder.with_global_thread_pool(options);
        }
        let environment = builder.build().map_err(|e| runtime_error(e.to_string()))?;
        let _ = SHARED_THREADS.set(shared);
        let _ = ENVIRONMENT.set(environment);
    }
    environment()
}

/// The library's own version string (`1.31.1`), from `OrtGetApiBase()->GetVersionString()`.
fn read_version(dylib_path: &Path) -> Result<String, String> {
    // SAFETY: the library is already loaded by ort with these symbols; the version string is a
    // static NUL-terminated string owned by the library, which stays loaded for the process.
    unsafe {
        let library = libloading::Library::new(dylib_path).map_err(|e| e.to_string())?;
        let base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            library.get(b"OrtGetApiBase").map_err(|e| e.to_string())?;
        let base = base();
        if base.is_null() {
            return Err("OrtGetApiBase returned null".into());
        }
        let version = std::ffi::CStr::from_ptr(((*base).GetVersionString)());
        Ok(version.to_string_lossy().into_owned())
    }
}

/// ONNX Runtime's version, once `init_runtime` has succeeded.
pub fn runtime_version() -> &'static str {
    VERSION.get().map_or("unknown", String::as_str)
}

/// The environment, once `init_runtime` has succeeded.
pub fn environment() -> Result<&'static Environment, EngineError> {
    ENVIRONMENT.get().ok_or_else(|| EngineError::Runtime {
        path: std::env::var("ORT_DYLIB_PATH").unwrap_or_default(),
        reason: "ONNX Runtime is not initialised".into(),
    })
}

/// The CUDA 13 / cuDNN 9 runtime libraries the CUDA provider needs, dependencies first (checked by
/// opening each file of the `make setup-gpu` layout in turn). `false`: loaded when present, not required.
const CUDA_RUNTIME_LIBRARIES: &[(&str, bool)] = &[
    ("libcudart.so.13", true),
    ("libnvJitLink.so.13", false),
    ("libcublasLt.so.13", true),
    ("libcublas.so.13", true),
    // nvrtc and cuFFT open these by name at run time, and have no RUNPATH: preloading is how they are found.
    ("libnvrtc-builtins.so.13.0", false),
    ("libnvrtc.so.13", true),
    ("libcurand.so.10", true),
    ("libcufft.so.12", true),
    ("libcudnn.so.9", true),
    ("libcudnn_graph.so.9", true),
    ("libcudnn_engines_precompiled.so.9", false),
    ("libcudnn_engines_runtime_compiled.so.9", false),
    ("libcudnn_heuristic.so.9", false),
    ("libcudnn_ops.so.9", true),
    ("libcudnn_cnn.so.9", false),
    ("libcudnn_adv.so.9", false),
    ("libcudnn_engines_tensor_ir.so.9", false),
    ("libcudnn_ext.so.9", false),
];

const SETUP_GPU: &str = "run `make setup-gpu` and set ORT_DYLIB_PATH to .cache/onnxruntime-gpu-1.31.1/libonnxruntime.so.1.31.1 (the GPU image has it)";

/// Why `provider` cannot be used on this host, or `None` when it registers.
pub fn probe_provider(
    provider: Provider,
    dylib_path: &Path,
    options: &ProviderOptions,
    gpu_count: u32,
) -> Option<String> {
    let result = match provider {
        Provider::Cpu => Ok(()),
        Provider::Cuda => probe_cuda(dylib_path, options, gpu_count),
        Provider::TensorRt => probe_cuda(dylib_path, options, gpu_count).and_then(|()| probe_tensorrt(dylib_path)),
        Provider::OpenVino => probe_openvino(options),
    };
    result.err()
}

fn beside(dylib_path: &Path, name: &str) -> PathBuf {
    dylib_path.parent().unwrap_or(Path::new(".")).join(name)
}

fn probe_cuda(dylib_path: &Path, options: &ProviderOptions, gpu_count: u32) -> Result<(), String> {
    let provider_library = beside(dylib_path, "libonnxruntime_providers_cuda.so");
    if !provider_library.is_file() {
        return Err(format!(
            "{} is missing, so {} is not a CUDA build of ONNX Runtime: {SETUP_GPU}",
            provider_library.display(),
            dylib_path.display()
        ));
    }
    ort::util::preload_dylib("libcuda.so.1").map_err(|e| {
        format!(
            "the NVIDIA driver's libcuda.so.1 cannot be loaded ({e}): install the NVIDIA driver on the host, and start containers with `--gpus all` (NVIDIA Container Toolkit)"
        )
    })?;
    if gpu_count == 0 {
        return Err(
            "the NVIDIA driver is present but NVML reports no GPU (check CUDA_VISIBLE_DEVICES and DEVICE_IDS)".into()
        );
    }
    preload_cuda_runtime(&options.cuda_library_dirs)?;
    register_check(ort::ep::CUDA::default().build().error_on_failure())
}

/// Preloads the CUDA runtime from `dirs` (first folder holding each file wins), so the binary finds
/// it without a system CUDA install or `LD_LIBRARY_PATH`; with no folders, the loader's own search.
pub fn preload_cuda_runtime(dirs: &[PathBuf]) -> Result<(), String> {
    for &(name, required) in CUDA_RUNTIME_LIBRARIES {
        let found = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
        let outcome = match (&found, dirs.is_empty()) {
            (Some(path), _) => ort::util::preload_dylib(path).map_err(|e| e.to_string()),
            (None, true) => ort::util::preload_dylib(name).map_err(|e| e.to_string()),
            (None, false) => Err(format!("not in {}", join_dirs(dirs))),
        };
        match outcome {
            Ok(()) => {}
            Err(e) if required => {
                return Err(format!(
                    "the CUDA runtime library {name} cannot be loaded ({e}): run `make setup-gpu` (CUDA 13 and cuDNN 9 from NVIDIA's PyPI wheels) and point CUDA_LIB_DIR at its cuda/ folder"
                ))
            }
            Err(e) => tracing::debug!(library = name, error = %e, "optional CUDA library not preloaded"),
        }
    }
    Ok(())
}

fn join_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":")
}

fn probe_tensorrt(dylib_path: &Path) -> Result<(), String> {
    let provider_library = beside(dylib_path, "libonnxruntime_providers_tensorrt.so");
    if !provider_library.is_file() {
        return Err(format!("{} is missing: {SETUP_GPU}", provider_library.display()));
    }
    tensorrt_version().map_err(|e| {
        format!(
            "TensorRT's libnvinfer.so.10 cannot be loaded ({e}): install PyPI tensorrt-cu13-libs (over 1 GB, not in the images) and add its folder to CUDA_LIB_DIR"
        )
    })?;
    register_check(ort::ep::TensorRT::default().build().error_on_failure())
}

/// TensorRT's version as `major.minor.patch`, from `getInferLibVersion` of `libnvinfer.so.10`.
pub fn tensorrt_version() -> Result<String, String> {
    // SAFETY: libnvinfer's initialisers have no preconditions; the symbol is TensorRT's documented
    // `int32_t getInferLibVersion()`, and the library stays loaded for the process (ONNX Runtime uses it).
    unsafe {
        let library = libloading::Library::new("libnvinfer.so.10").map_err(|e| e.to_string())?;
        let version: libloading::Symbol<unsafe extern "C" fn() -> i32> =
            library.get(b"getInferLibVersion\0").map_err(|e| e.to_string())?;
        let v = version();
        std::mem::forget(library);
        Ok(format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100))
    }
}

/// Registers `ep` on a throwaway session builder: this is where ONNX Runtime loads the provider's
/// library and reports what it lacks.
fn register_check(ep: ort::ep::ExecutionProviderDispatch) -> Result<(), String> {
    let env = environment().map_err(|e| e.to_string())?;
    let name = ep.name();
    Session::builder(env)
        .and_then(|b| b.with_execution_providers([ep]).map_err(ort::Error::from))
        .map(|_| ())
        .map_err(|e| format!("ONNX Runtime refused to register {name}: {e}"))
}

/// The registration name of the OpenVINO plugin library in the environment.
const OPENVINO_REGISTRATION: &str = "sightline-openvino";
static OPENVINO_REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

fn probe_openvino(options: &ProviderOptions) -> Result<(), String> {
    register_openvino(&options.openvino_library)?;
    openvino_device(options.openvino_device).map(|_| ())
}

/// Registers the plugin library once per process.
pub fn register_openvino(library: &Path) -> Result<(), String> {
    OPENVINO_REGISTERED
        .get_or_init(|| {
            if !library.is_file() {
                return Err(format!(
                    "the OpenVINO plugin {} is missing: run `make setup` (it installs PyPI onnxruntime-ep-openvino 1.8.1 into .cache/), or set OPENVINO_EP_LIBRARY",
                    library.display()
                ));
            }
            let env = environment().map_err(|e| e.to_string())?;
            env.register_ep_library(OPENVINO_REGISTRATION, library)
                .map_err(|e| format!("ONNX Runtime refused the OpenVINO plugin {}: {e}", library.display()))
        })
        .clone()
}

/// The plugin's device for `wanted` (`OPENVINO_DEVICE`).
/// ONNX Runtime's own CPU provider as a device. A CPU session names it explicitly: ort gives every
/// session builder an automatic device policy, under which a registered plugin offering a CPU
/// device (OpenVINO) would otherwise take the graph of a session reported as the CPU provider's.
pub fn cpu_device() -> Result<ort::device::Device<'static>, String> {
    let env = environment().map_err(|e| e.to_string())?;
    env.devices()
        .find(|d| d.ep().is_ok_and(|ep| ep == Provider::Cpu.ort_name()))
        .ok_or_else(|| "ONNX Runtime offers no CPUExecutionProvider device".into())
}

pub fn openvino_device(wanted: OpenVinoDevice) -> Result<ort::device::Device<'static>, String> {
    use ort::memory::DeviceType;
    let env = environment().map_err(|e| e.to_string())?;
    let ty = match wanted {
        OpenVinoDevice::Cpu => Some(DeviceType::CPU),
        OpenVinoDevice::Gpu => Some(DeviceType::GPU),
        OpenVinoDevice::Npu => Some(DeviceType::NPU),
        OpenVinoDevice::Auto => None,
    };
    let mut seen = Vec::new();
    for device in env.devices() {
        let Ok(ep) = device.ep() else { continue };
        if !ep.starts_with(Provider::OpenVino.ort_name()) {
            continue;
        }
        let hardware = device.hardware_device().ty();
        seen.push(format!("{ep} on {hardware:?}"));
        let matches = match ty {
            Some(ty) => ep == Provider::OpenVino.ort_name() && hardware == ty,
            None => ep.ends_with(".AUTO"),
        };
        if matches {
            return Ok(device);
        }
    }
    Err(format!(
        "the OpenVINO plugin offers no {} device here (OPENVINO_DEVICE; it offers {}; it offers devices on Intel hardware only, and this CPU is {})",
        wanted.name(),
        if seen.is_empty() { "none".into() } else { seen.join(", ") },
        cpu_vendor()
    ))
}

/// `vendor_id` of `/proc/cpuinfo`, e.g. `GenuineIntel` or `AuthenticAMD`.
fn cpu_vendor() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("vendor_id").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| "unknown".into())
}
