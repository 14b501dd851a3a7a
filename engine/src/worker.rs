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
use ort::session::RunOptions;
use tokio::sync::oneshot;

use sightline_core::Tensor;

use crate::batch::Outputs;
use crate::batch::{gather, split, stack, BatchPolicy};
use crate::pipeline::StageTimers;
use crate::session::{run_session_with, shrinking_run_options, ModelSession};
use crate::tensors::{concat, run_tensors, split_rows};
use crate::threads::{retire, spawn_serving};
use crate::EngineError;

/// One request waiting for an instance, with a reply of the type it asks for.
struct Pending<I, O> {
    input: I,
    queued: Instant,
    reply: oneshot::Sender<Result<O, EngineError>>,
}

/// A prepared `(1, 3, h, w)` image gets the session's outputs back; protocol tensors (in the
/// session's input order) get tensors back.
enum Job {
    Image(Pending<Array4<f32>, Outputs>),
    Tensors(Pending<Vec<Tensor>, Vec<Tensor>>),
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
    pub fn start(
        instances: Vec<ModelSession>,
        model_id: &str,
        options: WorkerOptions,
    ) -> Result<OnnxWorker, EngineError> {
        if instances.is_empty() {
            return Err(EngineError::Inference(format!("{model_id}: no session to serve")));
        }
        let (sender, receiver) = sync_channel::<Job>(options.queue_capacity.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let capacity = options.queue_capacity.max(1) + instances.len() * options.batch.max_batch;
        let timers = options.timers.clone();
        for (index, session) in instances.into_iter().enumerate() {
            let instance = Instance {
                session: session.0,
                queue: receiver.clone(),
                run_options: if options.varying_shapes { Some(shrinking_run_options()?) } else { None },
                batch: options.batch,
                timers: options.timers.clone(),
                retire_nice: options.retire_nice,
            };
            spawn_serving(format!("ort-{model_id}-{index}"), move || instance.serve())
                .map_err(|e| EngineError::Inference(format!("cannot start inference thread: {e}")))?;
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
    pub fn admit(&self) -> Result<Admission, EngineError> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::Overloaded(self.model_id.clone()));
        }
        self.timers.in_flight.inc();
        Ok(Admission { admitted: self.admitted.clone(), gauge: self.timers.in_flight.clone() })
    }

    /// Queues one `(1, 3, h, w)` input.
    pub async fn run(&self, input: Array4<f32>) -> Result<Outputs, EngineError> {
        let (reply, response) = oneshot::channel();
        self.queue(Job::Image(Pending { input, queued: Instant::now(), reply }))?;
        response.await.map_err(|_| dropped())?
    }

    /// Queues one request's tensors (in the session's input order); batched with other tensor
    /// requests whose shapes agree beyond the first axis.
    pub async fn run_tensors(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError> {
        let (reply, response) = oneshot::channel();
        self.queue(Job::Tensors(Pending { input: inputs, queued: Instant::now(), reply }))?;
        response.await.map_err(|_| dropped())?
    }

    /// A full queue is refused at once (the client is told to retry) rather than letting waiters
    /// pile up without bound.
    fn queue(&self, job: Job) -> Result<(), EngineError> {
        // Counted before the send: an instance may take the job (and count it out) at once.
        self.timers.queue_depth.inc();
        self.sender.try_send(job).map_err(|e| {
            self.timers.queue_depth.dec();
            match e {
                TrySendError::Full(_) => EngineError::Overloaded(self.model_id.clone()),
                TrySendError::Disconnected(_) => EngineError::Inference("inference thread has stopped".into()),
            }
        })
    }
}

fn dropped() -> EngineError {
    EngineError::Inference("inference thread dropped the request".into())
}

struct Instance {
    session: ort::session::Session,
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
        self.timers.batch_size.observe(jobs.len() as f64);
        self.timers.inferences.inc_by(jobs.len() as u64);
        let mut images = Vec::new();
        let mut tensors = Vec::new();
        for job in jobs {
            match job {
                Job::Image(job) => images.push(job),
                Job::Tensors(job) => tensors.push(job),
            }
        }
        for queued in images.iter().map(|j| j.queued).chain(tensors.iter().map(|j| j.queued)) {
            self.timers.queue.observe(started.duration_since(queued).as_secs_f64());
        }
        // A batch of one kind runs as one; a mixed one (rare) runs request by request.
        let mixed = !images.is_empty() && !tensors.is_empty();
        let image_results = self.guarded(&images, |instance, inputs| match mixed {
            false => instance.images(inputs),
            true => inputs.iter().flat_map(|input| instance.images(&[*input])).collect(),
        });
        let tensor_results = self.guarded(&tensors, |instance, inputs| match mixed {
            false => instance.tensors(inputs),
            true => inputs.iter().flat_map(|input| instance.tensors(&[*input])).collect(),
        });
        let seconds = started.elapsed().as_secs_f64();
        answer(images, image_results, &self.timers, seconds);
        answer(tensors, tensor_results, &self.timers, seconds);
    }

    /// `run` over the jobs' inputs, with a panic inside ONNX Runtime failing these jobs only.
    fn guarded<I, O>(
        &mut self,
        jobs: &[Pending<I, O>],
        run: impl FnOnce(&mut Self, &[&I]) -> Vec<Result<O, EngineError>>,
    ) -> Vec<Result<O, EngineError>> {
        if jobs.is_empty() {
            return Vec::new();
        }
        let inputs: Vec<&I> = jobs.iter().map(|j| &j.input).collect();
        std::panic::catch_unwind(AssertUnwindSafe(|| run(self, &inputs))).unwrap_or_else(|_| {
            jobs.iter().map(|_| Err(EngineError::Inference("ONNX Runtime call panicked".into()))).collect()
        })
    }

    /// One run for all the images, split back per image; one image runs as it is.
    fn images(&mut self, inputs: &[&Array4<f32>]) -> Vec<Result<Outputs, EngineError>> {
        self.timers.executions.inc();
        let options = self.run_options.as_ref();
        if let [one] = inputs {
            return vec![run_session_with(&mut self.session, one, options)];
        }
        let count = inputs.len();
        let outputs = stack(inputs)
            .and_then(|batch| run_session_with(&mut self.session, &batch, options))
            .and_then(|outputs| split(outputs, count));
        each_or_all(outputs, count)
    }

    /// One run for requests whose shapes agree beyond the first axis, else one run each.
    fn tensors(&mut self, requests: &[&Vec<Tensor>]) -> Vec<Result<Vec<Tensor>, EngineError>> {
        let slices: Vec<&[Tensor]> = requests.iter().map(|r| r.as_slice()).collect();
        let joined = if slices.len() > 1 { concat(&slices) } else { None };
        let Some(joined) = joined else {
            return slices
                .iter()
                .map(|inputs| {
                    self.timers.executions.inc();
                    run_tensors(&mut self.session, inputs, self.run_options.as_ref())
                })
                .collect();
        };
        self.timers.executions.inc();
        let rows: Vec<usize> = slices.iter().map(|r| r.first().map_or(0, |t| t.shape[0])).collect();
        let outputs = run_tensors(&mut self.session, &joined, self.run_options.as_ref())
            .and_then(|outputs| split_rows(outputs, &rows));
        each_or_all(outputs, rows.len())
    }
}

/// Each request's part of a batched run, or the run's failure for each of the `count` requests.
fn each_or_all<O>(parts: Result<Vec<O>, EngineError>, count: usize) -> Vec<Result<O, EngineError>> {
    match parts {
        Ok(parts) => parts.into_iter().map(Ok).collect(),
        Err(e) => (0..count).map(|_| Err(EngineError::Inference(e.to_string()))).collect(),
    }
}

/// Sends each job its result; a client that went away has nothing to be told.
fn answer<I, O>(jobs: Vec<Pending<I, O>>, results: Vec<Result<O, EngineError>>, timers: &StageTimers, seconds: f64) {
    for (job, result) in jobs.into_iter().zip(results) {
        timers.inference.observe(seconds);
        let _ = job.reply.send(result);
    }
}
