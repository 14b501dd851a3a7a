//! Every fuzz seed and every input a fuzzer once crashed on (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`) runs through its target's entry point on each `make test`, so a
//! fixed crash stays fixed without a fuzzer.

use std::path::Path;

use sightline_server::fuzzing;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut found = Vec::new();
    for folder in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else { continue };
        for entry in entries.flatten() {
            found.push((entry.path().display().to_string(), std::fs::read(entry.path()).unwrap()));
        }
    }
    found
}

fn replay(target: &str, entry: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no seeds for {target}");
    for (name, data) in inputs {
        eprintln!("{name}");
        entry(&data);
    }
}

#[test]
fn request_body() {
    replay("request_body", fuzzing::request_body);
}

#[test]
fn body_key() {
    replay("body_key", fuzzing::body_key);
}

#[test]
fn grpc_infer() {
    replay("grpc_infer", fuzzing::grpc_infer);
}

#[test]
fn kserve_json() {
    replay("kserve_json", fuzzing::kserve_json);
}

#[test]
fn kserve_binary() {
    replay("kserve_binary", fuzzing::kserve_binary);
}

#[test]
fn model_metadata() {
    replay("model_metadata", fuzzing::model_metadata);
}

#[test]
fn manifest() {
    replay("manifest", fuzzing::manifest);
}

#[test]
fn archive() {
    replay("archive", fuzzing::archive);
}
