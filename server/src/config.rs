//! The one configuration struct: every flag is also an environment variable (Roboflow's names where they exist).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to bind. Docker images set 0.0.0.0.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, env = "PORT", default_value_t = 9001)]
    pub port: u16,
    /// Folder of model folders, one per `dataset/version`.
    #[arg(long, env = "MODEL_DIR", default_value = "assets/models")]
    pub model_dir: PathBuf,
    /// Disk cache for downloaded model artifacts (used by remote model sources; accepted now so
    /// deployments can set it once).
    #[arg(long, env = "MODEL_CACHE_DIR", default_value = "/tmp/sightline/models")]
    pub model_cache_dir: PathBuf,
    /// Most models held in memory at once; the least recently used is evicted first.
    #[arg(long, env = "MAX_ACTIVE_MODELS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_active_models: u32,
    /// Evict before a load while the free fraction of GPU (or host) memory is below this; 0 = off.
    #[arg(long, env = "MEMORY_FREE_THRESHOLD", default_value_t = 0.0, value_parser = parse_fraction)]
    pub memory_free_threshold: f64,
    /// The OCR model behind `/doctr/ocr` (and `/infer/ocr` without a `model_id`).
    #[arg(long, env = "DEFAULT_OCR_MODEL", default_value = "ppocr/4")]
    pub default_ocr_model: String,
    /// Comma-separated model ids loaded at start-up and never evicted.
    #[arg(long, env = "PINNED_MODELS", value_delimiter = ',')]
    pub pinned_models: Vec<String>,
    /// Path of libonnxruntime.so (1.31.x); `make setup` extracts it into .cache/.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib_path: Option<PathBuf>,
    /// ONNX Runtime intra-op threads per model; 0 = ONNX Runtime's default (all cores).
    #[arg(long, env = "ORT_INTRA_OP_THREADS", default_value_t = 0)]
    pub ort_intra_op_threads: usize,
    /// Requests that may queue for one model before the server answers 503 (retry).
    #[arg(long, env = "MODEL_QUEUE_CAPACITY", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub model_queue_capacity: u32,
    /// Largest request body accepted, in bytes (413 above).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest decoded image accepted, in pixels (400 above); checked before decoding.
    #[arg(long, env = "MAX_IMAGE_PIXELS", default_value_t = 50_000_000)]
    pub max_image_pixels: u64,
    /// HTTP worker threads; 0 = one per core.
    #[arg(long, env = "HTTP_WORKERS", default_value_t = 0)]
    pub http_workers: usize,
    /// tracing filter, e.g. `info` or `sightline=debug,info` (ONNX Runtime's own log is `ort`).
    #[arg(long, env = "LOG_LEVEL", default_value = "info,ort=warn")]
    pub log_level: String,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
    pub fn into_config(self) -> Config {
        match self.command {
            Some(Command::Serve(config)) => config,
            None => self.serve,
        }
    }
}
