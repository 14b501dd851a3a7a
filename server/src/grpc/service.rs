//! `inference.GRPCInferenceService`: each RPC checks the key (as the HTTP routes do), asks the
//! service, and shapes the answer; errors become gRPC statuses where HTTP ones are made.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{BoxStream, StreamExt};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status, Streaming};

use super::proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use super::proto::*;
use super::GrpcMetrics;
use super::{extensions, tensors};
use crate::error::{ApiError, KeyProblem};
use crate::state::AppState;

pub struct Inference {
    state: Arc<AppState>,
    metrics: GrpcMetrics,
}

impl Inference {
    pub fn new(state: Arc<AppState>, metrics: GrpcMetrics) -> Inference {
        Inference { state, metrics }
    }

    /// The service, taking messages up to `max_message` bytes (`MAX_BODY_BYTES`, as over HTTP).
    pub fn into_server(self, max_message: usize) -> GrpcInferenceServiceServer<Inference> {
        GrpcInferenceServiceServer::new(self)
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(usize::MAX)
    }

    /// `SIGHTLINE_API_KEY`, when set, in the `authorization: Bearer <key>` metadata.
    fn authorize(&self, metadata: &MetadataMap) -> Result<(), ApiError> {
        let Some(expected) = &self.state.server_api_key else { return Ok(()) };
        let given = metadata.get("authorization").and_then(|v| v.to_str().ok()).and_then(crate::api_key::bearer);
        match given {
            Some(key) if crate::api_key::same_key(key, expected) => Ok(()),
            Some(_) => Err(ApiError::Unauthorized(KeyProblem::Wrong)),
            None => Err(ApiError::Unauthorized(KeyProblem::Missing)),
        }
    }

    /// Runs one call: the key first, then `work`; counted by method and status code.
    async fn call<T>(
        &self,
        method: &'static str,
        metadata: &MetadataMap,
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let result = match self.authorize(metadata) {
            Ok(()) => work.await,
            Err(e) => Err(e),
        };
        let result = result.map(Response::new).map_err(Status::from);
        self.metrics.observe(method, result.as_ref().map_or_else(Status::code, |_| Code::Ok), started);
        result
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(&self, request: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        self.call("ServerLive", request.metadata(), async { Ok(ServerLiveResponse { live: true }) }).await
    }

    async fn server_ready(
        &self,
        request: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        let ready = self.state.readiness.is_ready();
        self.call("ServerReady", request.metadata(), async move { Ok(ServerReadyResponse { ready }) }).await
    }

    /// Ready when loaded; a model known nowhere is not ready (an invalid name is an error).
    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let service = &self.state.service;
        self.call("ModelReady", &metadata, async {
            let ready = match service.protocol_model(&message.name, Some(&message.version)).await {
                Ok(id) => service.is_loaded(&id),
                Err(ApiError::NotFoundMessage(_)) => false,
                Err(e) => return Err(e),
            };
            Ok(ModelReadyResponse { ready })
        })
        .await
    }

    async fn server_metadata(
        &self,
        request: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        self.call("ServerMetadata", request.metadata(), async {
            Ok(ServerMetadataResponse {
                name: "sightline".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                extensions: ["model_configuration", "model_repository", "statistics"].map(String::from).to_vec(),
            })
        })
        .await
    }

    /// Loads the model when it is not loaded.
    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let service = &self.state.service;
        self.call("ModelMetadata", &metadata, async {
            let id = service.protocol_model(&message.name, Some(&message.version)).await?;
            Ok(tensors::metadata(service.protocol_metadata(&id).await?))
        })
        .await
    }

    /// Triton's model configuration (the same as REST's `/config`); loads the model.
    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let service = &self.state.service;
        self.call("ModelConfig", &metadata, async {
            let id = service.protocol_model(&message.name, Some(&message.version)).await?;
            let config = service.protocol_config(&id).await?;
            Ok(ModelConfigResponse { config: Some(tensors::config(config)) })
        })
        .await
    }

    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        self.call("ModelInfer", &metadata, infer(&self.state, message)).await
    }

    type ModelStreamInferStream = BoxStream<'static, Result<ModelStreamInferResponse, Status>>;

    /// Each request on the stream answered in the order sent, up to [`STREAM_IN_FLIGHT`] at a
    /// time; a request that fails is answered with its error and the stream goes on. The key is
    /// checked once, when the stream opens.
    async fn model_stream_infer(
        &self,
        request: Request<Streaming<ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        let started = Instant::now();
        if let Err(e) = self.authorize(request.metadata()) {
            let status = Status::from(e);
            self.metrics.observe("ModelStreamInfer", status.code(), started);
            return Err(status);
        }
        let (state, metrics) = (self.state.clone(), self.metrics.clone());
        let answers = request
            .into_inner()
            .take_while(|message| futures::future::ready(message.is_ok()))
            .filter_map(|message| futures::future::ready(message.ok()))
            .map(move |message| {
                let (state, metrics) = (state.clone(), metrics.clone());
                async move {
                    let started = Instant::now();
                    let answer = infer(&state, message).await.map_err(Status::from);
                    metrics.observe(
                        "ModelStreamInfer",
                        answer.as_ref().map_or_else(Status::code, |_| Code::Ok),
                        started,
                    );
                    Ok(match answer {
                        Ok(response) => {
                            ModelStreamInferResponse { error_message: String::new(), infer_response: Some(response) }
                        }
                        Err(status) => ModelStreamInferResponse {
                            error_message: status.message().to_owned(),
                            infer_response: None,
                        },
                    })
                }
            })
            .buffered(STREAM_IN_FLIGHT);
        Ok(Response::new(answers.boxed()))
    }

    /// Every loaded model's statistics, or those of the model named (all its loaded versions).
    async fn model_statistics(
        &self,
        request: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let state = &self.state;
        self.call("ModelStatistics", &metadata, async {
            let name = Some(message.name.as_str()).filter(|n| !n.is_empty());
            let report = crate::statistics::report(&state.service, &state.registry, name, Some(&message.version))?;
            Ok(extensions::statistics(report))
        })
        .await
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let state = &self.state;
        self.call("RepositoryIndex", &metadata, async {
            Ok(extensions::index(state.repository.index(&state.service, message.ready).await?))
        })
        .await
    }

    /// Loads the model (`dataset`, its newest known version, or `dataset/version`) and keeps it
    /// loaded until it is unloaded; answers once it is loaded.
    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let state = &self.state;
        self.call("RepositoryModelLoad", &metadata, async {
            crate::repository::check_parameters(message.parameters.keys().map(String::as_str))?;
            state.repository.load(&state.service, &message.model_name).await?;
            Ok(RepositoryModelLoadResponse {})
        })
        .await
    }

    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let state = &self.state;
        self.call("RepositoryModelUnload", &metadata, async {
            state.repository.unload(&state.service, &message.model_name).await?;
            Ok(RepositoryModelUnloadResponse {})
        })
        .await
    }
}

/// Requests of one stream in progress at once: enough to keep a model's batches full from one
/// client, few enough that one stream cannot fill the queue on its own.
const STREAM_IN_FLIGHT: usize = 8;

/// One inference: the model first (an unknown model is NOT_FOUND whatever the inputs are), then
/// the inputs, the run and the outputs asked for.
async fn infer(state: &AppState, message: ModelInferRequest) -> Result<ModelInferResponse, ApiError> {
    let service = &state.service;
    let id = service.protocol_model(&message.model_name, Some(&message.model_version)).await?;
    service.load(&id).await?;
    let inputs = tensors::inputs(message.inputs, message.raw_input_contents)?;
    let outputs = service.run_tensors(&id, inputs).await?;
    let (outputs, raw_output_contents) = tensors::outputs(outputs, &message.outputs)?;
    Ok(ModelInferResponse {
        model_name: id.dataset().to_owned(),
        model_version: id.version().to_owned(),
        id: message.id,
        parameters: Default::default(),
        outputs,
        raw_output_contents,
    })
}
