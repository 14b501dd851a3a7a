//! Start-up: ONNX Runtime, the manager stack, the HTTP server, pinned-model preload.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{middleware, web, App, HttpServer};
use prometheus::Registry;
use sightline_artifacts::{build_sources, ArtifactCache};
use sightline_core::{
    BaseManager, CacheConfig, CoreError, ManagerMetrics, ModelId, ModelManager, WithFixedSizeCache, WithLogger,
    WithMetrics,
};
use sightline_engine::{configure_cpu_pool, init_runtime_with, LoadPool, PipelineMetrics};
use sightline_models::{DecodeLimits, LoadOptions, ModelRegistry};

use crate::api_key::require_api_key;
use crate::config::{Config, StoreConfig};
use crate::execution::{self, Execution};
use crate::gpu_metrics::GpuCollector;
use crate::http_metrics::{observe, HttpMetrics};
use crate::lifecycle::{preload, shutdown_on_signal, Readiness, ShutdownPolicy};
use crate::routes;
use crate::service::Service;
use crate::startup_error::StartupError;
use crate::state::AppState;

/// The decorator stack: the cache is outermost so that the loads it triggers and the evictions it
/// makes pass through metrics and logging on their way in.
pub fn build_manager(
    config: &Config,
    registry: &Registry,
    pipeline: &PipelineMetrics,
    pinned: &HashSet<ModelId>,
    artifacts: Arc<ArtifactCache>,
    execution: &Execution,
) -> Result<Arc<dyn ModelManager>, StartupError> {
    let options = LoadOptions {
        queue: config.queue_policy(),
        decode_limits: DecodeLimits { max_pixels: config.max_image_pixels, ..DecodeLimits::default() },
        engine: execution.engine.clone(),
        batch: config.batch_policy(),
        metrics: pipeline.clone(),
        load_priority: config.model_load_priority,
    };
    configure_cpu_pool(config.preprocess_threads);
    let loads = LoadPool::new(config.model_load_concurrency as usize, config.model_load_priority)
        .map_err(StartupError::LoadThreads)?;
    let loader = ModelRegistry::new(options, artifacts, loads);
    let base = BaseManager::new(Arc::new(loader));
    let metrics = ManagerMetrics::register(registry)?;
    let cache = CacheConfig {
        max_active_models: config.max_active_models as usize,
        memory_free_threshold: config.memory_free_threshold,
        pinned: pinned.clone(),
        max_model_memory: config.max_model_memory,
    };
    let probe = execution.memory_probe.clone();
    Ok(Arc::new(WithFixedSizeCache::new(WithMetrics::new(WithLogger::new(base), metrics), cache, probe)))
}

/// The sources in `MODEL_SOURCES` feeding the cache in `MODEL_CACHE_DIR` (created if missing).
pub async fn build_artifacts(config: &StoreConfig) -> Result<Arc<ArtifactCache>, StartupError> {
    if let Some(path) = &config.embedding_models_file {
        let count = sightline_artifacts::catalogue::register_file(path)
            .map_err(|e| StartupError::Artifacts(CoreError::InvalidParameter(format!("EMBEDDING_MODELS_FILE {e}"))))?;
        tracing::info!(file = %path.display(), models = count, "custom embedding models registered");
    }
    let sources = build_sources(&config.source_settings()).await.map_err(StartupError::Artifacts)?;
    let options = config.cache_options();
    std::fs::create_dir_all(&options.root).map_err(|e| {
        StartupError::Artifacts(CoreError::Cache(format!(
            "cannot create MODEL_CACHE_DIR {}: {e}",
            options.root.display()
        )))
    })?;
    Ok(ArtifactCache::new(options, sources))
}

pub async fn serve(config: Config) -> Result<(), StartupError> {
    let dylib: PathBuf = config.ort_dylib_path.clone().ok_or(StartupError::NoRuntimePath)?;
    init_runtime_with(&dylib, config.shared_threads())?;
    tracing::info!(library = %dylib.display(), shared_threads = ?config.shared_threads(), "ONNX Runtime loaded");
    let execution = execution::start(&config, &dylib)?;
    let pinned: HashSet<ModelId> = config
        .pinned_models
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| ModelId::parse(s.trim()))
        .collect::<Result<_, _>>()?;

    let registry = Registry::new();
    let artifacts = build_artifacts(&config.store).await?;
    crate::error::name_server_paths(&[
        (config.store.model_dir.as_path(), "MODEL_DIR"),
        (config.store.model_cache_dir.as_path(), "MODEL_CACHE_DIR"),
    ]);
    let swept = sightline_engine::sweep_unfinished_graphs(artifacts.root());
    if swept > 0 {
        tracing::info!(files = swept, "removed optimised graphs left half written by an earlier process");
    }
    let pipeline = PipelineMetrics::register(&registry)?;
    let manager = build_manager(&config, &registry, &pipeline, &pinned, artifacts.clone(), &execution)?;
    registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
    artifacts.metrics().register(&registry)?;
    if let Some(gpus) = &execution.gpus {
        registry.register(Box::new(GpuCollector::new(gpus.clone())?))?;
    }
    let readiness = Arc::new(Readiness::default());
    let service = Service::new(manager.clone(), artifacts.clone(), execution.gpus.clone(), pipeline, &config)?
        .with_instances(execution.engine.instances());
    let http_metrics = web::Data::new(HttpMetrics::register(&registry)?);
    http_metrics.start_at_zero(&routes::paths_and_methods());
    let grpc_metrics = crate::grpc::GrpcMetrics::register(&registry)?;
    if config.grpc_port != 0 {
        grpc_metrics.start_at_zero(&crate::grpc::METHODS);
    }
    let api_document =
        routes::openapi::to_json(&routes::document()).map_err(|e| StartupError::Document(e.to_string()))?;
    let state = web::Data::new(AppState {
        service,
        repository: Default::default(),
        registry,
        readiness: readiness.clone(),
        server_uuid: uuid::Uuid::new_v4().to_string(),
        runtime: execution.runtime.clone(),
        max_body_bytes: config.max_body_bytes,
        client_body_timeout: Duration::from_secs(config.client_body_timeout_secs),
        server_api_key: config.sightline_api_key.as_ref().map(|k| k.0.clone()).filter(|k| !k.is_empty()),
        api_document,
    });

    let address = format!("{}:{}", config.host, config.port);
    let app_state = state.clone();
    let mut server =
        HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(http_metrics.clone())
                // Malformed query strings and paths get the JSON error body every route documents.
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    crate::error::ApiError::BadRequest(format!("Invalid query string: {e}")).into()
                }))
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|e, _| crate::error::ApiError::BadRequest(format!("Invalid path: {e}")).into()),
                )
                .wrap(middleware::from_fn(require_api_key))
                .wrap(middleware::from_fn(observe))
                .wrap(middleware::from_fn(crate::url_limit::limit_url_length))
                .configure(routes::configure)
        })
        .bind(&address)
        .map_err(|source| StartupError::Bind { address: address.clone(), source })?;
    if config.http_workers > 0 {
        server = server.workers(config.http_workers);
    }
    // Signals are ours (`lifecycle`): readiness turns false and connections drain before the stop.
    let shutdown = ShutdownPolicy {
        drain: Duration::from_secs_f64(config.shutdown_drain_secs),
        timeout: Duration::from_secs(config.shutdown_timeout_secs),
    };
    server = server.disable_signals().shutdown_timeout(config.shutdown_timeout_secs);
    tracing::info!(
        %address,
        sources = %artifacts.source_names().join(","),
        model_dir = %config.store.model_dir.display(),
        model_cache_dir = %artifacts.root().display(),
        "serving"
    );
    let grpc = match config.grpc_port {
        0 => None,
        port => Some(crate::grpc::start(&format!("{}:{port}", config.host), state.clone().into_inner(), grpc_metrics)?),
    };
    let running = server.run();
    let stop_grpc = async {
        if let Some(grpc) = grpc {
            grpc.stop().await;
        }
    };
    tokio::spawn(shutdown_on_signal(running.handle(), stop_grpc, readiness.clone(), shutdown));
    tokio::spawn(preload(manager, pinned, readiness));
    running.await.map_err(StartupError::Server)
}
