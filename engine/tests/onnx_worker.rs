//! A model's inference instances: results in order, admission that refuses only past both the
//! count limit and the wait bound (at once, with a Retry-After), and dynamic batching that hands
//! every request what it would have got alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::join_all;
use ndarray::Array4;
use sightline_core::{CoreError, QueuePolicy};
use sightline_engine::{
    build_session, init_runtime, BatchPolicy, EngineError, InstanceGroup, LoadPriority, OnnxWorker, PipelineMetrics,
    WorkerOptions,
};

fn weights(model: &str) -> PathBuf {
    let dylib =
        std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH is not set: run `make test` (it runs `make setup`)");
    init_runtime(Path::new(&dylib)).unwrap();
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../assets/models/{model}/1/weights.onnx"))
}

fn sessions(model: &str, count: usize) -> InstanceGroup {
    let weights = weights(model);
    let sessions = (0..count).map(|_| build_session(&weights, 1).unwrap().0).collect();
    InstanceGroup { sessions, threads: 1, solo: None }
}

fn options(queue: usize, batch: BatchPolicy, metrics: &PipelineMetrics) -> WorkerOptions {
    WorkerOptions {
        queue: QueuePolicy { count: queue, max_delay: Duration::ZERO },
        batch,
        varying_shapes: false,
        timers: metrics.for_model("m"),
        retire_priority: LoadPriority::Nice(10),
    }
}

fn worker(queue: usize) -> OnnxWorker {
    let metrics = PipelineMetrics::unregistered();
    OnnxWorker::start(sessions("shapes", 1), "shapes/1", options(queue, BatchPolicy::UNBATCHED, &metrics)).unwrap()
}

fn inputs(count: usize) -> Vec<Array4<f32>> {
    (0..count)
        .map(|i| {
            Array4::from_shape_fn((1, 3, 256, 256), |(_, c, y, x)| ((x * 7 + y * 3 + c + i * 31) % 256) as f32 / 255.0)
        })
        .collect()
}

#[tokio::test]
async fn each_caller_gets_its_own_result() {
    let w = worker(8);
    let inputs: Vec<Array4<f32>> = (0..8).map(|i| Array4::from_elem((1, 3, 256, 256), i as f32 / 8.0)).collect();
    let outputs = join_all(inputs.iter().map(|x| w.run_now(x.clone()))).await;
    // Same input, same output; different inputs, different outputs.
    let again = w.run_now(inputs[3].clone()).await.unwrap();
    assert_eq!(outputs[3].as_ref().unwrap()[0], again[0]);
    assert_ne!(outputs[2].as_ref().unwrap()[0], outputs[3].as_ref().unwrap()[0]);
}

#[tokio::test]
async fn within_the_count_nothing_is_refused_and_past_it_and_the_bound_a_refusal_says_when_to_retry() {
    let metrics = PipelineMetrics::unregistered();
    let w = OnnxWorker::start(sessions("shapes", 1), "shapes/1", options(8, BatchPolicy::UNBATCHED, &metrics)).unwrap();
    let input = Array4::from_elem((1, 3, 256, 256), 0.5f32);
    // Eight at once onto a queue of eight, twice over: what has answered no longer counts.
    for _ in 0..2 {
        let results = join_all((0..8).map(|_| w.run_now(input.clone()))).await;
        assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    }
    assert_eq!(w.queue().waiting(), 0);
    // Eight waiting (admitted, not yet taken), at a measured pace: the ninth is over both bounds.
    let held: Vec<_> = (0..8).map(|_| w.ticket(None).unwrap()).collect();
    let Err(EngineError::Refused(CoreError::Overloaded { message, retry_after_secs })) = w.ticket(None) else {
        panic!("the ninth input was admitted");
    };
    assert!(retry_after_secs >= 1 && message.contains("8 inputs are waiting"), "{message}");
    assert_eq!(metrics.for_model("m").refused.get(), 1);
    drop(held);
    assert!(w.ticket(None).is_ok(), "the places come back with the tickets");
}

#[tokio::test]
async fn batched_runs_answer_each_image_as_it_would_be_answered_alone() {
    let images = inputs(12);
    let alone = worker(16);
    let mut expected = Vec::new();
    for image in &images {
        expected.push(alone.run_now(image.clone()).await.unwrap());
    }
    let metrics = PipelineMetrics::unregistered();
    // A delay long enough that every queued image of the burst joins a batch of up to 8.
    let policy = BatchPolicy { max_batch: 8, max_delay: Duration::from_millis(200) };
    let batched = OnnxWorker::start(sessions("shapes-dyn", 2), "shapes-dyn/1", options(16, policy, &metrics)).unwrap();
    let results = join_all(images.iter().map(|x| batched.run_now(x.clone()))).await;
    for (i, (got, want)) in results.into_iter().zip(&expected).enumerate() {
        let got = got.unwrap();
        assert_eq!(got[0].shape(), want[0].shape(), "image {i}");
        let worst = got[0].iter().zip(want[0].iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "image {i}: batched output differs from its unbatched one by {worst}");
    }
    let batches = metrics.for_model("m").batch_size;
    assert_eq!(batches.get_sample_sum() as usize, 12, "every image ran once");
    assert!(batches.get_sample_count() < 12, "{} runs for 12 images: nothing was batched", batches.get_sample_count());
}

/// A run goes to the solo session (all the cores) only when its batch is all the model holds: a
/// request still in flight elsewhere (decoding, say) sends it to the instance's own thread, so
/// that the two do not fight over the cores. The run's thread count is what the metric reports.
#[tokio::test]
async fn a_run_takes_every_core_only_when_its_batch_is_all_the_model_holds() {
    let metrics = PipelineMetrics::unregistered();
    let mut group = sessions("shapes", 1);
    group.solo = Some((build_session(&weights("shapes"), 2).unwrap().0, 2));
    let w = OnnxWorker::start(group, "shapes/1", options(8, BatchPolicy::UNBATCHED, &metrics)).unwrap();
    let threads = metrics.for_model("m").run_threads;
    let input = inputs(1).remove(0);
    let mine = w.in_flight();
    let other = w.in_flight();
    w.run_now(input.clone()).await.unwrap();
    assert_eq!((threads.get_sample_count(), threads.get_sample_sum()), (1, 1.0), "another request was in flight");
    drop(other);
    w.run_now(input).await.unwrap();
    assert_eq!((threads.get_sample_count(), threads.get_sample_sum()), (2, 3.0), "the request was alone");
    drop(mine);
}
