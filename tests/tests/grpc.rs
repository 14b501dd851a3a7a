//! The Open Inference Protocol over gRPC through PyPI's `tritonclient[grpc]`, unchanged
//! (tests/python/triton_grpc_driver.py): server and model metadata, readiness, and inference with
//! raw and with typed contents and on a stream (ModelStreamInfer), every output compared with ONNX Runtime's Python package run on the
//! same ONNX file and tensors; errors as gRPC status codes; the server key; and the metrics.

mod common;

use common::*;
use serde_json::{json, Value};

fn drive(port: u16, key: Option<&str>, spec: Value) -> Value {
    let mut spec = spec;
    spec["url"] = json!(format!("127.0.0.1:{port}"));
    spec["key"] = json!(key);
    let driver = repo_root().join("tests/python/triton_grpc_driver.py");
    let out = venv_python(&[driver.to_str().unwrap()], spec.to_string().as_bytes());
    assert!(out.status.success(), "gRPC driver failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_grpc_reads_metadata_and_infers_with_raw_and_typed_contents() {
    let dir = protocol_models("grpc");
    let port = free_port();
    let server = Server::start(dir.path(), &[("GRPC_PORT", &port.to_string())]).await;
    let file = |id: &str, name: &str| dir.path().join(id).join(name).display().to_string();
    let report = drive(
        port,
        None,
        json!({
            "models": [
                {"name": "tensor-zoo", "version": "1", "file": file("tensor-zoo/1", "model.onnx"), "batch": 3},
                {"name": "shapes", "version": "1", "file": file("shapes/1", "weights.onnx"), "batch": 1},
                {"name": "shapes-dyn", "version": "1", "file": file("shapes-dyn/1", "weights.onnx"), "batch": 2},
            ],
            "errors": [
                {"name": "tensor-zoo", "version": "1", "input": {"name": "x", "datatype": "FP32", "shape": [1, 5]}},
                {"name": "shapes", "version": "1", "input": {"name": "images", "datatype": "FP32", "shape": [1, 3, 255, 256]}},
                {"name": "shapes", "version": "1", "input": {"name": "images", "datatype": "INT32", "shape": [1, 3, 256, 256]}},
                {"name": "shapes", "version": "1", "input": {"name": "wrong", "datatype": "FP32", "shape": [1]}},
                {"name": "missing", "version": "1", "input": {"name": "x", "datatype": "FP32", "shape": [1]}},
            ],
        }),
    );
    assert_eq!((report["live"].as_bool(), report["ready"].as_bool()), (Some(true), Some(true)));
    assert_eq!(report["server"]["name"], "sightline");

    for model in report["models"].as_array().unwrap() {
        let name = model["name"].as_str().unwrap();
        assert_eq!(model["ready_before"], false, "{name} is ready before it was loaded");
        assert_eq!(model["ready_after"], true, "{name}: the metadata call loads the model");
        let metadata = &model["metadata"];
        assert_eq!(metadata["name"], name);
        assert_eq!(metadata["versions"], json!(["1"]));
        assert_eq!(metadata["platform"], "onnxruntime_onnx");
        let outputs = names(&metadata["outputs"]);
        assert_eq!(outputs, serde_json::from_value::<Vec<String>>(model["reference_outputs"].clone()).unwrap());
        // Exact for the plain model; the detectors' own graph (optimised and saved by the server)
        // may round differently from a fresh Python session.
        let tolerance = if name == "tensor-zoo" { 0.0 } else { 1e-3 };
        assert_eq!(model["raw"]["id"], "raw-1", "the request id is echoed");
        assert_eq!((&model["raw"]["model_name"], &model["raw"]["model_version"]), (&json!(name), &json!("1")));
        assert_eq!(model["typed"]["id"], "typed-1");
        let reversed: Vec<String> = outputs.iter().rev().cloned().collect();
        assert_eq!(model["typed"]["output_order"], json!(reversed), "the outputs asked for, in their order");
        for run in ["raw", "typed"] {
            for (output, compared) in model[run]["outputs"].as_object().unwrap() {
                assert_eq!(compared["same_dtype"], true, "{name} {run} {output}: {compared}");
                assert_eq!(compared["same_shape"], true, "{name} {run} {output}: {compared}");
                let diff = compared["max_abs_diff"].as_f64().unwrap();
                assert!(diff <= tolerance, "{name} {run} {output}: differs by {diff} from ONNX Runtime's");
            }
        }
        // ModelStreamInfer: answers in the order sent, the bad third one an error, the stream going on.
        let stream = model["stream"].as_array().unwrap();
        assert_eq!(stream.len(), 4, "{name}: {stream:?}");
        for (i, answer) in stream.iter().enumerate() {
            if i == 2 {
                assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{name} stream: {answer}");
                continue;
            }
            assert_eq!(answer["id"], format!("s-{i}"), "{name} stream, in order: {answer}");
            for (output, compared) in answer["outputs"].as_object().unwrap() {
                let diff = compared["max_abs_diff"].as_f64().unwrap();
                assert!(diff <= tolerance, "{name} stream {output}: differs by {diff} from ONNX Runtime's");
            }
        }
    }
    assert_eq!(
        report["models"][0]["typed"]["kept_raw"], true,
        "the zoo has an FP16 input, which has no typed contents"
    );
    assert_eq!(report["models"][1]["typed"]["kept_raw"], false, "the detector's FP32 input went typed");
    // The model configuration, as over REST, in the extension's messages (int64 as JSON text,
    // fields at their default left out).
    let config = |i: usize| &report["models"][i]["config"];
    assert_eq!((&config(0)["name"], &config(0)["platform"]), (&json!("tensor-zoo"), &json!("onnxruntime_onnx")));
    assert_eq!(config(0)["max_batch_size"], 8, "{}", config(0));
    assert_eq!(config(0)["input"][4], json!({"name": "u8", "data_type": "TYPE_UINT8", "dims": ["2", "2"]}));
    assert_eq!(config(1).get("max_batch_size"), None, "0 for the fixed batch axis: {}", config(1));
    assert_eq!(config(1)["input"][0]["dims"], json!(["1", "3", "256", "256"]));
    assert_eq!(config(2)["max_batch_size"], 8);
    assert_eq!(config(2)["instance_group"], json!([{"name": "shapes-dyn", "kind": "KIND_CPU", "count": 2}]));

    let zoo = &report["models"][0]["metadata"];
    let datatypes: Vec<&str> =
        zoo["inputs"].as_array().unwrap().iter().map(|i| i["datatype"].as_str().unwrap()).collect();
    assert_eq!(datatypes, ["FP32", "FP16", "INT64", "INT32", "UINT8", "BOOL"]);
    assert_eq!(zoo["inputs"][4]["shape"], json!(["-1", "2", "2"]), "symbolic axes are -1 (int64 as JSON text)");

    let errors = report["errors"].as_array().unwrap();
    let expect = [
        ("StatusCode.INVALID_ARGUMENT", "shape"),
        ("StatusCode.INVALID_ARGUMENT", "shape"),
        ("StatusCode.INVALID_ARGUMENT", "datatype"),
        ("StatusCode.INVALID_ARGUMENT", "unexpected input"),
        ("StatusCode.NOT_FOUND", "not found"),
    ];
    assert_eq!(errors.len(), expect.len());
    for (error, (status, text)) in errors.iter().zip(expect) {
        assert_eq!(error["status"], status, "{error}");
        let message = error["message"].as_str().unwrap().to_lowercase();
        assert!(message.contains(text), "{error} should mention {text:?}");
    }

    let metrics = server.get_text("/metrics").await;
    let calls = |method: &str, code: &str| {
        let line = format!("sightline_grpc_requests_total{{code=\"{code}\",method=\"{method}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&line)).map_or(0.0, |v| v.parse::<f64>().unwrap())
    };
    assert_eq!(calls("ModelInfer", "OK"), 6.0, "two inferences for each of three models\n{metrics}");
    assert_eq!(calls("ModelInfer", "INVALID_ARGUMENT"), 4.0);
    assert_eq!(calls("ModelInfer", "NOT_FOUND"), 1.0);
    assert_eq!(calls("ModelMetadata", "OK"), 3.0);
    assert_eq!(calls("ModelConfig", "OK"), 3.0);
    assert_eq!(calls("ModelStreamInfer", "OK"), 9.0, "three answered on each model's stream");
    assert_eq!(calls("ModelStreamInfer", "INVALID_ARGUMENT"), 3.0);
    let tensors = |model: &str| {
        let line = format!("sightline_inference_requests_total{{model_id=\"{model}\",task=\"tensor\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&line)).map_or(0.0, |v| v.parse::<f64>().unwrap())
    };
    assert_eq!(
        tensors("shapes/1"),
        9.0,
        "two answered, three refused by the signature, four on the stream, counted as over HTTP"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_server_key_grpc_calls_need_it_and_sigterm_stops_grpc_too() {
    let dir = protocol_models("grpc");
    let port = free_port();
    let env =
        [("GRPC_PORT", port.to_string()), ("SIGHTLINE_API_KEY", "secret".into()), ("SHUTDOWN_DRAIN_SECS", "0".into())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Server::start(dir.path(), &env).await;
    let spec = json!({"models": [], "errors": [
        {"name": "shapes", "version": "1", "input": {"name": "images", "datatype": "FP32", "shape": [1, 3, 256, 256]}}
    ]});
    let report = drive(port, Some("secret"), spec.clone());
    assert_eq!(report["live"], true);
    assert_eq!(report["errors"][0]["status"], "OK", "the right key: {report}");
    let refused = venv_python(
        &["-c", "import sys, tritonclient.grpc as g\ntry:\n    g.InferenceServerClient(sys.argv[1]).is_server_live()\nexcept Exception as e:\n    print(e.status())", &format!("127.0.0.1:{port}")],
        b"",
    );
    assert_eq!(String::from_utf8_lossy(&refused.stdout).trim(), "StatusCode.UNAUTHENTICATED");

    // SIGTERM stops the gRPC server with the HTTP one: the process exits 0.
    server.terminate();
    let status = server.exit_within(std::time::Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", server.log_text());
}
