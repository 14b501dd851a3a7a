//! A closed-loop load over the Open Inference Protocol's gRPC `ModelInfer`, with `raw_input_contents`
//! as tritonclient sends them: each client its own connection, its next request sent when the last
//! answer is read. The messages carry only the fields a request needs, with the protocol's numbers.

use std::time::{Duration, Instant};

use tonic::transport::Channel;

use crate::closed_loop::{Level, Tally};

#[derive(Clone, PartialEq, prost::Message)]
pub struct InferInputTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub datatype: String,
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferRequest {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(string, tag = "2")]
    pub model_version: String,
    #[prost(message, repeated, tag = "5")]
    pub inputs: Vec<InferInputTensor>,
    /// Shared bytes: a client's clone of the request for its next call copies no tensor.
    #[prost(bytes = "bytes", repeated, tag = "7")]
    pub raw_input_contents: Vec<bytes::Bytes>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferResponse {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub raw_output_contents: Vec<Vec<u8>>,
}

const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";

/// One call; an answer without outputs is a failure.
async fn infer(channel: Channel, request: ModelInferRequest) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<ModelInferRequest, ModelInferResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(MODEL_INFER);
    let answer = grpc.unary(tonic::Request::new(request), path, codec).await?.into_inner();
    if answer.raw_output_contents.is_empty() {
        return Err(tonic::Status::internal("no outputs"));
    }
    Ok(())
}

/// `clients` clients sending `request` to `address` (`http://host:port`) for `duration`.
pub async fn run_grpc_level(address: &str, request: ModelInferRequest, clients: usize, duration: Duration) -> Level {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let channel = Channel::from_shared(address.to_owned()).unwrap().connect().await.unwrap();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let sent = Instant::now();
                match infer(channel.clone(), request.clone()).await {
                    Ok(()) => tally.answered(started, sent),
                    Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                        // As the REST clients wait out Retry-After.
                        tally.refused();
                        tokio::time::sleep_until((Instant::now() + Duration::from_secs(1)).min(deadline).into()).await;
                    }
                    Err(_) => tally.failed(),
                }
            }
            tally
        }));
    }
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await.unwrap_or_default());
    }
    Level::of(tallies, started, duration)
}
