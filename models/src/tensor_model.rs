//! Tensor in, tensor out: any single-session ONNX model through the Open Inference Protocol.
//! A folder with a `model.onnx` and none of Roboflow's metadata is served this way only; task
//! models (detection, classification, ...) also answer tensors through the same instances and
//! queue as their images, so both kinds of request share the model's batches and its limits.

use std::path::Path;

use async_trait::async_trait;
use ort::session::Session;
use sightline_core::{
    CoreError, DataType, InferRequest, InferResponse, Model, ModelDescription, ModelId, Task, Tensor, TensorSignature,
};

use crate::engine::batch::{batched_matches, limit_after_check};
use crate::engine::tensors::{run_tensors, signature_of, split_rows, zero_inputs};
use crate::engine::{ModelSessions, OnnxWorker};
use crate::load_options::LoadOptions;
use crate::ModelError;

/// The file a plain ONNX model folder holds.
pub const TENSOR_MODEL_FILE: &str = "model.onnx";

pub struct TensorModel {
    description: ModelDescription,
    worker: OnnxWorker,
}

impl TensorModel {
    /// Blocking: builds the session on the first provider that runs it on zeros, and lets it take
    /// batches when every input and output has a symbolic first axis and a batch of two zeros
    /// gives what one gives, twice.
    pub fn load(
        id: &ModelId,
        dir: &Path,
        options: &LoadOptions,
        sessions: &mut ModelSessions<'_>,
    ) -> Result<TensorModel, ModelError> {
        let file = dir.join(TENSOR_MODEL_FILE);
        let broken = |reason: String| ModelError::BrokenModel { file: file.clone(), reason };
        let (session, _, (signature, batch_limit)) = sessions.checked(&file, false, |session, _| {
            let signature = signature_of(session).map_err(broken)?;
            let single = run_tensors(session, &zero_inputs(&signature, 1), None)
                .map_err(|e| broken(format!("test inference failed: {e}")))?;
            let limit = batch_limit(session, &signature, &single, &file);
            Ok((signature, limit))
        })?;
        let name = id.to_string();
        let instances = sessions.instances(&file, session, false)?;
        let worker = OnnxWorker::start(instances, &name, options.worker(&name, batch_limit, false))?;
        let batch_size = signature.inputs.first().and_then(|i| i.shape.first()).and_then(|&d| usize::try_from(d).ok());
        let description = ModelDescription {
            model_id: name,
            task: Task::Tensor,
            architecture: "onnx".into(),
            batch_size,
            tensors: Some(signature),
            ..ModelDescription::unplaced()
        };
        Ok(TensorModel { description, worker })
    }
}

fn batch_limit(session: &mut Session, signature: &TensorSignature, single: &[Tensor], file: &Path) -> usize {
    let symbolic = |specs: &[sightline_core::TensorSpec]| specs.iter().all(|s| s.shape.first() == Some(&-1));
    if !symbolic(&signature.inputs) || !symbolic(&signature.outputs) {
        return 1;
    }
    let mut check = || -> Result<(), String> {
        let outputs = run_tensors(session, &zero_inputs(signature, 2), None).map_err(|e| e.to_string())?;
        for half in split_rows(outputs, &[1, 1]).map_err(|e| e.to_string())? {
            if !half.iter().zip(single).all(|(a, b)| same_values(a, b)) {
                return Err("a batch of two differs from one input".into());
            }
        }
        Ok(())
    };
    limit_after_check(file, check())
}

/// Equal bytes, or for FP32 within the tolerance batched image models get.
fn same_values(a: &Tensor, b: &Tensor) -> bool {
    if a.shape != b.shape || a.datatype != b.datatype {
        return false;
    }
    if a.datatype != DataType::Fp32 {
        return a.data == b.data;
    }
    let floats =
        |t: &Tensor| t.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<f32>>();
    batched_matches(floats(a), floats(b)).is_ok()
}

/// Runs protocol tensors on a model's instances: checked against the signature in its
/// description, admitted like an image, queued and batched with the model's other requests.
pub async fn infer_tensors(
    worker: &OnnxWorker,
    description: &ModelDescription,
    inputs: Vec<Tensor>,
) -> Result<InferResponse, CoreError> {
    let signature = description.tensors.as_ref().ok_or_else(|| CoreError::TaskMismatch {
        model_id: description.model_id.clone(),
        actual: description.task.to_string(),
        requested: "tensor".into(),
    })?;
    let inputs = signature.arrange(inputs)?;
    let _admitted = worker.admit()?;
    Ok(InferResponse::Tensors(worker.run_tensors(inputs).await?))
}

#[async_trait]
impl Model for TensorModel {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    async fn infer(&self, request: InferRequest) -> Result<InferResponse, CoreError> {
        match request {
            InferRequest::Tensors(inputs) => infer_tensors(&self.worker, &self.description, inputs).await,
            InferRequest::Image(image) => Err(CoreError::TaskMismatch {
                model_id: self.description.model_id.clone(),
                actual: "tensor (a plain ONNX model: use /v2/models/.../infer)".into(),
                requested: image.task().to_string(),
            }),
        }
    }
}
