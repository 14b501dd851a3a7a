//! Why the server could not start: each cause with what to do about it.

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("ORT_DYLIB_PATH is not set: run `make setup` (it extracts libonnxruntime.so.1.31.1 into .cache/) and point ORT_DYLIB_PATH at it")]
    NoRuntimePath,
    #[error(transparent)]
    Runtime(#[from] sightline_engine::EngineError),
    #[error("execution providers: {0}")]
    Providers(String),
    #[error("none of the execution providers listed can be used here, so no model could load. {0}")]
    NoProvider(String),
    #[error("model sources or cache: {0}")]
    Artifacts(sightline_core::CoreError),
    #[error("the OpenAPI document: {0}")]
    Document(String),
    #[error("cannot build the client for url image inputs: {0}")]
    UrlClient(String),
    #[error("invalid PINNED_MODELS entry: {0}")]
    PinnedModel(#[from] sightline_core::CoreError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot serve on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
    #[error("cannot start the model load threads: {0}")]
    LoadThreads(std::io::Error),
    #[error("server error: {0}")]
    Server(std::io::Error),
}
