//! A built ONNX Runtime session as task models hold it: its shape and the ways to run it. The
//! `ort` session inside never leaves the engine.

use std::path::Path;

use ndarray::{Array4, ArrayView4};
use ort::session::{RunOptions, Session};
use ort::value::TensorRef;
use sightline_core::{Tensor, TensorSignature};

use crate::batch::Outputs;
use crate::EngineError;

/// One session of a model, built and checked by [`crate::ModelSessions`].
pub struct ModelSession(pub(crate) Session);

impl ModelSession {
    /// Its inputs and outputs as the Open Inference Protocol describes them.
    pub fn signature(&self) -> Result<TensorSignature, String> {
        crate::tensors::signature_of(&self.0)
    }

    /// Runs one `(n, 3, h, w)` batch; outputs in the session's output order.
    pub fn run(&mut self, input: &Array4<f32>) -> Result<Outputs, EngineError> {
        run_session(&mut self.0, input)
    }

    /// Runs protocol tensors given in the session's input order.
    pub fn run_tensors(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, EngineError> {
        crate::tensors::run_tensors(&mut self.0, inputs, None)
    }
}

/// Static facts about a session's single input and its outputs; `-1` marks a symbolic dimension.
#[derive(Debug, Clone)]
pub struct SessionShape {
    /// Task models take one input; the protocol's models any number (the first is described here).
    pub input_count: usize,
    pub input_name: String,
    pub input_dims: Vec<i64>,
    pub output_names: Vec<String>,
    pub output_dims: Vec<Vec<i64>>,
}

pub(crate) fn broken(path: &Path, reason: String) -> EngineError {
    EngineError::BrokenModel { file: path.to_path_buf(), reason }
}

impl SessionShape {
    pub(crate) fn of(session: &Session, path: &Path) -> Result<SessionShape, EngineError> {
        let Some(input) = session.inputs().first() else {
            return Err(broken(path, "the model has no input".into()));
        };
        let dims = |t: &ort::value::ValueType| t.tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
        Ok(SessionShape {
            input_count: session.inputs().len(),
            input_name: input.name().to_owned(),
            input_dims: dims(input.dtype()),
            output_names: session.outputs().iter().map(|o| o.name().to_owned()).collect(),
            output_dims: session.outputs().iter().map(|o| dims(o.dtype())).collect(),
        })
    }

    /// `(width, height)` of a `(batch, 3, height, width)` input with a fixed height and width.
    pub fn fixed_input_size(&self, file: &Path) -> Result<(u32, u32), EngineError> {
        let fixed = |d: i64| u32::try_from(d).ok().filter(|&d| d > 0);
        match self.input_dims.as_slice() {
            [_, 3, h, w] => match (fixed(*w), fixed(*h)) {
                (Some(w), Some(h)) => Ok((w, h)),
                _ => Err(broken(file, format!("input {:?} must have a fixed height and width", self.input_dims))),
            },
            dims => Err(broken(file, format!("input must be (batch, 3, height, width), found {dims:?}"))),
        }
    }

    /// The fixed batch size, or `None` for a symbolic batch axis.
    pub fn batch_size(&self) -> Option<usize> {
        self.input_dims.first().and_then(|&b| usize::try_from(b).ok()).filter(|&b| b > 0)
    }
}

/// Run options that hand the CPU arena's unused memory back after each run: for sessions whose
/// input shape changes with every request, whose arena would otherwise keep the largest run's
/// memory for as long as the model is loaded.
pub fn shrinking_run_options() -> Result<RunOptions, EngineError> {
    let mut options = RunOptions::new().map_err(|e| EngineError::Inference(e.to_string()))?;
    options.set("memory.enable_memory_arena_shrinkage", "cpu:0").map_err(|e| EngineError::Inference(e.to_string()))?;
    Ok(options)
}

/// Runs one batch synchronously; outputs in the session's output order.
pub fn run_session(session: &mut Session, input: &Array4<f32>) -> Result<Outputs, EngineError> {
    run_session_with(session, input.view(), None)
}

/// As [`run_session`], with run options.
pub fn run_session_with(
    session: &mut Session,
    input: ArrayView4<'_, f32>,
    options: Option<&RunOptions>,
) -> Result<Outputs, EngineError> {
    let tensor = TensorRef::from_array_view(input).map_err(|e| EngineError::Inference(e.to_string()))?;
    let names: Vec<String> = session.outputs().iter().map(|o| o.name().to_owned()).collect();
    let outputs = match options {
        Some(options) => session.run_with_options(ort::inputs![tensor], options),
        None => session.run(ort::inputs![tensor]),
    }
    .map_err(|e| EngineError::Inference(e.to_string()))?;
    names
        .iter()
        .map(|name| {
            let value =
                outputs.get(name.as_str()).ok_or_else(|| EngineError::Inference(format!("no output {name:?}")))?;
            let array = value
                .try_extract_array::<f32>()
                .map_err(|e| EngineError::Inference(format!("output {name:?}: {e}")))?;
            Ok(array.to_owned())
        })
        .collect()
}
