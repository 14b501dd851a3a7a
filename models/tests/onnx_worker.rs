//! The per-model inference thread: results in order, and a full queue refused at once.

use std::path::Path;

use futures::future::join_all;
use ndarray::Array4;
use sightline_models::engine::{build_session, OnnxWorker};
use sightline_models::{init_runtime, ModelError};

fn worker(queue: usize) -> OnnxWorker {
    let dylib =
        std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH is not set: run `make test` (it runs `make setup`)");
    init_runtime(Path::new(&dylib)).unwrap();
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/shapes/1/weights.onnx");
    let (session, _) = build_session(&weights, 1).unwrap();
    OnnxWorker::start(session, "shapes/1", queue).unwrap()
}

#[tokio::test]
async fn each_caller_gets_its_own_result() {
    let w = worker(8);
    let inputs: Vec<Array4<f32>> = (0..8).map(|i| Array4::from_elem((1, 3, 256, 256), i as f32 / 8.0)).collect();
    let outputs = join_all(inputs.iter().map(|x| w.run(x.clone()))).await;
    // Same input, same output; different inputs, different outputs.
    let again = w.run(inputs[3].clone()).await.unwrap();
    assert_eq!(outputs[3].as_ref().unwrap()[0], again[0]);
    assert_ne!(outputs[2].as_ref().unwrap()[0], outputs[3].as_ref().unwrap()[0]);
}

#[tokio::test]
async fn a_full_queue_is_refused_not_waited_on() {
    let w = worker(1);
    let input = Array4::from_elem((1, 3, 256, 256), 0.5f32);
    // 64 requests queued at once onto a queue of one: the thread takes at most a couple before the rest arrive.
    let results = join_all((0..64).map(|_| w.run(input.clone()))).await;
    let refused = results.iter().filter(|r| matches!(r, Err(ModelError::Overloaded(id)) if id == "shapes/1")).count();
    let served = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(refused + served, 64);
    assert!(refused >= 32, "refused {refused}");
    assert!(served >= 1);
}
