//! A loaded model's inference instances: one or more sessions (Triton's instance group), each on
//! its own thread, all taking batches from one bounded queue.
//!
//! The threads keep `Session::run` (which blocks and needs `&mut`) off the async runtime. The
//! queue bounds the memory a burst can pin; a free instance gathers the next batch from it while
//! the others run, so preparing requests, gathering and inference overlap.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ndarray::Array4;
use ort::session::{RunOptions, Session};
use tokio::sync::oneshot;

use sightline_core::Tensor;

use super::batch::{gather, split, stack, BatchPolicy};
use super::session::{run_session_with, shrinking_run_options, Outputs};
use super::tensors::{concat, run_tensors, split_rows};
use super::threads::{retire, spawn_serving};
use crate::pipeline::StageTimers;
use crate::ModelError;

/// What one request hands an instance: a prepared `(1, 3, h, w)` image, or protocol tensors in the
/// session's input order.
enum Work {
    Image(Array4<f32>),
    Tensors(Vec<Tensor>),
}

enum Done {
    Image(Outputs),
    Tensors(Vec<Tensor>),
}

struct Job {
    input: Work,
    queued: Instant,
    reply: oneshot::Sender<Result<Done, ModelError>>,
}

/// How a model's instances take their work.
#[derive(Clone)]
pub struct WorkerOptions {
    /// Requests that may wait for the model's instances.
    pub queue_capacity: usize,
    pub batch: BatchPolicy,
    /// The session's input shape changes with every request (OCR): its CPU arena is shrunk after
    /// each run, so memory follows the current image, not the largest one seen.
    pub varying_shapes: bool,
    pub timers: StageTimers,
    /// The nice value the sessions are torn down at when the model is dropped (`MODEL_LOAD_NICE`:
    /// freeing a model is load work, not serving work).
    pub retire_nice: i32,
}

pub struct OnnxWorker {
    sender: SyncSender<Job>,
    model_id: String,
    admitted: Arc<AtomicUsize>,
    /// Requests the model takes at once: those queued plus those its instances are running.
    capacity: usize,
    timers: StageTimers,
}

/// A request admitted to a model, from before its decoding to its answer; dropping it frees the place.
pub struct Admission {
    admitted: Arc<AtomicUsize>,
    gauge: prometheus::IntGauge,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

impl OnnxWorker {
    /// Moves each session onto its own thread; the threads end when the worker (the model) is
    /// dropped, once the queue is drained.
    pub fn start(instances: Vec<Session>, model_id: &str, options: WorkerOptions) -> Result<OnnxWorker, ModelError> {
        if instances.is_empty() {
            return Err(ModelError::Inference(format!("{model_id}: no session to serve")));
        }
        let (sender, receiver) = sync_channel::<Job>(options.queue_capacity.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let capacity = options.queue_capacity.max(1) + instances.len() * options.batch.max_batch;
        let timers = options.timers.clone();
        for (index, session) in instances.into_iter().enumerate() {
            let instance = Instance {
                session,
                queue: receiver.clone(),
                run_options: if options.varying_shapes { Some(shrinking_run_options()?) } else { None },
                batch: options.batch,
                timers: options.timers.clone(),
                retire_nice: options.retire_nice,
            };
            spawn_serving(format!("ort-{model_id}-{index}"), move || instance.serve())
                .map_err(|e| ModelError::Inference(format!("cannot start inference thread: {e}")))?;
        }
        Ok(OnnxWorker {
            sender,
            model_id: model_id.to_owned(),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity,
            timers,
        })
    }

    /// Admits one request before its image is decoded, or refuses it at once when the model has
    /// `MODEL_QUEUE_CAPACITY` requests waiting beyond what its instances are running: the bound
    /// covers requests waiting to be decoded too, not only those waiting for inference.
    pub fn admit(&self) -> Result<Admission, ModelError> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(ModelError::Overloaded(self.model_id.clone()));
        }
        self.timers.in_flight.inc();
        Ok(Admission { admitted: self.admitted.clone(), gauge: self.timers.in_flight.clone() })
    }

    /// Queues one `(1, 3, h, w)` input.
    pub async fn run(&self, input: Array4<f32>) -> Result<Outputs, ModelError> {
        match self.queue(Work::Image(input)).await? {
            Done::Image(outputs) => Ok(outputs),
            Done::Tensors(_) => Err(ModelError::Inference("an image request was answered with tensors".into())),
        }
    }

    /// Queues one request's tensors (in the session's input order); batched with other tensor
    /// requests whose shapes agree beyond the first axis.
    pub async fn run_tensors(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError> {
        match self.queue(Work::Tensors(inputs)).await? {
            Done::Tensors(outputs) => Ok(outputs),
            Done::Image(_) => {
                Err(ModelError::Inference("a tensor request was answered with an image's outputs".into()))
            }
        }
    }

    /// A full queue is refused at once (the client is told to retry) rather than letting waiters
    /// pile up without bound.
    async fn queue(&self, input: Work) -> Result<Done, ModelError> {
        let (reply, response) = oneshot::channel();
        // Counted before the send: an instance may take the job (and count it out) at once.
        self.timers.queue_depth.inc();
        self.sender.try_send(Job { input, queued: Instant::now(), reply }).map_err(|e| {
            self.timers.queue_depth.dec();
            match e {
                TrySendError::Full(_) => ModelError::Overloaded(self.model_id.clone()),
                TrySendError::Disconnected(_) => ModelError::Inference("inference thread has stopped".into()),
            }
        })?;
        response.await.map_err(|_| ModelError::Inference("inference thread dropped the request".into()))?
    }
}

struct Instance {
    session: Session,
    queue: Arc<Mutex<Receiver<Job>>>,
    run_options: Option<RunOptions>,
    batch: BatchPolicy,
    timers: StageTimers,
    retire_nice: i32,
}

impl Instance {
    fn serve(mut self) {
        loop {
            // One instance gathers at a time; the lock is released before the batch runs.
            let batch = {
                let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                gather(&queue, self.batch)
            };
            let Some(batch) = batch else { break };
            self.run_batch(batch);
        }
        // The model is gone: its session is freed and the heap handed back to the OS (so that an
        // unloaded model's memory really comes back) at the priority of loads.
        retire(self.session, self.retire_nice);
    }

    fn run_batch(&mut self, jobs: Vec<Job>) {
        let started = Instant::now();
        self.timers.queue_depth.sub(jobs.len() as i64);
        for job in &jobs {
            self.timers.queue.observe(started.duration_since(job.queued).as_secs_f64());
        }
        self.timers.batch_size.observe(jobs.len() as f64);
        self.timers.inferences.inc_by(jobs.len() as u64);
        let results = std::panic::catch_unwind(AssertUnwindSafe(|| self.infer(&jobs))).unwrap_or_else(|_| {
            jobs.iter().map(|_| Err(ModelError::Inference("ONNX Runtime call panicked".into()))).collect()
        });
        let seconds = started.elapsed().as_secs_f64();
        for (job, result) in jobs.into_iter().zip(results) {
            self.timers.inference.observe(seconds);
            let _ = job.reply.send(result);
        }
    }

    /// One result per job: batched in one run where the jobs allow it, else one run each.
    fn infer(&mut self, jobs: &[Job]) -> Vec<Result<Done, ModelError>> {
        let images: Option<Vec<&Array4<f32>>> =
            jobs.iter().map(|j| if let Work::Image(i) = &j.input { Some(i) } else { None }).collect();
        let tensors: Option<Vec<&[Tensor]>> =
            jobs.iter().map(|j| if let Work::Tensors(t) = &j.input { Some(t.as_slice()) } else { None }).collect();
        let batched = match (jobs.len(), images, tensors) {
            (1, _, _) => None,
            (n, Some(images), _) => Some(self.images(&images, n)),
            (_, _, Some(requests)) => concat(&requests).map(|joined| self.tensor_batch(joined, &requests)),
            _ => None,
        };
        match batched {
            Some(Ok(done)) => done.into_iter().map(Ok).collect(),
            Some(Err(e)) => jobs.iter().map(|_| Err(ModelError::Inference(e.to_string()))).collect(),
            None => jobs.iter().map(|job| self.one(&job.input)).collect(),
        }
    }

    fn one(&mut self, input: &Work) -> Result<Done, ModelError> {
        self.timers.executions.inc();
        let options = self.run_options.as_ref();
        match input {
            Work::Image(image) => run_session_with(&mut self.session, image, options).map(Done::Image),
            Work::Tensors(tensors) => run_tensors(&mut self.session, tensors, options).map(Done::Tensors),
        }
    }

    fn images(&mut self, inputs: &[&Array4<f32>], count: usize) -> Result<Vec<Done>, ModelError> {
        self.timers.executions.inc();
        let batch = stack(inputs)?;
        let outputs = run_session_with(&mut self.session, &batch, self.run_options.as_ref())?;
        Ok(split(outputs, count)?.into_iter().map(Done::Image).collect())
    }

    fn tensor_batch(&mut self, joined: Vec<Tensor>, requests: &[&[Tensor]]) -> Result<Vec<Done>, ModelError> {
        self.timers.executions.inc();
        let rows: Vec<usize> = requests.iter().map(|r| r.first().map_or(0, |t| t.shape[0])).collect();
        let outputs = run_tensors(&mut self.session, &joined, self.run_options.as_ref())?;
        Ok(split_rows(outputs, &rows)?.into_iter().map(Done::Tensors).collect())
    }
}
