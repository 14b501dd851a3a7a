//! One ONNX Runtime session per loaded model, served by its own thread through a bounded queue.
//!
//! The thread keeps `Session::run` (which blocks and needs `&mut`) off the async runtime; the queue
//! bounds the memory a burst can pin and is where dynamic batching will gather requests.

use std::panic::AssertUnwindSafe;

use ndarray::Array4;
use ort::session::Session;
use tokio::sync::{mpsc, oneshot};

use super::session::{run_session_with, shrinking_run_options, Outputs};
use crate::ModelError;

struct Job {
    input: Array4<f32>,
    reply: oneshot::Sender<Result<Outputs, ModelError>>,
}

pub struct OnnxWorker {
    sender: mpsc::Sender<Job>,
    model_id: String,
}

impl OnnxWorker {
    /// Moves the session onto a new thread; the thread ends when the worker (the model) is dropped.
    pub fn start(session: Session, model_id: &str, queue_capacity: usize) -> Result<OnnxWorker, ModelError> {
        Self::spawn(session, model_id, queue_capacity, false)
    }

    /// For a session whose input shape changes with every request: its CPU arena is shrunk after
    /// each run, so memory follows the current image, not the largest one seen.
    pub fn start_varying_shapes(
        session: Session,
        model_id: &str,
        queue_capacity: usize,
    ) -> Result<OnnxWorker, ModelError> {
        Self::spawn(session, model_id, queue_capacity, true)
    }

    fn spawn(
        mut session: Session,
        model_id: &str,
        queue_capacity: usize,
        shrink: bool,
    ) -> Result<OnnxWorker, ModelError> {
        let run_options = if shrink { Some(shrinking_run_options()?) } else { None };
        let (sender, mut receiver) = mpsc::channel::<Job>(queue_capacity.max(1));
        std::thread::Builder::new()
            .name(format!("ort-{model_id}"))
            .spawn(move || {
                while let Some(job) = receiver.blocking_recv() {
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        run_session_with(&mut session, &job.input, run_options.as_ref())
                    }))
                    .unwrap_or_else(|_| Err(ModelError::Inference("ONNX Runtime call panicked".into())));
                    let _ = job.reply.send(result);
                }
                // The model is gone: free its session here, then hand the freed heap back to the
                // OS, so that an unloaded model's memory really comes back.
                drop(session);
                sightline_core::process_memory::release_free_memory();
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
