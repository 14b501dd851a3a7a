//! Sightline's graph rewrite on the fixture models of every YOLO family whose head has a Softmax
//! over a middle axis: sessions built with it run the rewritten graph and answer bit for bit what
//! the graph as exported answers.

use std::path::{Path, PathBuf};

use ndarray::Array4;
use sightline_engine::{build_raw, init_runtime, softmax_on_last_axis, Provider, ProviderOptions, REWRITES_VERSION};

const REWRITTEN: [&str; 9] = [
    "shapes",
    "shapes-dyn",
    "shapes-seg",
    "shapes-pose",
    "shapes-v10",
    "shapes-y11",
    "shapes-seg-y11",
    "shapes-pose-y11",
    "shapes-seg-v5-adapter",
];

fn weights(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../assets/models/{model}/1/weights.onnx"))
}

/// The optimised graph a session saved under `root`, and the folder it was keyed by.
fn saved_graph(root: &Path) -> (String, Vec<u8>) {
    let keyed = std::fs::read_dir(root.join("ort-optimized")).unwrap().next().unwrap().unwrap().path();
    let file = std::fs::read_dir(&keyed).unwrap().next().unwrap().unwrap().path();
    (keyed.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(file).unwrap())
}

#[test]
fn rewritten_sessions_answer_bit_for_bit_what_the_exported_graph_answers() {
    let dylib =
        std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH is not set: run `make test` (it runs `make setup`)");
    init_runtime(Path::new(&dylib)).unwrap();
    let scratch = std::env::temp_dir().join(format!("sightline-graph-rewrite-{}", std::process::id()));
    let inputs: Vec<Array4<f32>> = (0..3)
        .map(|i| {
            Array4::from_shape_fn((1, 3, 256, 256), |(_, c, y, x)| {
                ((x * 7 + y * 13 + c * 5 + i * 37) % 256) as f32 / 255.0
            })
        })
        .collect();
    for model in REWRITTEN {
        let file = weights(model);
        let rewrite = softmax_on_last_axis(&std::fs::read(&file).unwrap()).unwrap_or_else(|| panic!("{model}"));
        assert_eq!(rewrite.softmaxes, 1, "{model}");
        let mut sessions = Vec::new();
        for rewrites in [false, true] {
            let root = scratch.join(format!("{model}-{rewrites}"));
            let options = ProviderOptions {
                intra_threads: 1,
                optimized_graph_cache: true,
                graph_rewrites: rewrites,
                ..Default::default()
            };
            sessions.push(build_raw(Provider::Cpu, None, &file, &options, &root).unwrap());
            // The graph the session runs is the one it saved: rewritten, no middle-axis Softmax is
            // left in it; as exported, the saved graph still has one.
            let (key, saved) = saved_graph(&root);
            assert_eq!(key.ends_with(REWRITES_VERSION), rewrites, "{model}: {key}");
            assert_eq!(softmax_on_last_axis(&saved).is_none(), rewrites, "{model}, rewrites {rewrites}");
        }
        for input in &inputs {
            let exported = sessions[0].run(input).unwrap();
            let rewritten = sessions[1].run(input).unwrap();
            assert_eq!(exported.len(), rewritten.len());
            for (a, b) in exported.iter().zip(&rewritten) {
                assert_eq!(a.shape(), b.shape(), "{model}");
                let same = a.iter().zip(b.iter()).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{model}: outputs differ from the exported graph's");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
