//! Sightline engine: ONNX Runtime's environment, the execution providers and their start-up
//! checks, sessions built on the first provider that works, the instances and dynamic batcher that
//! run them, the threads and priorities they run at, the CPU pool and the load pool, GPU placement
//! and memory probes.
//!
//! Task models use a narrow interface: [`Engine::for_model`] (whose [`ModelSessions`] builds and
//! checks a model's sessions and says where they run), [`OnnxWorker`] (submit an image or tensors
//! to the model's instances and batches), [`ModelSession`] (run a session at load time), and
//! [`run_blocking`] with [`StageTimers`] for the request pipeline around inference. The `ort`
//! session itself never leaves this crate.

mod batch;
mod build;
mod cache_dirs;
mod environment;
mod error;
pub mod gpu;
mod graph_rewrite;
mod load_pool;
mod memory_probe;
mod model_sessions;
mod onnx_wire;
mod pipeline;
pub mod process_memory;
mod provider;
mod session;
mod tensors;
pub mod threads;
mod worker;

pub use batch::{batched_matches, limit_after_check, BatchPolicy, Outputs};
pub use build::{build_raw, build_session, sweep_unfinished_graphs};
pub use environment::{
    init_runtime, init_runtime_with, probe_provider, shared_threads, IntraOpThreads, RuntimeInfo, SharedThreads,
    UnavailableProvider,
};
pub use error::EngineError;
pub use gpu::{DevicePlacer, GpuSnapshot, GpuSource, NvmlSource};
pub use graph_rewrite::{rewrite_graph, softmax_on_last_axis, split_convs, Rewritten, REWRITES_VERSION};
pub use load_pool::LoadPool;
pub use memory_probe::{GpuMemoryProbe, HostMemoryProbe};
pub use model_sessions::{Engine, FixedSizeSession, InstanceGroup, ModelSessions, RunsOn};
pub use pipeline::{configure_cpu_pool, run_blocking, PipelineMetrics, StageTimers};
pub use provider::{
    choose_provider_list, parse_provider_list, ArenaStrategy, OpenVinoDevice, OpenVinoPrecision, Provider,
    ProviderList, ProviderOptions,
};
pub use session::{ModelSession, SessionShape};
pub use tensors::{split_rows, zero_inputs};
pub use threads::LoadPriority;
pub use worker::{InFlight, OnnxWorker, Place, WorkerOptions};
