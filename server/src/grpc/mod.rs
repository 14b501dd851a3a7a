//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, as KServe and Triton
//! serve it) on `GRPC_PORT`: a thin adapter over the same service as the HTTP routes, on its own
//! runtime thread, stopped with the HTTP server.

mod extensions;
mod metrics;
mod service;
mod tensors;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{oneshot, Notify};

use crate::startup_error::StartupError;
use crate::state::AppState;

pub use metrics::GrpcMetrics;

/// The RPCs served (the names the metrics label calls with).
pub const METHODS: [&str; 12] = [
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
    "ModelStreamInfer",
    "ModelConfig",
    "ModelStatistics",
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
];

/// The generated messages and service trait.
pub mod proto {
    tonic::include_proto!("inference");
}

/// A `ModelInferRequest` as its bytes arrive, decoded and turned into the service's tensors (the
/// fuzz target's entry: what a client's message can do before any model sees it).
pub fn decode_inputs(message: &[u8]) -> Result<Vec<sightline_core::Tensor>, String> {
    let request = <proto::ModelInferRequest as prost::Message>::decode(message).map_err(|e| e.to_string())?;
    tensors::inputs(request.inputs, request.raw_input_contents).map_err(|e| e.to_string())
}

/// The running gRPC server: told to stop, it finishes the calls in flight.
pub struct GrpcServer {
    stop: Arc<Notify>,
    stopped: oneshot::Receiver<()>,
}

impl GrpcServer {
    /// Stops accepting calls, and returns once those in flight are answered.
    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = self.stopped.await;
    }
}

/// Binds `address` now (a taken port is a start-up error) and serves on a thread of its own.
pub fn start(address: &str, state: Arc<AppState>, metrics: GrpcMetrics) -> Result<GrpcServer, StartupError> {
    let bind = |source| StartupError::Bind { address: address.to_owned(), source };
    let listener = std::net::TcpListener::bind(address).map_err(bind)?;
    listener.set_nonblocking(true).map_err(bind)?;
    let local: Option<SocketAddr> = listener.local_addr().ok();
    let stop = Arc::new(Notify::new());
    let (done, stopped) = oneshot::channel();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("grpc")
        .enable_all()
        .build()
        .map_err(bind)?;
    let max_message = state.max_body_bytes;
    let signal = stop.clone();
    std::thread::Builder::new()
        .name("grpc-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => return tracing::error!(error = %e, "cannot serve gRPC"),
                };
                // Replies go out as written, as gRPC's own servers send them (no Nagle delay).
                let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                let service = service::Inference::new(state, metrics).into_server(max_message);
                let served = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming, async move { signal.notified().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the gRPC server stopped");
                }
            });
            let _ = done.send(());
        })
        .map_err(bind)?;
    tracing::info!(address = ?local, "serving the inference protocol over gRPC");
    Ok(GrpcServer { stop, stopped })
}
