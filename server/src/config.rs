//! The one configuration struct: every flag is also an environment variable (Roboflow's names where they exist).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sightline_artifacts::{
    ApiSettings, CacheOptions, HfSettings, RetryPolicy, S3Settings, SourceSettings, UrlSettings, VerifyLevel,
};
use sightline_engine::{ArenaStrategy, BatchPolicy, LoadPriority, OpenVinoDevice, OpenVinoPrecision, ProviderOptions};

/// The providers tried when neither EXECUTION_PROVIDERS nor ONNXRUNTIME_EXECUTION_PROVIDERS is set:
/// Roboflow's server's CPU order, OpenVINO where its plugin loads (Intel CPUs), else the CPU
/// provider. Measured here only through a vendor shim on AMD, where OpenVINO ran at about half
/// the CPU provider's rate (docs/benchmarks.md): set `cpu` on CPUs that are not Intel's.
pub const DEFAULT_EXECUTION_PROVIDERS: &str = "openvino,cpu";

#[derive(Debug, Parser)]
#[command(name = "sightline", version, about = "Sightline: a Roboflow-compatible computer-vision inference server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags for `serve`, also accepted without the subcommand.
    #[command(flatten)]
    pub serve: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve(Config),
    /// Download a model into MODEL_CACHE_DIR without serving it.
    Pull(PullArgs),
    /// List the models in MODEL_CACHE_DIR.
    Models(ModelsArgs),
    /// Remove a model from MODEL_CACHE_DIR.
    Rm(RmArgs),
    /// Embed image files in-process: one JSON line per file (`path`, `vector`, unit length) on
    /// stdout, for loading a vector store.
    Embed(EmbedArgs),
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// An embedding model with an image tower: a catalogue name, `clip/<version>`, or any id.
    #[arg(long)]
    pub model: String,
    /// Image files, or folders whose files (recursively, in name order) are embedded.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// `dataset/version`.
    pub model_id: String,
    /// Fetch from this source (one of MODEL_SOURCES) instead of the first that has the model.
    #[arg(long)]
    pub source: Option<String>,
    #[command(flatten)]
    pub store: StoreConfig,
    #[command(flatten)]
    pub logging: LogConfig,
}

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Hash every file instead of checking sizes only.
    #[arg(long)]
    pub verify: bool,
    /// List the embedding models Sightline knows by name (fastembed's catalogue) instead of the cache.
    #[arg(long)]
    pub catalogue: bool,
    #[command(flatten)]
    pub store: StoreConfig,
    #[command(flatten)]
    pub logging: LogConfig,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// `dataset/version`.
    pub model_id: String,
    #[command(flatten)]
    pub store: StoreConfig,
    #[command(flatten)]
    pub logging: LogConfig,
}

/// What a load checks of each cached file against its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyOnLoad {
    Sha256,
    /// Sizes only, for models too large to hash on every load.
    Size,
}

/// A credential: parsed from flags or the environment, never printed by `Debug`.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The model sources and the disk cache: what `serve`, `embed`, `pull`, `models` and `rm` share.
#[derive(Debug, Clone, Args)]
pub struct StoreConfig {
    /// Folder of model folders, one per `dataset/version` (the `local` source).
    #[arg(long, env = "MODEL_DIR", default_value = "assets/models")]
    pub model_dir: PathBuf,
    /// Verified disk cache every model is loaded from, whatever its source; may be shared by
    /// several servers (per-model file locks).
    #[arg(long, env = "MODEL_CACHE_DIR", default_value = "/tmp/sightline/models")]
    pub model_cache_dir: PathBuf,
    /// Model sources, tried in this order: `local` (MODEL_DIR), `s3` (S3_BUCKET), `api` (API_BASE_URL),
    /// `hf` (the Hugging Face Hub at HF_ENDPOINT: a model id `owner/name` is that repository), `url`
    /// (the archive URL of a custom catalogue model).
    #[arg(long, env = "MODEL_SOURCES", value_delimiter = ',', default_value = "local")]
    pub model_sources: Vec<String>,
    /// Bucket of the `s3` source; credentials, region and AWS_ENDPOINT_URL come from the standard AWS variables.
    #[arg(long, env = "S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Key prefix in S3_BUCKET: objects are `<prefix>/<dataset>/<version>/<file>`.
    #[arg(long, env = "S3_PREFIX", default_value = "")]
    pub s3_prefix: String,
    /// Base URL of the Roboflow-style model API (`GET /ort/<dataset>/<version>`) of the `api` source.
    #[arg(long, env = "API_BASE_URL", default_value = "https://api.roboflow.com")]
    pub api_base_url: String,
    /// Key sent to the model API; never logged.
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<Secret>,
    /// The Hugging Face Hub of the `hf` source.
    #[arg(long, env = "HF_ENDPOINT", default_value = "https://huggingface.co")]
    pub hf_endpoint: String,
    /// Token for private and gated repositories of the `hf` source; never logged.
    #[arg(long, env = "HF_TOKEN", hide_env_values = true)]
    pub hf_token: Option<Secret>,
    /// The branch, tag or commit the `hf` source takes; the commit it resolves to is recorded in
    /// the model's manifest.
    #[arg(long, env = "HF_REVISION", default_value = "main")]
    pub hf_revision: String,
    /// The most a model archive of the `url` source may hold unpacked (and be, packed); a larger
    /// one is refused and leaves nothing behind.
    #[arg(long, env = "MAX_MODEL_ARCHIVE_BYTES", default_value_t = 8 << 30)]
    pub max_model_archive_bytes: u64,
    /// A JSON list of custom embedding model descriptions (as `POST /embed/models` takes them),
    /// registered at start-up; an invalid one stops the start, naming the file, entry and field.
    #[arg(long, env = "EMBEDDING_MODELS_FILE")]
    pub embedding_models_file: Option<PathBuf>,
    /// Attempts per source on transient failures (timeouts, 5xx, resets), with exponential backoff and jitter.
    #[arg(long, env = "MODEL_FETCH_ATTEMPTS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub model_fetch_attempts: u32,
    /// First backoff pause in milliseconds; doubles per attempt, capped at 32 times this.
    #[arg(long, env = "MODEL_FETCH_BACKOFF_MS", default_value_t = 500)]
    pub model_fetch_backoff_ms: u64,
    /// Connect and read timeout of remote sources, in seconds.
    #[arg(long, env = "MODEL_SOURCE_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub model_source_timeout_secs: u64,
    /// What each load checks against the cache manifest.
    #[arg(long, env = "VERIFY_ON_LOAD", value_enum, default_value_t = VerifyOnLoad::Sha256)]
    pub verify_on_load: VerifyOnLoad,
    /// Largest model (all its files) a source may write into the cache, in bytes.
    #[arg(long, env = "MAX_MODEL_BYTES", default_value_t = 16 << 30)]
    pub max_model_bytes: u64,
}

/// The log's level and format, for every command.
#[derive(Debug, Clone, Args)]
pub struct LogConfig {
    /// tracing filter, e.g. `info` or `sightline=debug,info` (ONNX Runtime's own log is `ort`).
    #[arg(long, env = "LOG_LEVEL", default_value = "info,ort=warn")]
    pub log_level: String,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to bind. Docker images set 0.0.0.0.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, env = "PORT", default_value_t = 9001)]
    pub port: u16,
    /// Where models come from and the disk cache they are loaded from.
    #[command(flatten)]
    pub store: StoreConfig,
    /// Most models held in memory at once; the least recently used is evicted first.
    #[arg(long, env = "MAX_ACTIVE_MODELS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_active_models: u32,
    /// Bytes of host memory the loaded models may hold together (their measured `resident_bytes`):
    /// least recently used models are evicted before a load until the new one's expected size fits,
    /// and a model that cannot fit is refused (507). Unset = no budget.
    #[arg(long, env = "MAX_MODEL_MEMORY")]
    pub max_model_memory: Option<u64>,
    /// Evict before a load while the free fraction of GPU (or host) memory is below this; 0 = off.
    #[arg(long, env = "MEMORY_FREE_THRESHOLD", default_value_t = 0.0, value_parser = parse_fraction)]
    pub memory_free_threshold: f64,
    /// The CLIP version `/clip/*` serve when a request names none: the model `clip/<version>`.
    #[arg(long, env = "CLIP_VERSION_ID", default_value = "ViT-B-16")]
    pub clip_version_id: String,
    /// The most images, or prompts, one `/clip/*` request may carry (a longer text list is run in
    /// batches of this size), as in Roboflow's server.
    #[arg(long, env = "CLIP_MAX_BATCH_SIZE", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub clip_max_batch_size: u64,
    /// The OCR model behind `/doctr/ocr` (and `/infer/ocr` without a `model_id`).
    #[arg(long, env = "DEFAULT_OCR_MODEL", default_value = "ppocr/4")]
    pub default_ocr_model: String,
    /// Comma-separated model ids loaded at start-up and never evicted.
    #[arg(long, env = "PINNED_MODELS", value_delimiter = ',')]
    pub pinned_models: Vec<String>,
    /// Path of libonnxruntime.so (1.31.x); `make setup` extracts it into .cache/.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib_path: Option<PathBuf>,
    /// ONNX Runtime intra-op threads per session; 0 = the cores divided between a model's
    /// instances (and all of them for a request alone, with ADAPTIVE_EXECUTION).
    #[arg(long, env = "ORT_INTRA_OP_THREADS", default_value_t = 0)]
    pub ort_intra_op_threads: usize,
    /// Execution providers in order of preference, comma-separated: `tensorrt`, `cuda`, `openvino`,
    /// `cpu`. Each session uses the first that registers and passes the load-time test inference.
    /// Unset: ONNXRUNTIME_EXECUTION_PROVIDERS, else `openvino,cpu`.
    #[arg(long, env = "EXECUTION_PROVIDERS")]
    pub execution_providers: Option<String>,
    /// Roboflow's setting, read when EXECUTION_PROVIDERS is unset, in its own format too:
    /// `[CUDAExecutionProvider,OpenVINOExecutionProvider,CPUExecutionProvider]`.
    #[arg(long, env = "ONNXRUNTIME_EXECUTION_PROVIDERS")]
    pub onnxruntime_execution_providers: Option<String>,
    /// GPUs models may be placed on (comma-separated CUDA device ids); unset = every visible GPU.
    #[arg(long, env = "DEVICE_IDS", value_delimiter = ',')]
    pub device_ids: Vec<u32>,
    /// Bytes each CUDA session's memory arena may grow to; unset = no limit.
    #[arg(long, env = "CUDA_MEMORY_LIMIT")]
    pub cuda_memory_limit: Option<usize>,
    /// How CUDA arenas grow: `next_power_of_two` (fewer allocations) or `same_as_requested` (tighter).
    #[arg(long, env = "CUDA_ARENA_EXTEND_STRATEGY", default_value = "next_power_of_two")]
    pub cuda_arena_extend_strategy: ArenaStrategy,
    /// Folders (colon-separated) holding the CUDA 13 / cuDNN 9 runtime libraries, preloaded before
    /// the first CUDA session; default: the `cuda/` folder beside ORT_DYLIB_PATH (`make setup-gpu`).
    #[arg(long, env = "CUDA_LIB_DIR", value_delimiter = ':')]
    pub cuda_lib_dir: Vec<PathBuf>,
    /// TensorRT builds FP16 engines (what Roboflow does).
    #[arg(long, env = "TENSORRT_FP16", default_value_t = true, action = clap::ArgAction::Set)]
    pub tensorrt_fp16: bool,
    /// The OpenVINO plugin provider (PyPI onnxruntime-ep-openvino); default:
    /// `openvino/libonnxruntime_providers_openvino_plugin.so` beside ORT_DYLIB_PATH (`make setup`).
    #[arg(long, env = "OPENVINO_EP_LIBRARY")]
    pub openvino_ep_library: Option<PathBuf>,
    /// OpenVINO device: `CPU`, `GPU`, `NPU` or `AUTO`.
    #[arg(long, env = "OPENVINO_DEVICE", default_value = "CPU")]
    pub openvino_device: OpenVinoDevice,
    /// OpenVINO inference precision: `f32` (answers as the CPU provider), `bf16` or `f16` (faster, less exact).
    #[arg(long, env = "OPENVINO_PRECISION", default_value = "f32")]
    pub openvino_precision: OpenVinoPrecision,
    /// true: CPU sessions of every model run on one intra-op thread pool of all the cores (ONNX
    /// Runtime's global pool), unless ORT_INTRA_OP_THREADS fixes a count per session: a request
    /// alone gets every core, and instances running at once share them. false (default): each
    /// session owns its threads, the cores divided between a model's instances, which served
    /// 3-10 % more at 16 clients on the 2-core benchmark machine with no gain at one client
    /// (docs/benchmarks.md).
    #[arg(long, env = "ORT_SHARED_THREAD_POOL", default_value_t = false, action = clap::ArgAction::Set)]
    pub ort_shared_thread_pool: bool,
    /// ONNX Runtime's waiting pool threads spin before sleeping: a little less latency on an idle
    /// machine, a core taken from decoding on a busy one (measured in docs/benchmarks.md).
    #[arg(long, env = "ORT_INTRA_OP_SPINNING", default_value_t = false, action = clap::ArgAction::Set)]
    pub ort_intra_op_spinning: bool,
    /// CPU sessions save ONNX Runtime's optimised graph in the model's cache entry on their first
    /// load and start later loads from it.
    #[arg(long, env = "ORT_OPTIMIZED_GRAPH_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub ort_optimized_graph_cache: bool,
    /// CPU sessions compute a Softmax over a middle axis (the distribution-focal-loss head of
    /// YOLOv8, v10 and 11) as a last-axis Softmax between two Transposes: bit-identical outputs,
    /// about 1 ms less per 256x256 image (docs/benchmarks.md).
    #[arg(long, env = "ORT_GRAPH_REWRITES", default_value_t = true, action = clap::ArgAction::Set)]
    pub ort_graph_rewrites: bool,
    /// The most images one inference run takes (dynamic batching) for models with a symbolic batch
    /// axis; a fixed batch axis of 1 is never batched. 1 turns batching off.
    #[arg(long, env = "MAX_BATCH_SIZE", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_batch_size: u32,
    /// Microseconds a batch that is not full may wait for more requests; 0 batches only what is
    /// already queued.
    #[arg(long, env = "BATCH_MAX_DELAY_US", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub batch_max_delay_us: u64,
    /// Sessions per model file, each on its own thread (the cores are divided between them unless
    /// ORT_INTRA_OP_THREADS or ORT_SHARED_THREAD_POOL is set; on a GPU host they spread over the GPUs). 0 = one per GPU on
    /// CUDA/TensorRT, two on the host's cores (the CPU provider, OpenVINO's CPU device), one on
    /// OpenVINO's other devices.
    #[arg(long, env = "MODEL_INSTANCES", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub model_instances: u32,
    /// true (default): where the instances of a model on the host's cores (CPU provider, OpenVINO's
    /// CPU device) divide them, it also keeps a solo session on all of them, which runs a request
    /// that finds the model otherwise idle (nothing admitted but what the run takes); under load the
    /// instances share the cores as before. Costs one more session's memory per model. false: fixed
    /// instances only.
    #[arg(long, env = "ADAPTIVE_EXECUTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub adaptive_execution: bool,
    /// Model loads that may run at once, on their own threads at a lower OS priority than inference.
    #[arg(long, env = "MODEL_LOAD_CONCURRENCY", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub model_load_concurrency: u32,
    /// OS priority of model loads and unloads: `idle` (Linux's SCHED_IDLE: only CPU time serving
    /// leaves; serving p99 x1.02-1.13 while two models load in a loop, x1.15-1.32 at nice 19;
    /// docs/benchmarks.md), or a nice value from 19 (lowest) to 0 (the priority of inference). On
    /// a machine that inference saturates, loads then progress slowly.
    #[arg(long, env = "MODEL_LOAD_PRIORITY", default_value = "idle")]
    pub model_load_priority: LoadPriority,
    /// Images decoded, prepared or post-processed at once; 0 = one per core.
    #[arg(long, env = "PREPROCESS_THREADS", default_value_t = 0)]
    pub preprocess_threads: usize,
    /// Seconds between SIGTERM (readiness turns false at once) and refusing new connections, so
    /// balancers stop sending first.
    #[arg(long, env = "SHUTDOWN_DRAIN_SECS", default_value_t = 5.0)]
    pub shutdown_drain_secs: f64,
    /// Seconds requests in flight get to finish once new connections are refused; then the process
    /// exits (0). Kubernetes' `terminationGracePeriodSeconds` must exceed drain + this.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
    /// Inputs (images, tensor requests) that may always wait for one model: below this many
    /// waiting ahead, a request is never refused. Waiting means admitted and not yet taken by an
    /// instance; work that runs or has answered does not count.
    #[arg(long, env = "MODEL_QUEUE_CAPACITY", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub model_queue_capacity: u32,
    /// Past MODEL_QUEUE_CAPACITY, inputs are still admitted while the wait the model's measured
    /// pace predicts for them stays within this many milliseconds; beyond it, 429 with a
    /// Retry-After from that prediction (Triton's queue policy). 0: the count alone.
    #[arg(long, env = "MAX_QUEUE_DELAY_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub max_queue_delay_ms: u64,
    /// Images one request may carry (a list); more is a 413 naming the limit.
    #[arg(long, env = "MAX_IMAGES_PER_REQUEST", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_images_per_request: u32,
    /// Seconds an inference request waits for its model to load before answering 503 with
    /// Retry-After (the load goes on; a retry finds the model ready).
    #[arg(long, env = "MODEL_LOAD_WAIT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub model_load_wait_secs: u64,
    /// Port of the Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, Triton's
    /// 8001), on HOST; 0 turns it off.
    #[arg(long, env = "GRPC_PORT", default_value_t = 8001)]
    pub grpc_port: u16,
    /// Largest request body accepted, in bytes (413 above).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds a request's whole body may take to arrive (408 after). 60: the default
    /// MAX_BODY_BYTES (32 MiB) at 5 Mbit/s, a slow client's uplink; nginx gives 60 s between two
    /// reads, this bounds the whole body, so a client sending a byte a second is cut off too.
    #[arg(long, env = "CLIENT_BODY_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub client_body_timeout_secs: u64,
    /// Largest decoded image accepted, in pixels (400 above); checked before decoding.
    #[arg(long, env = "MAX_IMAGE_PIXELS", default_value_t = 50_000_000)]
    pub max_image_pixels: u64,
    /// When set, every route but /healthz, /readiness, /info and /metrics needs this key
    /// (`api_key` query parameter, `Authorization: Bearer`, or `api_key` in a JSON body); else 401.
    #[arg(long, env = "SIGHTLINE_API_KEY", hide_env_values = true)]
    pub sightline_api_key: Option<Secret>,
    /// Accept `url` image inputs (Roboflow's name).
    #[arg(long, env = "ALLOW_URL_INPUT", default_value_t = true, action = clap::ArgAction::Set)]
    pub allow_url_input: bool,
    /// Let `url` image inputs reach loopback, private, link-local and other non-public addresses.
    #[arg(long, env = "ALLOW_PRIVATE_URLS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_private_urls: bool,
    /// Comma-separated networks (CIDR, e.g. `10.1.0.0/16,127.0.0.1/32`) that `url` inputs may reach although not public.
    #[arg(long, env = "ALLOWED_URL_NETWORKS", value_delimiter = ',')]
    pub allowed_url_networks: Vec<ipnet::IpNet>,
    /// Timeout of a `url` image download, in seconds (connect and whole transfer).
    #[arg(long, env = "URL_INPUT_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub url_input_timeout_secs: u64,
    /// HTTP worker threads; 0 = one per core.
    #[arg(long, env = "HTTP_WORKERS", default_value_t = 0)]
    pub http_workers: usize,
    #[command(flatten)]
    pub logging: LogConfig,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a fraction in [0, 1]"))
    }
}

impl Cli {
    /// The command to run; no subcommand means `serve`.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

impl Command {
    /// How the command logs.
    pub fn logging(&self) -> &LogConfig {
        match self {
            Command::Serve(config) => &config.logging,
            Command::Pull(args) => &args.logging,
            Command::Models(args) => &args.logging,
            Command::Rm(args) => &args.logging,
            Command::Embed(args) => &args.config.logging,
        }
    }
}

impl Config {
    /// The providers' settings; library locations default to the layouts `make setup` and
    /// `make setup-gpu` make beside the ONNX Runtime library.
    pub fn provider_options(&self, ort_dylib: &std::path::Path) -> ProviderOptions {
        let ort_dir = ort_dylib.parent().map(PathBuf::from).unwrap_or_default();
        let cuda_dirs = if self.cuda_lib_dir.is_empty() {
            Some(ort_dir.join("cuda")).filter(|d| d.is_dir()).into_iter().collect()
        } else {
            self.cuda_lib_dir.clone()
        };
        ProviderOptions {
            intra_threads: self.ort_intra_op_threads,
            intra_spinning: self.ort_intra_op_spinning,
            optimized_graph_cache: self.ort_optimized_graph_cache,
            graph_rewrites: self.ort_graph_rewrites,
            device_ids: self.device_ids.clone(),
            cuda_memory_limit: self.cuda_memory_limit,
            cuda_arena_strategy: self.cuda_arena_extend_strategy,
            cuda_library_dirs: cuda_dirs,
            tensorrt_fp16: self.tensorrt_fp16,
            openvino_library: self
                .openvino_ep_library
                .clone()
                .unwrap_or_else(|| ort_dir.join("openvino/libonnxruntime_providers_openvino_plugin.so")),
            openvino_device: self.openvino_device,
            openvino_precision: self.openvino_precision,
        }
    }

    pub fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy {
            max_batch: self.max_batch_size as usize,
            max_delay: Duration::from_micros(self.batch_max_delay_us),
        }
    }

    /// The shared intra-op pool, unless per-session threads are asked for.
    pub fn shared_threads(&self) -> Option<sightline_engine::SharedThreads> {
        (self.ort_shared_thread_pool && self.ort_intra_op_threads == 0).then(|| sightline_engine::SharedThreads {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            spinning: self.ort_intra_op_spinning,
        })
    }

    pub fn queue_policy(&self) -> sightline_core::QueuePolicy {
        sightline_core::QueuePolicy {
            count: self.model_queue_capacity as usize,
            max_delay: Duration::from_millis(self.max_queue_delay_ms),
        }
    }
}

impl StoreConfig {
    pub fn source_settings(&self) -> SourceSettings {
        let timeout = Duration::from_secs(self.model_source_timeout_secs);
        SourceSettings {
            order: self.model_sources.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
            model_dir: self.model_dir.clone(),
            s3: self.s3_bucket.clone().filter(|b| !b.is_empty()).map(|bucket| S3Settings {
                bucket,
                prefix: self.s3_prefix.clone(),
                timeout,
            }),
            api: ApiSettings {
                base_url: self.api_base_url.clone(),
                api_key: self.api_key.as_ref().map(|k| k.0.clone()),
                timeout,
            },
            hf: HfSettings {
                endpoint: self.hf_endpoint.clone(),
                token: self.hf_token.as_ref().map(|k| k.0.clone()),
                revision: self.hf_revision.clone(),
                timeout,
            },
            url: UrlSettings { max_archive_bytes: self.max_model_archive_bytes, timeout },
        }
    }

    pub fn cache_options(&self) -> CacheOptions {
        let base_delay = Duration::from_millis(self.model_fetch_backoff_ms);
        CacheOptions {
            root: self.model_cache_dir.clone(),
            verify: match self.verify_on_load {
                VerifyOnLoad::Sha256 => VerifyLevel::Sha256,
                VerifyOnLoad::Size => VerifyLevel::Size,
            },
            retry: RetryPolicy { attempts: self.model_fetch_attempts, base_delay, max_delay: base_delay * 32 },
            max_model_bytes: self.max_model_bytes,
        }
    }
}
