//! Dynamic batching, in the manner of Triton's dynamic batcher: a free instance takes what is
//! queued for its model, up to the model's batch limit, waits at most the policy's delay for more,
//! and runs the images as one batch; each request gets its own slice of the outputs back.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use ndarray::{Array4, ArrayView4, Axis, Slice};

use ndarray::ArrayD;

use crate::EngineError;

/// A run's outputs, in the session's output order.
pub type Outputs = Vec<ArrayD<f32>>;

/// How requests for one model are grouped into `session.run` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// The most images in one run; 1 turns batching off.
    pub max_batch: usize,
    /// How long a batch that is not yet full may wait for more requests. Zero takes only what is
    /// already queued: under load, requests queue while the previous batch runs, so batches fill
    /// without anyone waiting on purpose.
    pub max_delay: Duration,
}

impl BatchPolicy {
    pub const UNBATCHED: BatchPolicy = BatchPolicy { max_batch: 1, max_delay: Duration::ZERO };

    /// This policy limited to what a session takes: a fixed batch axis of 1 is never batched.
    pub fn limited_to(self, limit: usize) -> BatchPolicy {
        let max_batch = self.max_batch.clamp(1, limit.max(1));
        BatchPolicy { max_batch, max_delay: if max_batch == 1 { Duration::ZERO } else { self.max_delay } }
    }
}

/// How far, relatively, a batched run's outputs may stray from one input's (batched kernels may
/// round differently) for a model to be batched.
const BATCHED_TOLERANCE: f32 = 1e-3;

/// Whether a batched output matches the unbatched one; else the worst relative difference found.
pub fn batched_matches(
    batched: impl IntoIterator<Item = f32>,
    alone: impl IntoIterator<Item = f32>,
) -> Result<(), f32> {
    let mut worst = 0.0f32;
    for (a, b) in batched.into_iter().zip(alone) {
        let difference = (a - b).abs() / b.abs().max(1.0);
        // NaN compares as nothing: it is a mismatch, never a pass.
        if difference.is_nan() {
            return Err(f32::NAN);
        }
        worst = worst.max(difference);
    }
    if worst > BATCHED_TOLERANCE {
        Err(worst)
    } else {
        Ok(())
    }
}

/// The batch limit a load-time check of a symbolic first axis gives: unlimited when a batch of
/// two gave what one gives, else one input per run (logged with the check's cause).
pub fn limit_after_check(file: &std::path::Path, check: Result<(), String>) -> usize {
    match check {
        Ok(()) => usize::MAX,
        Err(cause) => {
            tracing::warn!(file = %file.display(), %cause, "the first axis is symbolic but the model does not batch: serving one input per run");
            1
        }
    }
}

/// Waits for one item, then gathers more under `policy`; `None` once the queue is closed and empty.
pub fn gather<T>(queue: &Receiver<T>, policy: BatchPolicy) -> Option<Vec<T>> {
    let first = queue.recv().ok()?;
    let mut batch = Vec::with_capacity(policy.max_batch);
    batch.push(first);
    let deadline = Instant::now() + policy.max_delay;
    while batch.len() < policy.max_batch {
        match queue.try_recv() {
            Ok(item) => batch.push(item),
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match queue.recv_timeout(left) {
                    Ok(item) => batch.push(item),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        }
    }
    Some(batch)
}

/// Stacks `(1, 3, h, w)` inputs of one size into one `(n, 3, h, w)` batch.
pub fn stack(inputs: &[&Array4<f32>]) -> Result<Array4<f32>, EngineError> {
    Staging::default().stack(inputs).map(|batch| batch.to_owned())
}

/// The most bytes of batch input an instance keeps between runs: a batch of 16 images of 256x256
/// (12.6 MB). Larger batches get a fresh buffer each run instead of staying resident for as long
/// as the model is loaded.
const KEPT_BYTES: usize = 16 << 20;

/// An instance's batch input buffer, reused from run to run: a busy model's batches then copy into
/// memory already mapped instead of having the allocator map and zero fresh pages for each run (a
/// batch of several images is past its mmap threshold), which also keeps those runs off the
/// kernel's memory-map lock that concurrent model loads take.
#[derive(Default)]
pub struct Staging(Vec<f32>);

impl Staging {
    /// Stacks `(rows, c, h, w)` inputs whose `(c, h, w)` agree into one batch along the first axis.
    pub fn stack(&mut self, inputs: &[&Array4<f32>]) -> Result<ArrayView4<'_, f32>, EngineError> {
        let Some(first) = inputs.first() else { return Err(EngineError::Inference("an empty batch".into())) };
        let (_, c, h, w) = first.dim();
        if let Some(other) = inputs.iter().find(|i| (i.dim().1, i.dim().2, i.dim().3) != (c, h, w)) {
            return Err(EngineError::Inference(format!(
                "cannot batch inputs of different shapes: {:?} and {:?}",
                first.shape(),
                other.shape()
            )));
        }
        let rows: usize = inputs.iter().map(|i| i.dim().0).sum();
        self.0.clear();
        self.0.reserve(rows * c * h * w);
        for input in inputs {
            match input.as_slice() {
                Some(values) => self.0.extend_from_slice(values),
                None => self.0.extend(input.iter().copied()),
            }
        }
        ArrayView4::from_shape((rows, c, h, w), &self.0).map_err(|e| EngineError::Inference(e.to_string()))
    }

    /// After a run: lets a buffer past [`KEPT_BYTES`] go.
    pub fn settle(&mut self) {
        if self.0.capacity() * size_of::<f32>() > KEPT_BYTES {
            self.0 = Vec::new();
        }
    }
}

/// Splits a batch's outputs into `count` per-image outputs, each keeping a batch axis of 1 so that
/// decoders see exactly what an unbatched run gives.
pub fn split(outputs: Outputs, count: usize) -> Result<Vec<Outputs>, EngineError> {
    if let Some(bad) = outputs.iter().find(|o| o.shape().first() != Some(&count)) {
        return Err(EngineError::Inference(format!(
            "a batch of {count} gave an output of shape {:?}, not batched on its first axis",
            bad.shape()
        )));
    }
    Ok((0..count)
        .map(|i| outputs.iter().map(|o| o.slice_axis(Axis(0), Slice::from(i..i + 1)).to_owned()).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn batched_outputs_match_within_the_tolerance_and_never_with_nan() {
        assert!(super::batched_matches([1.0, 100.0], [1.0005, 100.05]).is_ok());
        let worst = super::batched_matches([1.0, 2.0], [1.0, 2.01]).unwrap_err();
        assert!((worst - 0.01 / 2.01).abs() < 1e-5, "{worst}");
        assert!(super::batched_matches([f32::NAN], [f32::NAN]).is_err());
    }

    use std::sync::mpsc::sync_channel;

    use ndarray::{ArrayD, IxDyn};

    use super::*;

    #[test]
    fn gathers_what_is_queued_up_to_the_limit_without_waiting() {
        let (tx, rx) = sync_channel(16);
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        let policy = BatchPolicy { max_batch: 3, max_delay: Duration::ZERO };
        assert_eq!(gather(&rx, policy), Some(vec![0, 1, 2]));
        assert_eq!(gather(&rx, policy), Some(vec![3, 4]));
        drop(tx);
        assert_eq!(gather(&rx, policy), None);
    }

    #[test]
    fn waits_up_to_the_delay_for_a_late_request() {
        let (tx, rx) = sync_channel(16);
        tx.send(1).unwrap();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(2).unwrap();
            tx
        });
        let policy = BatchPolicy { max_batch: 4, max_delay: Duration::from_millis(300) };
        let started = Instant::now();
        let batch = gather(&rx, policy);
        assert_eq!(batch, Some(vec![1, 2]));
        assert!(started.elapsed() >= Duration::from_millis(300), "a batch not full waits for the delay");
        drop(late.join().unwrap());
    }

    #[test]
    fn a_fixed_batch_axis_of_one_is_never_batched() {
        let policy = BatchPolicy { max_batch: 8, max_delay: Duration::from_millis(2) };
        assert_eq!(policy.limited_to(1), BatchPolicy::UNBATCHED);
        assert_eq!(policy.limited_to(4).max_batch, 4);
        assert_eq!(policy.limited_to(usize::MAX), policy);
    }

    #[test]
    fn split_hands_each_image_its_own_rows() {
        let input = |v: f32| Array4::from_elem((1, 3, 2, 2), v);
        let (a, b) = (input(1.0), input(2.0));
        let batch = stack(&[&a, &b]).unwrap();
        assert_eq!(batch.shape(), [2, 3, 2, 2]);
        let head = ArrayD::from_shape_fn(IxDyn(&[2, 3]), |d| (d[0] * 10 + d[1]) as f32);
        let parts = split(vec![head], 2).unwrap();
        assert_eq!(parts[0][0].shape(), [1, 3]);
        assert_eq!(parts[1][0].as_slice().unwrap(), [10.0, 11.0, 12.0]);
        let unbatched = ArrayD::zeros(IxDyn(&[1, 3]));
        assert!(split(vec![unbatched], 2).is_err());
    }

    #[test]
    fn staging_stacks_in_order_refuses_mixed_sizes_and_keeps_only_small_buffers() {
        let input = |v: f32, side: usize| Array4::from_elem((1, 3, side, side), v);
        let (a, b) = (input(1.0, 2), input(2.0, 2));
        let mut staging = Staging::default();
        let batch = staging.stack(&[&a, &b, &a]).unwrap();
        assert_eq!(batch.shape(), [3, 3, 2, 2]);
        assert_eq!(batch.iter().copied().collect::<Vec<_>>(), [[1.0; 12], [2.0; 12], [1.0; 12]].concat());
        assert!(staging.stack(&[&a, &input(1.0, 3)]).is_err());
        staging.settle();
        assert!(staging.0.capacity() > 0, "a small buffer is kept for the next run");
        // 2 x 3 x 1024 x 1024 floats is 24 MiB, past what an instance keeps.
        let big = input(0.5, 1024);
        assert_eq!(staging.stack(&[&big, &big]).unwrap().shape(), [2, 3, 1024, 1024]);
        staging.settle();
        assert_eq!(staging.0.capacity(), 0);
    }
}
