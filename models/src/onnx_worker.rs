//! One ONNX Runtime session per loaded model, served by its own thread through a bounded queue.
//!
//! The thread keeps `Session::run` (which blocks and needs `&mut`) off the async runtime; the queue
//! bounds the memory a burst can pin and is where dynamic batching will gather requests.

use std::panic::AssertUnwindSafe;
use std::path::Path;

use ndarray::{Array4, ArrayD};
use ort::session::Session;
use ort::value::TensorRef;
use tokio::sync::{mpsc, oneshot};

use crate::runtime::environment;
use crate::ModelError;

pub type Outputs = Vec<ArrayD<f32>>;

struct Job {
    input: Array4<f32>,
    reply: oneshot::Sender<Result<Outputs, ModelError>>,
}

/// Static facts about a session's single input and its outputs; `-1` marks a symbolic dimension.
#[derive(Debug, Clone)]
pub struct SessionShape {
    pub input_name: String,
    pub input_dims: Vec<i64>,
    pub output_names: Vec<String>,
    pub output_dims: Vec<Vec<i64>>,
}

fn broken(path: &Path, reason: String) -> ModelError {
    ModelError::BrokenModel { file: path.to_path_buf(), reason }
}

/// Builds a CPU session from an ONNX file; `intra_threads == 0` leaves ONNX Runtime's default.
pub fn build_session(path: &Path, intra_threads: usize) -> Result<(Session, SessionShape), ModelError> {
    let env = environment()?;
    let mut builder = Session::builder(env).map_err(|e| broken(path, e.to_string()))?;
    if intra_threads > 0 {
        builder = builder.with_intra_threads(intra_threads).map_err(|e| broken(path, e.to_string()))?;
    }
    let session =
        builder.commit_from_file(path).map_err(|e| broken(path, format!("not a loadable ONNX model: {e}")))?;
    let [input] = session.inputs() else {
        return Err(broken(path, format!("expected one input, found {}", session.inputs().len())));
    };
    let dims = |t: &ort::value::ValueType| t.tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
    let shape = SessionShape {
        input_name: input.name().to_owned(),
        input_dims: dims(input.dtype()),
        output_names: session.outputs().iter().map(|o| o.name().to_owned()).collect(),
        output_dims: session.outputs().iter().map(|o| dims(o.dtype())).collect(),
    };
    Ok((session, shape))
}

impl SessionShape {
    /// `(width, height)` of a `(batch, 3, height, width)` input with a fixed height and width.
    pub fn fixed_input_size(&self, file: &Path) -> Result<(u32, u32), ModelError> {
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

/// Runs `input` once at load time, so a model that cannot infer is refused before it is served.
pub fn test_inference(session: &mut Session, path: &Path, input: &Array4<f32>) -> Result<Outputs, ModelError> {
    run_session(session, input).map_err(|e| broken(path, format!("test inference failed: {e}")))
}

/// A session for a fixed-size `(batch, 3, height, width)` model, checked on a grey (114) image:
/// the session, its shape, its `(width, height)` and the test outputs.
pub fn build_fixed_size_session(
    path: &Path,
    intra_threads: usize,
) -> Result<(Session, SessionShape, (u32, u32), Outputs), ModelError> {
    let (mut session, shape) = build_session(path, intra_threads)?;
    let (width, height) = shape.fixed_input_size(path)?;
    let grey = Array4::<f32>::from_elem((1, 3, height as usize, width as usize), 114.0 / 255.0);
    let outputs = test_inference(&mut session, path, &grey)?;
    Ok((session, shape, (width, height), outputs))
}

/// Runs one batch synchronously; outputs in the session's output order.
pub fn run_session(session: &mut Session, input: &Array4<f32>) -> Result<Outputs, ModelError> {
    let tensor = TensorRef::from_array_view(input).map_err(|e| ModelError::Inference(e.to_string()))?;
    let names: Vec<String> = session.outputs().iter().map(|o| o.name().to_owned()).collect();
    let outputs = session.run(ort::inputs![tensor]).map_err(|e| ModelError::Inference(e.to_string()))?;
    names
        .iter()
        .map(|name| {
            let value =
                outputs.get(name.as_str()).ok_or_else(|| ModelError::Inference(format!("no output {name:?}")))?;
            let array =
                value.try_extract_array::<f32>().map_err(|e| ModelError::Inference(format!("output {name:?}: {e}")))?;
            Ok(array.to_owned())
        })
        .collect()
}

pub struct OnnxWorker {
    sender: mpsc::Sender<Job>,
    model_id: String,
}

impl OnnxWorker {
    /// Moves the session onto a new thread; the thread ends when the worker (the model) is dropped.
    pub fn start(mut session: Session, model_id: &str, queue_capacity: usize) -> Result<OnnxWorker, ModelError> {
        let (sender, mut receiver) = mpsc::channel::<Job>(queue_capacity.max(1));
        std::thread::Builder::new()
            .name(format!("ort-{model_id}"))
            .spawn(move || {
                while let Some(job) = receiver.blocking_recv() {
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| run_session(&mut session, &job.input)))
                        .unwrap_or_else(|_| Err(ModelError::Inference("ONNX Runtime call panicked".into())));
                    let _ = job.reply.send(result);
                }
            })
            .map_err(|e| ModelError::Inference(format!("cannot start inference thread: {e}")))?;
        Ok(OnnxWorker { sender, model_id: model_id.to_owned() })
    }

    /// Queues one input; a full queue is refused at once (the client is told to retry) rather than
    /// letting waiters pile up without bound.
    pub async fn run(&self, input: Array4<f32>) -> Result<Outputs, ModelError> {
        let (reply, response) = oneshot::channel();
        self.sender.try_send(Job { input, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ModelError::Overloaded(self.model_id.clone()),
            mpsc::error::TrySendError::Closed(_) => ModelError::Inference("inference thread has stopped".into()),
        })?;
        response.await.map_err(|_| ModelError::Inference("inference thread dropped the request".into()))?
    }
}
