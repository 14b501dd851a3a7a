//! The engine: ONNX Runtime's environment, the execution providers and their start-up checks,
//! sessions built on the first provider that works, and the worker threads that run them.
//!
//! Task models use only [`Engine::for_model`] (whose [`ModelSessions`] builds and checks their
//! sessions and says where they run), [`OnnxWorker`] (instances and dynamic batching) and [`Outputs`].

pub mod batch;
pub mod cache_dirs;
pub mod environment;
pub mod provider;
pub mod session;
pub mod tensors;
pub mod threads;
pub mod worker;

pub use batch::BatchPolicy;
pub use environment::{init_runtime, probe_provider, RuntimeInfo, UnavailableProvider};
pub use provider::{
    choose_provider_list, parse_provider_list, ArenaStrategy, OpenVinoDevice, OpenVinoPrecision, Provider,
    ProviderList, ProviderOptions,
};
pub use session::{
    build_on, build_session, run_session, Engine, FixedSizeSession, ModelSessions, Outputs, RunsOn, SessionShape,
    Target,
};
pub use worker::{Admission, OnnxWorker, WorkerOptions};
