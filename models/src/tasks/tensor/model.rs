//! Tensor in, tensor out: any single-session ONNX model through the Open Inference Protocol.
//! A folder with a `model.onnx` and none of Roboflow's metadata is served this way only; task
//! models (detection, classification, ...) also answer tensors through the same instances and
//! queue as their images, so both kinds of request share the model's batches and its limits.

use std::path::Path;

use sightline_core::{DataType, Model, ModelDescription, ModelId, RunTensors, Task, Tensor, TensorSignature};
use sightline_engine::{
    batched_matches, limit_after_check, split_rows, zero_inputs, EngineError, ModelSession, ModelSessions,
};

use crate::load_options::LoadOptions;
use crate::tasks::instances::Instances;
use crate::ModelError;

/// The file a plain ONNX model folder holds.
pub const TENSOR_MODEL_FILE: &str = "model.onnx";

pub struct TensorModel {
    description: ModelDescription,
    instances: Instances,
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
        let broken = |reason: String| EngineError::BrokenModel { file: file.clone(), reason };
        let (session, _, (signature, batch_limit)) = sessions.checked(&file, false, |session, _| {
            let signature = session.signature().map_err(broken)?;
            let single = session
                .run_tensors(&zero_inputs(&signature, 1))
                .map_err(|e| broken(format!("test inference failed: {e}")))?;
            let limit = batch_limit(session, &signature, &single, &file);
            Ok((signature, limit))
        })?;
        let name = id.to_string();
        let batch_size = signature.inputs.first().and_then(|i| i.shape.first()).and_then(|&d| usize::try_from(d).ok());
        let instances =
            Instances::start(sessions, &file, session, batch_limit, Some(signature.clone()), options, &name)?;
        let description = ModelDescription {
            task: Task::Tensor,
            architecture: "onnx".into(),
            batch_size,
            tensors: Some(signature),
            ..ModelDescription::unplaced(id.clone())
        };
        Ok(TensorModel { description, instances })
    }
}

fn batch_limit(session: &mut ModelSession, signature: &TensorSignature, single: &[Tensor], file: &Path) -> usize {
    let symbolic = |specs: &[sightline_core::TensorSpec]| specs.iter().all(|s| s.shape.first() == Some(&-1));
    if !symbolic(&signature.inputs) || !symbolic(&signature.outputs) {
        return 1;
    }
    let mut check = || -> Result<(), String> {
        let outputs = session.run_tensors(&zero_inputs(signature, 2)).map_err(|e| e.to_string())?;
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

impl Model for TensorModel {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn tensor_runner(&self) -> Option<&dyn RunTensors> {
        self.instances.tensor_runner()
    }
}
