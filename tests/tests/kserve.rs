//! The Open Inference Protocol (KServe v2) through PyPI's `tritonclient[http]`, unchanged
//! (tests/python/triton_driver.py): server and model metadata, readiness, and inference in JSON
//! and in binary mode, every output compared with ONNX Runtime's Python package run on the same
//! ONNX file and tensors. Models: a plain ONNX folder with one input of each datatype
//! (tests/support/make_tensor_zoo.py) and two shipped detectors (fixed and dynamic batch).

mod common;

use common::*;
use serde_json::{json, Value};

fn drive(server: &Server, spec: Value) -> Value {
    let mut spec = spec;
    spec["url"] = json!(server.base.trim_start_matches("http://"));
    let driver = repo_root().join("tests/python/triton_driver.py");
    let out = venv_python(&[driver.to_str().unwrap()], spec.to_string().as_bytes());
    assert!(out.status.success(), "triton driver failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_reads_metadata_and_infers_in_json_and_binary() {
    let dir = protocol_models("kserve");
    let server = Server::start(dir.path(), &[]).await;
    let file = |id: &str, name: &str| dir.path().join(id).join(name).display().to_string();
    let report = drive(
        &server,
        json!({
            "models": [
                {"name": "tensor-zoo", "version": "1", "file": file("tensor-zoo/1", "model.onnx"), "batch": 3},
                {"name": "shapes", "version": "1", "file": file("shapes/1", "weights.onnx"), "batch": 1},
                {"name": "shapes-dyn", "version": "1", "file": file("shapes-dyn/1", "weights.onnx"), "batch": 2},
            ],
            "errors": [
                {"name": "tensor-zoo", "version": "1", "input": {"name": "x", "datatype": "FP32", "shape": [1, 5]}},
                {"name": "shapes", "version": "1", "input": {"name": "images", "datatype": "FP32", "shape": [1, 3, 255, 256]}, "binary": true},
                {"name": "shapes", "version": "1", "input": {"name": "images", "datatype": "INT32", "shape": [1, 3, 256, 256]}},
                {"name": "shapes", "version": "1", "input": {"name": "wrong", "datatype": "FP32", "shape": [1]}},
                {"name": "missing", "version": "1", "input": {"name": "x", "datatype": "FP32", "shape": [1]}},
            ],
        }),
    );
    assert_eq!((report["live"].as_bool(), report["ready"].as_bool()), (Some(true), Some(true)));
    assert_eq!(report["server"]["name"], "sightline");
    assert!(report["server"]["extensions"].as_array().unwrap().contains(&json!("binary_tensor_data")));

    for model in report["models"].as_array().unwrap() {
        let name = model["name"].as_str().unwrap();
        assert_eq!(model["ready_before"], false, "{name} is ready before it was loaded");
        assert_eq!(model["ready_after"], true, "{name}: the metadata call loads the model");
        let metadata = &model["metadata"];
        assert_eq!(metadata["name"], name);
        assert_eq!(metadata["versions"], json!(["1"]));
        assert_eq!(
            names(&metadata["outputs"]),
            serde_json::from_value::<Vec<String>>(model["reference_outputs"].clone()).unwrap()
        );
        // Exact for the plain model; the detectors' own graph (optimised and saved by the server)
        // may round differently from a fresh Python session.
        let tolerance = if name == "tensor-zoo" { 0.0 } else { 1e-3 };
        for mode in ["json", "binary", "default"] {
            let run = &model[mode];
            assert_eq!(run["model_name"], name);
            assert_eq!(run["model_version"], "1");
            assert_eq!(run["id"], format!("{mode}-1"), "the request id is echoed");
            let expected_binary = if mode == "json" { vec![] } else { names(&metadata["outputs"]) };
            assert_eq!(run["binary_outputs"], json!(expected_binary), "{name} {mode}");
            for (output, compared) in run["outputs"].as_object().unwrap() {
                assert_eq!(compared["same_dtype"], true, "{name} {mode} {output}: {compared}");
                assert_eq!(compared["same_shape"], true, "{name} {mode} {output}: {compared}");
                let diff = compared["max_abs_diff"].as_f64().unwrap();
                assert!(diff <= tolerance, "{name} {mode} {output}: differs by {diff} from ONNX Runtime's");
            }
        }
    }
    // Triton's model configuration: the zoo and the dynamic detector batch along their first axis
    // (left out of dims), the fixed detector does not.
    let config = |i: usize| &report["models"][i]["config"];
    assert_eq!(config(0)["name"], "tensor-zoo");
    assert_eq!((&config(0)["platform"], &config(0)["backend"]), (&json!("onnxruntime_onnx"), &json!("onnxruntime")));
    assert_eq!(config(0)["max_batch_size"], 8, "MAX_BATCH_SIZE: {}", config(0));
    assert_eq!(config(0)["input"][4], json!({"name": "u8", "data_type": "TYPE_UINT8", "dims": [2, 2]}));
    assert_eq!(config(0)["dynamic_batching"], json!({"max_queue_delay_microseconds": 0}));
    assert_eq!(config(1)["max_batch_size"], 0);
    assert_eq!(config(1)["input"], json!([{"name": "images", "data_type": "TYPE_FP32", "dims": [1, 3, 256, 256]}]));
    assert!(config(1).get("dynamic_batching").is_none(), "{}", config(1));
    assert_eq!(config(2)["max_batch_size"], 8);
    assert_eq!(config(2)["input"][0]["dims"], json!([3, 256, 256]));
    for i in 0..3 {
        assert_eq!(
            config(i)["instance_group"],
            json!([{"name": config(i)["name"], "kind": "KIND_CPU", "count": 2, "gpus": []}])
        );
    }

    let zoo = &report["models"][0]["metadata"];
    let datatypes: Vec<&str> =
        zoo["inputs"].as_array().unwrap().iter().map(|i| i["datatype"].as_str().unwrap()).collect();
    assert_eq!(datatypes, ["FP32", "FP16", "INT64", "INT32", "UINT8", "BOOL"]);
    assert_eq!(zoo["inputs"][4]["shape"], json!([-1, 2, 2]), "symbolic axes are -1");
    assert_eq!(
        report["models"][1]["metadata"]["inputs"],
        json!([{"name": "images", "datatype": "FP32", "shape": [1, 3, 256, 256]}])
    );

    let errors = report["errors"].as_array().unwrap();
    let expect =
        [("400", "shape"), ("400", "shape"), ("400", "datatype"), ("400", "unexpected input"), ("404", "not found")];
    for (error, (status, text)) in errors.iter().zip(expect) {
        assert_eq!(error["status"], status, "{error}");
        let message = error["message"].as_str().unwrap().to_lowercase();
        assert!(message.contains(text), "{error} should mention {text:?}");
    }
}

/// Concurrent protocol requests share a model's batches (a long batching window makes them meet),
/// and the execution count says so; every answer is still its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tensor_requests_are_batched() {
    let dir = protocol_models("kserve");
    let server = Server::start(dir.path(), &[("BATCH_MAX_DELAY_US", "300000"), ("MAX_BATCH_SIZE", "8")]).await;
    let (status, _) = server.get_json("/v2/models/tensor-zoo/versions/1").await;
    assert_eq!(status, 200);
    let body = |k: i64| {
        json!({"id": k.to_string(), "inputs": [
            {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [k, 0, 0, 0]},
            {"name": "h", "shape": [1, 4], "datatype": "FP16", "data": [0.5, 0, 0, 0]},
            {"name": "i64", "shape": [1, 3], "datatype": "INT64", "data": [k, 1, 2]},
            {"name": "i32", "shape": [1, 3], "datatype": "INT32", "data": [k, 0, -1]},
            {"name": "u8", "shape": [1, 2, 2], "datatype": "UINT8", "data": [1, 2, 3, k]},
            {"name": "flag", "shape": [1, 2], "datatype": "BOOL", "data": [true, false]}],
         "outputs": [{"name": "i64_mix"}, {"name": "x_plus_h"}]})
    };
    let requests = (0..8).map(|k| {
        let (client, url, body) =
            (server.client.clone(), server.url("/v2/models/tensor-zoo/versions/1/infer"), body(k));
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().json::<Value>().await.unwrap() })
    });
    for (k, answer) in futures::future::join_all(requests).await.into_iter().enumerate() {
        let answer = answer.unwrap();
        let k = k as i64;
        assert_eq!(answer["id"], k.to_string());
        assert_eq!(names(&answer["outputs"]), ["i64_mix", "x_plus_h"], "the outputs asked for, in order");
        assert_eq!(answer["outputs"][0]["data"], json!([3 * k, 2, 3]), "{answer}");
        assert_eq!(answer["outputs"][1]["data"], json!([k as f64 + 0.5, 0.0, 0.0, 0.0]), "{answer}");
    }
    let metrics = server.get_text("/metrics").await;
    let value = |name: &str| -> f64 {
        let prefix = format!("{name}{{model_id=\"tensor-zoo/1\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or(-1.0)
    };
    // The load's own test runs do not count; the metadata call does not infer.
    assert_eq!(value("sightline_inference_count_total"), 8.0, "{metrics}");
    let executions = value("sightline_inference_exec_count_total");
    assert!((1.0..8.0).contains(&executions), "8 requests in {executions} runs: not batched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_are_json_with_the_right_status() {
    let dir = protocol_models("kserve");
    let server = Server::start(dir.path(), &[]).await;
    let infer = "/v2/models/tensor-zoo/versions/1/infer";
    for (body, status, text) in [
        (b"not json".to_vec(), 400, "malformed"),
        (br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1]}]}"#.to_vec(), 400, "holds 2"),
        (
            br#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"BYTES","data":["a","b","c","d"]}]}"#.to_vec(),
            400,
            "not supported",
        ),
        (br#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#.to_vec(), 400, "missing"),
    ] {
        let (got, answer) = server.post_raw(infer, "application/json", body).await;
        assert_eq!(got, status, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(text), "{answer} should mention {text:?}");
    }
    // A header length beyond the body.
    let response = server
        .client
        .post(server.url(infer))
        .header("Inference-Header-Content-Length", "9999")
        .body(r#"{"inputs":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert!(answer["error"].as_str().unwrap().contains("Inference-Header-Content-Length"), "{answer}");
    // An invalid version never reaches the disk.
    let (status, answer) = server.get_json("/v2/models/shapes/versions/a.b").await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = server.get_json("/v2/models/nothing-here").await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("versions"), "{answer}");
    // Without a version: the newest loaded or cached one.
    let (status, metadata) = server.get_json("/v2/models/shapes").await;
    assert_eq!((status, metadata["versions"].clone()), (404, Value::Null), "not cached yet: {metadata}");
    assert_eq!(server.get_json("/v2/models/shapes/versions/1").await.0, 200);
    let (status, metadata) = server.get_json("/v2/models/shapes").await;
    assert_eq!((status, metadata["versions"].clone()), (200, json!(["1"])), "{metadata}");
    let response = server.client.get(server.url("/v2/models/shapes/ready")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}
