//! Admission to a model's queue, after Triton's queue policy: a request is refused (429, with a
//! `Retry-After`) only when the work queued ahead of it, waiting and not yet running, exceeds both
//! the count limit (`MODEL_QUEUE_CAPACITY`) and the wait bound (`MAX_QUEUE_DELAY_MS`) as the
//! model's measured pace predicts it. Work that runs or has answered no longer counts, so a
//! closed-loop load at a concurrency within the count limit is never refused.
//!
//! A request's inputs (a list's images) are admitted as one unit: the check sees what is ahead of
//! the request, never its own inputs, and each input then holds a [`Ticket`] until an instance
//! takes it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::CoreError;

/// When a model's queue refuses work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Inputs that may always wait, whatever the wait (`MODEL_QUEUE_CAPACITY`).
    pub count: usize,
    /// Beyond `count`, inputs are admitted while the predicted wait stays within this
    /// (`MAX_QUEUE_DELAY_MS`; Triton's `max_queue_delay`).
    pub max_delay: Duration,
}

/// How the measured pace follows new runs: each run moves it this far towards its own pace.
const PACE_WEIGHT: f64 = 0.2;

/// One model's (or one session's) waiting work and its measured pace.
#[derive(Debug)]
pub struct ModelQueue {
    model_id: String,
    policy: QueuePolicy,
    /// Instances taking from the queue at once.
    instances: usize,
    /// Inputs admitted and not yet taken by an instance (decoding, or queued).
    waiting: AtomicUsize,
    /// Seconds one input occupies an instance (a run's seconds over its inputs), smoothed; f64 bits.
    pace: AtomicU64,
    /// Seconds between inputs taken while work was waiting: the queue's real service rate, decoding
    /// and every other model's share of the cores included, smoothed; f64 bits, 0 until measured.
    service: AtomicU64,
    /// When an instance last took work (nanoseconds since `epoch`), and whether work still waited then.
    last_taken: AtomicU64,
    backlogged: AtomicBool,
    epoch: Instant,
    refusals: prometheus::IntCounter,
}

impl ModelQueue {
    /// `refusals` counts this queue's refusals (the caller labels it with the model and cause).
    pub fn new(model_id: &str, policy: QueuePolicy, instances: usize, refusals: prometheus::IntCounter) -> ModelQueue {
        ModelQueue {
            model_id: model_id.to_owned(),
            policy,
            instances: instances.max(1),
            waiting: AtomicUsize::new(0),
            pace: AtomicU64::new(0f64.to_bits()),
            service: AtomicU64::new(0f64.to_bits()),
            last_taken: AtomicU64::new(0),
            backlogged: AtomicBool::new(false),
            epoch: Instant::now(),
            refusals,
        }
    }

    pub fn policy(&self) -> QueuePolicy {
        self.policy
    }

    /// Admits a request of `inputs` inputs, or refuses it when what waits ahead of it is over the
    /// count limit and would take longer than the wait bound.
    pub fn admit(self: &Arc<Self>, inputs: usize) -> Result<Admission, CoreError> {
        let ahead = self.waiting.fetch_add(inputs, Ordering::AcqRel);
        if ahead >= self.policy.count {
            let wait = self.expected_wait(ahead);
            if wait > self.policy.max_delay {
                self.waiting.fetch_sub(inputs, Ordering::AcqRel);
                self.refusals.inc();
                // The backlog beyond the bound drains at the measured pace.
                let retry_after = (wait - self.policy.max_delay).as_secs_f64().ceil().max(1.0) as u64;
                return Err(CoreError::Overloaded {
                    message: format!(
                        "Model {} is busy: {ahead} inputs are waiting, about {} ms of work, over \
                         MAX_QUEUE_DELAY_MS={}; retry the request",
                        self.model_id,
                        wait.as_millis(),
                        self.policy.max_delay.as_millis()
                    ),
                    retry_after_secs: retry_after,
                });
            }
        }
        Ok(Admission { queue: self.clone(), left: inputs })
    }

    /// How long `ahead` waiting inputs take: at the service rate measured under backlog, else (no
    /// backlog seen yet) at the instances' run pace.
    pub fn expected_wait(&self, ahead: usize) -> Duration {
        let service = f64::from_bits(self.service.load(Ordering::Acquire));
        let per_input = if service > 0.0 {
            service
        } else {
            f64::from_bits(self.pace.load(Ordering::Acquire)) / self.instances as f64
        };
        Duration::from_secs_f64((ahead as f64 * per_input).min(86_400.0))
    }

    /// Records a run of `inputs` inputs that took `seconds`.
    pub fn record_run(&self, inputs: usize, seconds: f64) {
        if inputs == 0 || !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        smooth(&self.pace, seconds / inputs as f64);
    }

    /// Records that an instance took `inputs` inputs (their tickets already given back): the time
    /// since the previous take, when work was waiting then, is the time the queue needed per input.
    pub fn record_taken(&self, inputs: usize) {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
        let previous = self.last_taken.swap(now, Ordering::AcqRel);
        let was_backlogged = self.backlogged.swap(self.waiting() > 0, Ordering::AcqRel);
        if previous > 0 && was_backlogged && inputs > 0 && now > previous {
            smooth(&self.service, (now - previous) as f64 / 1e9 / inputs as f64);
        }
    }

    /// Inputs admitted and not yet taken by an instance.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

/// Moves the smoothed value in `cell` (f64 bits; 0 = none yet) towards `sample`.
fn smooth(cell: &AtomicU64, sample: f64) {
    let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
        let value = f64::from_bits(bits);
        let next = if value == 0.0 { sample } else { value + PACE_WEIGHT * (sample - value) };
        Some(next.to_bits())
    });
}

/// A request's admitted inputs; those not handed out as tickets are given back when it drops.
#[derive(Debug)]
pub struct Admission {
    queue: Arc<ModelQueue>,
    left: usize,
}

impl Admission {
    /// One input's place, held until an instance takes the input.
    pub fn ticket(&mut self) -> Option<Ticket> {
        self.left = self.left.checked_sub(1)?;
        Some(Ticket { queue: self.queue.clone() })
    }

    /// Tickets for all the inputs left.
    pub fn tickets(mut self) -> Vec<Ticket> {
        std::iter::from_fn(|| self.ticket()).collect()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.queue.waiting.fetch_sub(self.left, Ordering::AcqRel);
    }
}

/// One admitted input's place in its model's queue, freed when an instance takes the input (or
/// the request fails first).
#[derive(Debug)]
pub struct Ticket {
    queue: Arc<ModelQueue>,
}

impl Ticket {
    /// Whether this ticket was admitted to `queue`.
    pub fn is_for(&self, queue: &Arc<ModelQueue>) -> bool {
        Arc::ptr_eq(&self.queue, queue)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.queue.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(count: usize, max_delay_ms: u64) -> Arc<ModelQueue> {
        let policy = QueuePolicy { count, max_delay: Duration::from_millis(max_delay_ms) };
        Arc::new(ModelQueue::new("m/1", policy, 2, prometheus::IntCounter::new("r", "r").unwrap()))
    }

    #[test]
    fn within_the_count_nothing_is_refused_whatever_the_pace() {
        let q = queue(4, 10);
        q.record_run(1, 10.0);
        let held: Vec<_> = (0..4).map(|_| q.admit(1).unwrap()).collect();
        assert_eq!(q.waiting(), 4);
        let e = q.admit(1).unwrap_err();
        assert!(matches!(e, CoreError::Overloaded { retry_after_secs, .. } if retry_after_secs == 20), "{e:?}");
        assert_eq!(q.refusals.get(), 1);
        drop(held);
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn past_the_count_a_short_predicted_wait_is_still_admitted() {
        let q = queue(2, 100);
        q.record_run(4, 0.04); // 10 ms per input, two instances: 5 ms per input waiting
                               // Up to 20 ahead (100 ms) is within the bound; the 22nd has 21 ahead (105 ms).
        let held: Vec<_> = (0..21).map(|_| q.admit(1).unwrap()).collect();
        assert_eq!(q.expected_wait(20), Duration::from_millis(100));
        let e = q.admit(1).unwrap_err();
        assert!(e.to_string().contains("MAX_QUEUE_DELAY_MS=100"), "{e}");
        drop(held);
    }

    #[test]
    fn under_backlog_the_wait_follows_the_measured_service_rate() {
        let q = queue(1, 1000);
        q.record_run(1, 0.010); // runs alone suggest 5 ms per input over two instances
        assert_eq!(q.expected_wait(100), Duration::from_millis(500));
        let held: Vec<_> = (0..10).map(|_| q.admit(1).unwrap()).collect();
        q.record_taken(2); // work still waits: the next take measures the service rate
        std::thread::sleep(Duration::from_millis(40));
        q.record_taken(2);
        let wait = q.expected_wait(100);
        assert!(wait >= Duration::from_millis(2000), "20 ms per input, decoding and all: {wait:?}");
        drop(held);
    }

    #[test]
    fn a_list_is_checked_against_what_is_ahead_of_it_and_its_tickets_free_their_places() {
        let q = queue(2, 0);
        q.record_run(1, 1.0);
        let mut list = q.admit(20).unwrap();
        assert_eq!(q.waiting(), 20);
        let first = list.ticket().unwrap();
        let rest = list.tickets();
        assert_eq!((rest.len(), q.waiting()), (19, 20));
        assert!(q.admit(1).is_err(), "20 inputs ahead");
        drop(first);
        drop(rest);
        assert_eq!(q.waiting(), 0);
        let mut partial = q.admit(3).unwrap();
        let one = partial.ticket().unwrap();
        drop(partial);
        assert_eq!(q.waiting(), 1, "the inputs never handed out are given back");
        drop(one);
    }
}
