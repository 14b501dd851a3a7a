//! Execution providers: the names users write, the options each takes, and the ordered list a
//! deployment chooses (`EXECUTION_PROVIDERS`, or Roboflow's `ONNXRUNTIME_EXECUTION_PROVIDERS`).

use std::fmt;
use std::path::PathBuf;

/// The providers Sightline can build sessions with. Order here means nothing; the deployment's list does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    TensorRt,
    Cuda,
    OpenVino,
    Cpu,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Provider::TensorRt, Provider::Cuda, Provider::OpenVino, Provider::Cpu];

    /// ONNX Runtime's name, which is what the server reports.
    pub const fn ort_name(self) -> &'static str {
        match self {
            Provider::TensorRt => "TensorrtExecutionProvider",
            Provider::Cuda => "CUDAExecutionProvider",
            Provider::OpenVino => "OpenVINOExecutionProvider",
            Provider::Cpu => "CPUExecutionProvider",
        }
    }

    /// The name in `EXECUTION_PROVIDERS`.
    pub const fn key(self) -> &'static str {
        match self {
            Provider::TensorRt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::OpenVino => "openvino",
            Provider::Cpu => "cpu",
        }
    }

    /// Runs on an NVIDIA GPU (placed with `DEVICE_IDS`, memory read through NVML).
    pub const fn is_gpu(self) -> bool {
        matches!(self, Provider::TensorRt | Provider::Cuda)
    }

    /// Runs on this host's cores, which instances divide and a solo session takes whole: the CPU
    /// provider, and OpenVINO on its CPU device (`openvino_device`).
    pub fn on_host_cores(self, openvino_device: OpenVinoDevice) -> bool {
        match self {
            Provider::Cpu => true,
            Provider::OpenVino => openvino_device == OpenVinoDevice::Cpu,
            Provider::Cuda | Provider::TensorRt => false,
        }
    }

    /// Either our short name or ONNX Runtime's, in any case.
    fn from_name(name: &str) -> Option<Provider> {
        let lower = name.to_ascii_lowercase();
        let short = lower.strip_suffix("executionprovider").unwrap_or(&lower);
        Provider::ALL.into_iter().find(|p| p.key() == short)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A parsed provider list: what Sightline will try, in order, and the ONNX Runtime providers the
/// list named that Sightline does not build (CoreML, DirectML, ... in a copied Roboflow setting),
/// which the server logs and skips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderList {
    pub providers: Vec<Provider>,
    pub skipped: Vec<String>,
}

/// Parses `cuda,openvino,cpu` or Roboflow's `[CUDAExecutionProvider,OpenVINOExecutionProvider,CPUExecutionProvider]`
/// (brackets, quotes and spaces optional; either spelling in either variable). Repeats are dropped.
pub fn parse_provider_list(text: &str) -> Result<ProviderList, String> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let mut list = ProviderList { providers: Vec::new(), skipped: Vec::new() };
    for raw in inner.split(',') {
        let name = raw.trim().trim_matches(|c| c == '\'' || c == '"').trim();
        if name.is_empty() {
            continue;
        }
        match Provider::from_name(name) {
            Some(p) if !list.providers.contains(&p) => list.providers.push(p),
            Some(_) => {}
            None if name.ends_with("ExecutionProvider") => list.skipped.push(name.to_owned()),
            None => {
                return Err(format!(
                    "unknown execution provider {name:?}: use tensorrt, cuda, openvino or cpu (or ONNX Runtime's names)"
                ))
            }
        }
    }
    if list.providers.is_empty() {
        return Err(format!("no usable execution provider in {text:?}: use tensorrt, cuda, openvino or cpu"));
    }
    Ok(list)
}

/// `EXECUTION_PROVIDERS` when set, else Roboflow's `ONNXRUNTIME_EXECUTION_PROVIDERS`, else `default`.
pub fn choose_provider_list(ours: Option<&str>, roboflow: Option<&str>, default: &str) -> Result<ProviderList, String> {
    match (ours.filter(|s| !s.trim().is_empty()), roboflow.filter(|s| !s.trim().is_empty())) {
        (Some(v), _) => parse_provider_list(v).map_err(|e| format!("EXECUTION_PROVIDERS: {e}")),
        (None, Some(v)) => parse_provider_list(v).map_err(|e| format!("ONNXRUNTIME_EXECUTION_PROVIDERS: {e}")),
        (None, None) => parse_provider_list(default),
    }
}

/// How the CUDA provider's memory arena grows (ONNX Runtime's `arena_extend_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArenaStrategy {
    /// Doubling: fewer, larger allocations (ONNX Runtime's default).
    #[default]
    NextPowerOfTwo,
    /// Exactly what is asked: tighter memory, more allocations.
    SameAsRequested,
}

/// Which OpenVINO device a session runs on (`OPENVINO_DEVICE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenVinoDevice {
    #[default]
    Cpu,
    Gpu,
    Npu,
    /// OpenVINO's AUTO plugin picks (and may switch) devices itself.
    Auto,
}

impl OpenVinoDevice {
    pub const fn name(self) -> &'static str {
        match self {
            OpenVinoDevice::Cpu => "CPU",
            OpenVinoDevice::Gpu => "GPU",
            OpenVinoDevice::Npu => "NPU",
            OpenVinoDevice::Auto => "AUTO",
        }
    }
}

/// OpenVINO's inference precision (`OPENVINO_PRECISION`). Its CPU plugin defaults to bf16 on CPUs
/// with AMX, which moves boxes; f32 answers as the CPU provider does, so it is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenVinoPrecision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl OpenVinoPrecision {
    pub const fn name(self) -> &'static str {
        match self {
            OpenVinoPrecision::F32 => "f32",
            OpenVinoPrecision::Bf16 => "bf16",
            OpenVinoPrecision::F16 => "f16",
        }
    }
}

/// `FromStr` for the settings' values, so the server's config parses them without a copy of each enum.
fn parse_choice<T: Copy>(text: &str, choices: &[(&str, T)], setting: &str) -> Result<T, String> {
    let wanted = text.trim().to_ascii_lowercase().replace('-', "_");
    choices.iter().find(|(name, _)| *name == wanted).map(|&(_, v)| v).ok_or_else(|| {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        format!("{text:?} is not a {setting}: use one of {}", names.join(", "))
    })
}

impl std::str::FromStr for ArenaStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let choices = [
            ("next_power_of_two", ArenaStrategy::NextPowerOfTwo),
            ("same_as_requested", ArenaStrategy::SameAsRequested),
        ];
        parse_choice(s, &choices, "CUDA arena strategy")
    }
}

impl std::str::FromStr for OpenVinoDevice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let choices = [
            ("cpu", OpenVinoDevice::Cpu),
            ("gpu", OpenVinoDevice::Gpu),
            ("npu", OpenVinoDevice::Npu),
            ("auto", OpenVinoDevice::Auto),
        ];
        parse_choice(s, &choices, "OpenVINO device")
    }
}

impl std::str::FromStr for OpenVinoPrecision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let choices =
            [("f32", OpenVinoPrecision::F32), ("bf16", OpenVinoPrecision::Bf16), ("f16", OpenVinoPrecision::F16)];
        parse_choice(s, &choices, "OpenVINO precision")
    }
}

/// Everything the providers are configured with: one struct, filled from the server's config.
#[derive(Debug, Clone, Default)]
pub struct ProviderOptions {
    /// ONNX Runtime intra-op threads per session; 0 = ONNX Runtime's default.
    pub intra_threads: usize,
    /// Whether ONNX Runtime's waiting pool threads spin (`session.intra_op.allow_spinning`).
    pub intra_spinning: bool,
    /// CPU sessions start from ONNX Runtime's optimised graph saved in the model's cache entry.
    pub optimized_graph_cache: bool,
    /// CPU sessions run the graph with Sightline's exact rewrites (`graph_rewrite`); off, they run
    /// it as ONNX Runtime alone would (the benchmarks' raw baseline).
    pub graph_rewrites: bool,
    /// GPUs models may be placed on; empty = every visible GPU.
    pub device_ids: Vec<u32>,
    /// Bytes each CUDA session's arena may hold; `None` = no limit.
    pub cuda_memory_limit: Option<usize>,
    pub cuda_arena_strategy: ArenaStrategy,
    /// Folders searched for the CUDA 13 / cuDNN 9 runtime libraries, which are preloaded before the
    /// first CUDA session; empty = the dynamic loader's own search.
    pub cuda_library_dirs: Vec<PathBuf>,
    pub tensorrt_fp16: bool,
    /// `libonnxruntime_providers_openvino_plugin.so` (OpenVINO's own libraries beside it).
    pub openvino_library: PathBuf,
    pub openvino_device: OpenVinoDevice,
    pub openvino_precision: OpenVinoPrecision,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn providers(text: &str) -> Vec<Provider> {
        parse_provider_list(text).unwrap().providers
    }

    #[test]
    fn our_short_names_in_order() {
        assert_eq!(providers("cuda,cpu"), [Provider::Cuda, Provider::Cpu]);
        assert_eq!(providers(" tensorrt , CUDA,openvino,cpu "), Provider::ALL);
        assert_eq!(providers("openvino"), [Provider::OpenVino]);
        assert_eq!(providers("cpu,cpu,cuda"), [Provider::Cpu, Provider::Cuda], "repeats dropped");
    }

    #[test]
    fn roboflow_list_format() {
        assert_eq!(
            providers("[CUDAExecutionProvider,OpenVINOExecutionProvider,CPUExecutionProvider]"),
            [Provider::Cuda, Provider::OpenVino, Provider::Cpu]
        );
        // Python's repr of a list, and TensorRT in either capitalisation.
        assert_eq!(
            providers("['TensorrtExecutionProvider', 'TensorRTExecutionProvider', \"CPUExecutionProvider\"]"),
            [Provider::TensorRt, Provider::Cpu]
        );
        // Roboflow's own default names CoreML, which Sightline does not build: skipped, not an error.
        let list = parse_provider_list(
            "[CUDAExecutionProvider,OpenVINOExecutionProvider,CoreMLExecutionProvider,CPUExecutionProvider]",
        )
        .unwrap();
        assert_eq!(list.providers, [Provider::Cuda, Provider::OpenVino, Provider::Cpu]);
        assert_eq!(list.skipped, ["CoreMLExecutionProvider"]);
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        let e = parse_provider_list("cuda,gpu").unwrap_err();
        assert!(e.contains("\"gpu\"") && e.contains("tensorrt, cuda, openvino or cpu"), "{e}");
        assert!(parse_provider_list("[]").unwrap_err().contains("no usable"));
        assert!(parse_provider_list("[CoreMLExecutionProvider]").is_err(), "nothing left to try");
    }

    #[test]
    fn setting_values_parse_in_any_case() {
        assert_eq!("GPU".parse::<OpenVinoDevice>(), Ok(OpenVinoDevice::Gpu));
        assert_eq!("auto".parse::<OpenVinoDevice>(), Ok(OpenVinoDevice::Auto));
        assert_eq!("BF16".parse::<OpenVinoPrecision>(), Ok(OpenVinoPrecision::Bf16));
        assert_eq!("same-as-requested".parse::<ArenaStrategy>(), Ok(ArenaStrategy::SameAsRequested));
        let e = "fp8".parse::<OpenVinoPrecision>().unwrap_err();
        assert!(e.contains("f32, bf16, f16"), "{e}");
    }

    #[test]
    fn ours_wins_over_roboflows_which_wins_over_the_default() {
        let chosen = |a, b| choose_provider_list(a, b, "openvino,cpu").unwrap().providers;
        assert_eq!(chosen(Some("cpu"), Some("[CUDAExecutionProvider]")), [Provider::Cpu]);
        assert_eq!(chosen(None, Some("[CUDAExecutionProvider,CPUExecutionProvider]")), [Provider::Cuda, Provider::Cpu]);
        assert_eq!(chosen(Some(" "), None), [Provider::OpenVino, Provider::Cpu], "empty = unset");
        let e = choose_provider_list(None, Some("[Nope]"), "cpu").unwrap_err();
        assert!(e.starts_with("ONNXRUNTIME_EXECUTION_PROVIDERS:"), "{e}");
    }
}
