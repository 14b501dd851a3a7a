//! Sightline's graph rewrites on the fixture models of every YOLO family they change: sessions
//! built with them run the rewritten graph and answer bit for bit what the graph as exported
//! answers.

use std::path::{Path, PathBuf};

use ndarray::Array4;
use sightline_engine::{
    build_raw, init_runtime, rewrite_graph, softmax_on_last_axis, Provider, ProviderOptions, REWRITES_VERSION,
};

/// Each model, its middle-axis Softmaxes and its Convs divided by a Split that the rewrites change,
/// and its input's side.
/// YOLOv10, 11 and 26 keep the Split of their attention blocks (`model.10`, and `model.22` in 26),
/// which the rewrite must leave alone to stay exact; YOLO26 has no middle-axis Softmax.
const REWRITTEN: [(&str, usize, usize, usize); 15] = [
    ("shapes", 1, 8, 256),
    ("shapes-dyn", 1, 8, 256),
    ("shapes-seg", 1, 8, 256),
    ("shapes-pose", 1, 8, 256),
    ("shapes-v10", 1, 8, 256),
    ("shapes-y11", 1, 8, 256),
    ("shapes-seg-y11", 1, 8, 256),
    ("shapes-pose-y11", 1, 8, 256),
    ("shapes-seg-v5-adapter", 1, 8, 256),
    ("shapes-y26", 0, 7, 256),
    ("shapes-y26-o2m", 0, 7, 256),
    ("shapes-seg-y26", 0, 7, 256),
    ("shapes-pose-y26", 0, 7, 256),
    ("shapes-v12", 1, 3, 256),
    ("shapes-cls", 0, 4, 128),
];

fn weights(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../assets/models/{model}/1/weights.onnx"))
}

/// How many nodes of `op` a model holds, counted in its bytes: each node's op_type is a
/// length-prefixed string (field 4) that only op names match.
fn count_op(model: &[u8], op: &str) -> usize {
    let mut needle = vec![0x22, op.len() as u8];
    needle.extend_from_slice(op.as_bytes());
    model.windows(needle.len()).filter(|w| *w == needle.as_slice()).count()
}

fn start_runtime() {
    let dylib =
        std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH is not set: run `make test` (it runs `make setup`)");
    init_runtime(Path::new(&dylib)).unwrap();
}

/// The optimised graph a session saved under `root`, and the folder it was keyed by.
fn saved_graph(root: &Path) -> (String, Vec<u8>) {
    let keyed = std::fs::read_dir(root.join("ort-optimized")).unwrap().next().unwrap().unwrap().path();
    let file = std::fs::read_dir(&keyed).unwrap().next().unwrap().unwrap().path();
    (keyed.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(file).unwrap())
}

#[test]
fn rewritten_sessions_answer_bit_for_bit_what_the_exported_graph_answers() {
    start_runtime();
    let scratch = std::env::temp_dir().join(format!("sightline-graph-rewrite-{}", std::process::id()));
    for (model, softmaxes, split_convs, side) in REWRITTEN {
        let inputs: Vec<Array4<f32>> = (0..3)
            .map(|i| {
                Array4::from_shape_fn((1, 3, side, side), |(_, c, y, x)| {
                    ((x * 7 + y * 13 + c * 5 + i * 37) % 256) as f32 / 255.0
                })
            })
            .collect();
        let file = weights(model);
        let rewrite = rewrite_graph(&std::fs::read(&file).unwrap()).unwrap_or_else(|| panic!("{model}"));
        assert_eq!((rewrite.softmaxes, rewrite.split_convs), (softmaxes, split_convs), "{model}");
        let (mut sessions, mut splits) = (Vec::new(), Vec::new());
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
            if softmaxes > 0 {
                assert_eq!(softmax_on_last_axis(&saved).is_none(), rewrites, "{model}, rewrites {rewrites}");
            }
            splits.push(count_op(&saved, "Split"));
        }
        // ONNX Runtime's optimised graph keeps a Split for each Conv a Split divides; rewritten,
        // those are gone and the others (attention blocks, the head) are left.
        assert_eq!(splits[1], splits[0] - split_convs, "{model}: Splits in the saved graphs");
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

/// Protobuf encoding, as far as appending fields to a model needs it.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    put_varint(out, number << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_int(out: &mut Vec<u8>, number: u64, value: u64) {
    put_varint(out, number << 3);
    put_varint(out, value);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let b = bytes[*at];
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
    }
    value
}

/// `model` with `extra` (encoded GraphProto fields) appended to its graph.
fn with_graph_fields(model: &[u8], extra: &[u8]) -> Vec<u8> {
    let (mut out, mut at) = (Vec::new(), 0);
    while at < model.len() {
        let start = at;
        let tag = read_varint(model, &mut at);
        match tag & 7 {
            0 => drop(read_varint(model, &mut at)),
            2 => {
                let len = read_varint(model, &mut at) as usize;
                if tag >> 3 == 7 {
                    let mut graph = model[at..at + len].to_vec();
                    graph.extend_from_slice(extra);
                    put_bytes(&mut out, 7, &graph);
                    at += len;
                    continue;
                }
                at += len;
            }
            wire => panic!("wire type {wire} in a ModelProto's top level"),
        }
        out.extend_from_slice(&model[start..at]);
    }
    out
}

/// A model whose weights are all inline but for one Constant, whose tensor is in a file beside the
/// model, and which also has the head ONNX Runtime's in-memory build cannot load such data for:
/// the YOLOv8 fixture with `output0 + zero` as a second output, zero read from `zero.bin`.
fn with_an_external_constant(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("zero.bin"), 0f32.to_le_bytes()).unwrap();
    let mut location = Vec::new();
    put_bytes(&mut location, 1, b"location");
    put_bytes(&mut location, 2, b"zero.bin");
    let mut tensor = Vec::new();
    put_int(&mut tensor, 1, 1); // dims [1]
    put_int(&mut tensor, 2, 1); // FLOAT
    put_bytes(&mut tensor, 8, b"zero");
    put_bytes(&mut tensor, 13, &location); // external_data
    put_int(&mut tensor, 14, 1); // data_location EXTERNAL
    let mut value = Vec::new();
    put_bytes(&mut value, 1, b"value");
    put_bytes(&mut value, 5, &tensor); // t
    put_int(&mut value, 20, 4); // TENSOR
    let mut constant = Vec::new();
    put_bytes(&mut constant, 2, b"zero");
    put_bytes(&mut constant, 4, b"Constant");
    put_bytes(&mut constant, 5, &value);
    let mut add = Vec::new();
    put_bytes(&mut add, 1, b"output0");
    put_bytes(&mut add, 1, b"zero");
    put_bytes(&mut add, 2, b"plus_zero");
    put_bytes(&mut add, 4, b"Add");
    let mut tensor_type = Vec::new();
    put_int(&mut tensor_type, 1, 1); // FLOAT
    let mut type_proto = Vec::new();
    put_bytes(&mut type_proto, 1, &tensor_type);
    let mut output = Vec::new();
    put_bytes(&mut output, 1, b"plus_zero");
    put_bytes(&mut output, 2, &type_proto);
    let mut extra = Vec::new();
    put_bytes(&mut extra, 1, &constant);
    put_bytes(&mut extra, 1, &add);
    put_bytes(&mut extra, 12, &output);
    let file = dir.join("weights.onnx");
    std::fs::write(&file, with_graph_fields(&std::fs::read(weights("shapes")).unwrap(), &extra)).unwrap();
    file
}

#[test]
fn a_model_with_data_in_an_external_file_loads_and_answers_with_rewrites_on() {
    start_runtime();
    let scratch = std::env::temp_dir().join(format!("sightline-graph-rewrite-external-{}", std::process::id()));
    let file = with_an_external_constant(&scratch.join("model"));
    let input = Array4::from_shape_fn((1, 3, 256, 256), |(_, c, y, x)| ((x * 3 + y * 11 + c) % 256) as f32 / 255.0);
    let mut answers = Vec::new();
    for (rewrites, cached) in [(false, false), (true, false), (true, true)] {
        let options = ProviderOptions {
            intra_threads: 1,
            optimized_graph_cache: cached,
            graph_rewrites: rewrites,
            ..Default::default()
        };
        let root = scratch.join(format!("cache-{rewrites}-{cached}"));
        let mut session = build_raw(Provider::Cpu, None, &file, &options, &root)
            .unwrap_or_else(|e| panic!("rewrites {rewrites}, saved graph {cached}: {e}"));
        let outputs = session.run(&input).unwrap();
        assert_eq!(outputs.len(), 2);
        let bits: Vec<Vec<u32>> = outputs.iter().map(|o| o.iter().map(|v| v.to_bits()).collect()).collect();
        assert_eq!(bits[0], bits[1], "output0 + zero is output0");
        answers.push(bits);
    }
    assert!(answers.iter().all(|a| *a == answers[0]));
    let _ = std::fs::remove_dir_all(&scratch);
}
