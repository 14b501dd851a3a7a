//! A loaded model's inference instances: one or more sessions (Triton's instance group), each on
//! its own thread, all taking batches from one bounded queue.
//!
//! The threads keep `Session::run` (which blocks and needs `&mut`) off the async runtime. The
//! queue bounds the memory a burst can pin; a free instance gathers the next batch from it while
//! the others run, so preparing requests, gathering and inference overlap.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock, TryLockError};
use std::time::{Duration, Instant};

use ndarray::Array4;
use ort::session::{RunOptions, Session};
use tokio::sync::oneshot;

use sightline_core::{ModelQueue, QueuePolicy, Tensor, Ticket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::batch::Outputs;
use crate::batch::{gather, split, BatchPolicy, Staging};
use crate::model_sessions::InstanceGroup;
use crate::pipeline::StageTimers;
use crate::session::{run_session_with, shrinking_run_options};
use crate::tensors::{concat, run_tensors, split_rows};
use crate::threads::{retire, spawn_serving, LoadPriority};
use crate::EngineError;

/// One request waiting for an instance, with a reply of the type it asks for. Its place in the
/// queue is given back when an instance takes it.
struct Pending<I, O> {
    input: I,
    queued: Instant,
    place: Option<Place>,
    reply: oneshot::Sender<Result<O, EngineError>>,
}

/// A prepared `(1, 3, h, w)` image gets the session's outputs back; protocol tensors (in the
/// session's input order) get tensors back.
enum Job {
    Image(Pending<Array4<f32>, Outputs>),
    Tensors(Pending<Vec<Tensor>, Vec<Tensor>>),
}

impl Job {
    /// Frees the job's place: an instance has taken it.
    fn taken(&mut self) {
        match self {
            Job::Image(p) => p.place = None,
            Job::Tensors(p) => p.place = None,
        }
    }
}

/// How a model's instances take their work.
#[derive(Clone)]
pub struct WorkerOptions {
    /// When the model's queue refuses work; `count` also bounds the prepared inputs that wait.
    pub queue: QueuePolicy,
    pub batch: BatchPolicy,
    /// The session's input shape changes with every request (OCR): its CPU arena is shrunk after
    /// each run, so memory follows the current image, not the largest one seen.
    pub varying_shapes: bool,
    pub timers: StageTimers,
    /// The priority the sessions are torn down at when the model is dropped (`MODEL_LOAD_PRIORITY`:
    /// freeing a model is load work, not serving work).
    pub retire_priority: LoadPriority,
}

pub struct OnnxWorker {
    sender: SyncSender<Job>,
    queue: Arc<ModelQueue>,
    /// Places for prepared inputs: a request decodes only once it has one, so the memory that
    /// waits is bounded by the count limit however long the queue the wait bound admits.
    slots: Arc<Semaphore>,
    /// Requests in flight (see [`InFlight`]), which the instances read to tell a batch that is all
    /// the model holds from one with more work close behind it.
    in_hand: Arc<AtomicUsize>,
    timers: StageTimers,
}

/// An input's place: its admission (counted as waiting) and its room in the queue.
pub struct Place {
    _ticket: Ticket,
    _slot: OwnedSemaphorePermit,
}

/// A request being served by a model, from its admission to its answer (the in-flight gauge).
pub struct InFlight {
    gauge: prometheus::IntGauge,
    in_hand: Arc<AtomicUsize>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
        self.in_hand.fetch_sub(1, Ordering::AcqRel);
    }
}

impl OnnxWorker {
    /// Moves each instance onto its own thread (the solo session is shared by them); the threads
    /// end when the worker (the model) is dropped, once the queue is drained.
    pub fn start(group: InstanceGroup, model_id: &str, options: WorkerOptions) -> Result<OnnxWorker, EngineError> {
        let InstanceGroup { sessions: instances, threads, solo } = group;
        if instances.is_empty() {
            return Err(EngineError::Inference(format!("{model_id}: no session to serve")));
        }
        let count = options.queue.count.max(1);
        let (sender, receiver) = sync_channel::<Job>(count);
        let receiver = Arc::new(Mutex::new(receiver));
        let queue = Arc::new(ModelQueue::new(model_id, options.queue, instances.len(), options.timers.refused.clone()));
        let timers = options.timers.clone();
        let in_hand = Arc::new(AtomicUsize::new(0));
        let run_options = || options.varying_shapes.then(shrinking_run_options).transpose();
        let solo = match solo {
            Some((session, threads)) => Some(Arc::new(Solo {
                run: RwLock::new(Runner { session: session.0, options: run_options()? }),
                threads,
            })),
            None => None,
        };
        for (index, session) in instances.into_iter().enumerate() {
            let instance = Instance {
                own: Runner { session: session.0, options: run_options()? },
                threads,
                solo: solo.clone(),
                in_hand: in_hand.clone(),
                queue: receiver.clone(),
                pace: queue.clone(),
                batch: options.batch,
                timers: options.timers.clone(),
                retire_priority: options.retire_priority,
                staging: Staging::default(),
            };
            spawn_serving(format!("ort-{model_id}-{index}"), move || instance.serve())
                .map_err(|e| EngineError::Inference(format!("cannot start inference thread: {e}")))?;
        }
        Ok(OnnxWorker { sender, queue, slots: Arc::new(Semaphore::new(count)), in_hand, timers })
    }

    /// The queue requests are admitted to (a list's images as one unit).
    pub fn queue(&self) -> &Arc<ModelQueue> {
        &self.queue
    }

    /// Counts a request as in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight {
        self.timers.in_flight.inc();
        self.in_hand.fetch_add(1, Ordering::AcqRel);
        InFlight { gauge: self.timers.in_flight.clone(), in_hand: self.in_hand.clone() }
    }

    /// The input's admission: `given` where the request was admitted to this queue as a whole,
    /// else one input admitted now (or refused at once, before anything is decoded).
    pub fn ticket(&self, given: Option<Ticket>) -> Result<Ticket, EngineError> {
        match given {
            Some(ticket) if ticket.is_for(&self.queue) => Ok(ticket),
            _ => {
                let mut admitted = self.queue.admit(1).map_err(EngineError::Refused)?;
                admitted.ticket().ok_or_else(|| EngineError::Inference("an admission without its ticket".into()))
            }
        }
    }

    /// The input's place: its admission ([`OnnxWorker::ticket`] of `given`, refused at once), then
    /// room for its prepared tensor, waited for.
    pub async fn place(&self, given: Option<Ticket>) -> Result<Place, EngineError> {
        let ticket = self.ticket(given)?;
        let slot = self.slots.clone().acquire_owned().await.map_err(|_| dropped())?;
        Ok(Place { _ticket: ticket, _slot: slot })
    }

    /// Admits, places and runs one input that is already prepared (a stage inside a request).
    pub async fn run_now(&self, input: Array4<f32>) -> Result<Outputs, EngineError> {
        let place = self.place(None).await?;
        self.run(input, place).await
    }

    /// Queues one `(1, 3, h, w)` input.
    pub async fn run(&self, input: Array4<f32>, place: Place) -> Result<Outputs, EngineError> {
        let (reply, response) = oneshot::channel();
        self.queue_job(Job::Image(Pending { input, queued: Instant::now(), place: Some(place), reply }))?;
        response.await.map_err(|_| dropped())?
    }

    /// Queues one request's tensors (in the session's input order); batched with other tensor
    /// requests whose shapes agree beyond the first axis.
    pub async fn run_tensors(&self, inputs: Vec<Tensor>, place: Place) -> Result<Vec<Tensor>, EngineError> {
        let (reply, response) = oneshot::channel();
        self.queue_job(Job::Tensors(Pending { input: inputs, queued: Instant::now(), place: Some(place), reply }))?;
        response.await.map_err(|_| dropped())?
    }

    /// A job with a place always finds room: the channel holds as many jobs as there are places.
    fn queue_job(&self, job: Job) -> Result<(), EngineError> {
        // Counted before the send: an instance may take the job (and count it out) at once.
        self.timers.queue_depth.inc();
        self.sender.try_send(job).map_err(|e| {
            self.timers.queue_depth.dec();
            match e {
                TrySendError::Full(_) => {
                    EngineError::Inference("the queue is full although the job has a place".into())
                }
                TrySendError::Disconnected(_) => EngineError::Inference("inference thread has stopped".into()),
            }
        })
    }
}

fn dropped() -> EngineError {
    EngineError::Inference("inference thread dropped the request".into())
}

/// A session and the options it runs with.
struct Runner {
    session: Session,
    options: Option<RunOptions>,
}

/// The session of all the cores that a batch runs on when it finds the model otherwise idle:
/// nothing else waiting, no instance running. Instances hold the lock for reading while they run,
/// a solo run holds it for writing, so the solo session never runs beside an instance and the
/// cores are never asked for more threads than they have.
struct Solo {
    run: RwLock<Runner>,
    threads: usize,
}

struct Instance {
    own: Runner,
    /// Intra-op threads of `own`.
    threads: usize,
    solo: Option<Arc<Solo>>,
    /// The worker's count of requests in flight.
    in_hand: Arc<AtomicUsize>,
    queue: Arc<Mutex<Receiver<Job>>>,
    /// Where the instance reports its pace, for the queue's predicted waits.
    pace: Arc<ModelQueue>,
    batch: BatchPolicy,
    timers: StageTimers,
    retire_priority: LoadPriority,
    staging: Staging,
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
        retire(self.own.session, self.retire_priority);
        if let Some(solo) = self.solo.take().and_then(Arc::into_inner) {
            let run = solo.run.into_inner().unwrap_or_else(|p| p.into_inner());
            retire(run.session, self.retire_priority);
        }
    }

    fn run_batch(&mut self, mut jobs: Vec<Job>) {
        let started = Instant::now();
        jobs.iter_mut().for_each(Job::taken);
        let count = jobs.len();
        self.pace.record_taken(count);
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
        let mut staging = std::mem::take(&mut self.staging);
        let (image_results, tensor_results) = self.on_a_session(count, |runner, threads, timers| {
            // A batch of one kind runs as one; a mixed one (rare) runs request by request.
            let mixed = !images.is_empty() && !tensors.is_empty();
            let mut run = Run { runner, timers, threads, staging: &mut staging };
            let images = guarded(&images, |inputs| match mixed {
                false => run.images(inputs),
                true => inputs.iter().flat_map(|input| run.images(&[*input])).collect(),
            });
            let tensors = guarded(&tensors, |inputs| match mixed {
                false => run.tensors(inputs),
                true => inputs.iter().flat_map(|input| run.tensors(&[*input])).collect(),
            });
            (images, tensors)
        });
        staging.settle();
        self.staging = staging;
        let seconds = started.elapsed().as_secs_f64();
        self.pace.record_run(count, seconds);
        answer(images, image_results, &self.timers, seconds);
        answer(tensors, tensor_results, &self.timers, seconds);
    }

    /// Runs `work` (a batch of `count` requests) on the solo session when the batch is all the
    /// model holds and no other instance runs, else on the instance's own session (waiting while a
    /// solo run holds the cores). "All the model holds" counts requests still being decoded or
    /// post-processed, not only those queued: the queue is empty for a moment after every batch is
    /// taken, and a solo run then would compete for the cores with the requests being decoded,
    /// where a one-thread run beside them uses the cores without oversubscribing them.
    fn on_a_session<T>(&mut self, count: usize, work: impl FnOnce(&mut Runner, usize, &StageTimers) -> T) -> T {
        let Some(solo) = &self.solo else { return work(&mut self.own, self.threads, &self.timers) };
        if self.pace.waiting() == 0 && self.in_hand.load(Ordering::Acquire) <= count {
            let exclusive = match solo.run.try_write() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(mut runner) = exclusive {
                return work(&mut runner, solo.threads, &self.timers);
            }
        }
        let _sharing = solo.run.read().unwrap_or_else(|p| p.into_inner());
        work(&mut self.own, self.threads, &self.timers)
    }
}

/// One batch's runs on one session.
struct Run<'a> {
    runner: &'a mut Runner,
    timers: &'a StageTimers,
    threads: usize,
    staging: &'a mut Staging,
}

impl Run<'_> {
    /// One session run of `requests` requests, with the time each stage took.
    fn executed(&self, requests: usize, laps: Laps) {
        self.timers.executions.inc();
        self.timers.run_threads.observe(self.threads as f64);
        self.timers.runs.observe(requests, laps.input, laps.infer, laps.output);
    }

    /// One run for all the images, split back per image; one image runs as it is.
    fn images(&mut self, inputs: &[&Array4<f32>]) -> Vec<Result<Outputs, EngineError>> {
        let mut laps = Laps::start();
        let Runner { session, options } = &mut *self.runner;
        if let [one] = inputs {
            let outputs = laps.infer(|| run_session_with(session, one.view(), options.as_ref()));
            self.executed(1, laps);
            return vec![outputs];
        }
        let count = inputs.len();
        let outputs = laps
            .input(|| self.staging.stack(inputs))
            .and_then(|batch| laps.infer(|| run_session_with(session, batch, options.as_ref())))
            .and_then(|outputs| laps.output(|| split(outputs, count)));
        self.executed(count, laps);
        each_or_all(outputs, count)
    }

    /// One run for requests whose shapes agree beyond the first axis, else one run each.
    fn tensors(&mut self, requests: &[&Vec<Tensor>]) -> Vec<Result<Vec<Tensor>, EngineError>> {
        let slices: Vec<&[Tensor]> = requests.iter().map(|r| r.as_slice()).collect();
        let mut laps = Laps::start();
        let joined = if slices.len() > 1 { laps.input(|| concat(&slices)) } else { None };
        let Some(joined) = joined else {
            return slices
                .iter()
                .map(|inputs| {
                    let mut laps = Laps::start();
                    let outputs =
                        laps.infer(|| run_tensors(&mut self.runner.session, inputs, self.runner.options.as_ref()));
                    self.executed(1, laps);
                    outputs
                })
                .collect();
        };
        let rows: Vec<usize> = slices.iter().map(|r| r.first().map_or(0, |t| t.shape[0])).collect();
        let outputs = laps
            .infer(|| run_tensors(&mut self.runner.session, &joined, self.runner.options.as_ref()))
            .and_then(|outputs| laps.output(|| split_rows(outputs, &rows)));
        self.executed(rows.len(), laps);
        each_or_all(outputs, rows.len())
    }
}

/// What each stage of one session run took.
#[derive(Default)]
struct Laps {
    input: Duration,
    infer: Duration,
    output: Duration,
}

impl Laps {
    fn start() -> Laps {
        Laps::default()
    }

    fn input<T>(&mut self, work: impl FnOnce() -> T) -> T {
        timed(&mut self.input, work)
    }

    fn infer<T>(&mut self, work: impl FnOnce() -> T) -> T {
        timed(&mut self.infer, work)
    }

    fn output<T>(&mut self, work: impl FnOnce() -> T) -> T {
        timed(&mut self.output, work)
    }
}

/// Runs `work`, adding the time it took to `total`.
fn timed<T>(total: &mut Duration, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = work();
    *total += started.elapsed();
    value
}

/// `run` over the jobs' inputs, with a panic inside ONNX Runtime failing these jobs only.
fn guarded<I, O>(
    jobs: &[Pending<I, O>],
    run: impl FnOnce(&[&I]) -> Vec<Result<O, EngineError>>,
) -> Vec<Result<O, EngineError>> {
    if jobs.is_empty() {
        return Vec::new();
    }
    let inputs: Vec<&I> = jobs.iter().map(|j| &j.input).collect();
    std::panic::catch_unwind(AssertUnwindSafe(|| run(&inputs))).unwrap_or_else(|_| {
        jobs.iter().map(|_| Err(EngineError::Inference("ONNX Runtime call panicked".into()))).collect()
    })
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
