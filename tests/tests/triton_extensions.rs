//! Triton's model repository and statistics extensions through PyPI's tritonclient, unchanged, over
//! HTTP and over gRPC (tests/python/triton_repository_driver.py runs the same steps through either
//! client): the index lists what `MODEL_DIR` and the disk cache hold with each state, an explicit
//! load pins the model until it is unloaded, a failed load changes nothing loaded, and the
//! statistics after traffic count exactly the requests sent, as `/metrics` does.

mod common;

use common::*;
use serde_json::{json, Value};

fn drive(protocol: &str, address: &str, steps: &[Value]) -> Vec<Value> {
    let spec = json!({"protocol": protocol, "url": address, "steps": steps});
    let driver = repo_root().join("tests/python/triton_repository_driver.py");
    let out = venv_python(&[driver.to_str().unwrap()], spec.to_string().as_bytes());
    assert!(out.status.success(), "repository driver failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `name/version: state` of each model in an index (gRPC leaves empty fields out).
fn states(index: &Value) -> Vec<String> {
    let field = |m: &Value, f: &str| m.get(f).and_then(Value::as_str).unwrap_or("").to_owned();
    index
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {index}"))
        .iter()
        .map(|m| format!("{}/{}: {}", field(m, "name"), field(m, "version"), field(m, "state")))
        .collect()
}

fn reason<'a>(index: &'a Value, name: &str) -> &'a str {
    let entry = index.as_array().unwrap().iter().find(|m| m["name"] == name).unwrap();
    entry.get("reason").and_then(Value::as_str).unwrap_or("")
}

/// A number the gRPC client's JSON may give as text (int64).
fn number(value: &Value) -> u64 {
    value.as_u64().or_else(|| value.as_str().and_then(|s| s.parse().ok())).unwrap_or(0)
}

async fn repository_and_statistics(protocol: &str) {
    let dir = protocol_models(protocol);
    model_folder(dir.path(), "garbage/1", |d| std::fs::write(d.join("weights.onnx"), b"not an onnx file").unwrap());
    let grpc_port = free_port().to_string();
    let grpc = if protocol == "grpc" { grpc_port.as_str() } else { "0" };
    let server = Server::start(dir.path(), &[("MAX_ACTIVE_MODELS", "2"), ("GRPC_PORT", grpc)]).await;
    let address = match protocol {
        "grpc" => format!("127.0.0.1:{grpc_port}"),
        _ => server.base.trim_start_matches("http://").to_owned(),
    };
    let (not_found, invalid, internal) = match protocol {
        "grpc" => ("StatusCode.NOT_FOUND", "StatusCode.INVALID_ARGUMENT", "StatusCode.INTERNAL"),
        _ => ("404", "400", "500"),
    };
    let step = |op: &str, rest: Value| {
        let mut step = rest;
        step["op"] = json!(op);
        step
    };
    let infer = |name: &str, count: u32, bad: bool| {
        step("infer", json!({"name": name, "version": "1", "count": count, "bad": bad}))
    };
    let ready = |name: &str| step("ready", json!({"name": name, "version": "1"}));

    let r = drive(
        protocol,
        &address,
        &[
            step("index", json!({})),
            step("load", json!({"name": "tensor-zoo"})),
            step("load", json!({"name": "shapes/1"})),
            step("load", json!({"name": "missing"})),
            step("load", json!({"name": "garbage/1"})),
            step("load", json!({"name": "shapes-dyn", "config": "{}"})),
            step("index", json!({"ready": true})),
            step("index", json!({})),
            // Over MAX_ACTIVE_MODELS=2 with both loaded models pinned: neither is evicted.
            infer("shapes-dyn", 1, false),
            ready("tensor-zoo"),
            ready("shapes"),
            ready("shapes-dyn"),
            infer("tensor-zoo", 5, false),
            infer("tensor-zoo", 1, true),
            step("stats", json!({"name": "tensor-zoo", "version": "1"})),
            step("stats", json!({})),
            step("stats", json!({"name": "missing"})),
        ],
    );
    for (i, answer) in r.iter().enumerate() {
        let expected_ok = ![3, 4, 5, 13, 16].contains(&i);
        assert_eq!(answer["ok"], expected_ok, "step {i}: {answer}");
    }
    let all_unavailable: Vec<String> =
        ["garbage/1", "shapes/1", "shapes-dyn/1", "tensor-zoo/1"].iter().map(|m| format!("{m}: UNAVAILABLE")).collect();
    assert_eq!(states(&r[0]["value"]), all_unavailable, "MODEL_DIR's models, none loaded");
    assert!(reason(&r[0]["value"], "shapes").contains("source local"), "{}", r[0]);
    assert_eq!(r[3]["status"], not_found, "{}", r[3]);
    assert_eq!(r[4]["status"], internal, "{}", r[4]);
    assert_eq!(r[5]["status"], invalid, "{}", r[5]);
    assert!(r[5]["message"].as_str().unwrap().contains("config"), "{}", r[5]);
    assert_eq!(states(&r[6]["value"]), ["shapes/1: READY", "tensor-zoo/1: READY"], "the failed loads cost nothing");
    assert_eq!(
        states(&r[7]["value"]),
        ["garbage/1: UNAVAILABLE", "shapes/1: READY", "shapes-dyn/1: UNAVAILABLE", "tensor-zoo/1: READY"]
    );
    assert!(reason(&r[7]["value"], "garbage").contains("load failed"), "{}", r[7]);
    assert_eq!([&r[9]["value"], &r[10]["value"], &r[11]["value"]], [true, true, true], "pinned models stay loaded");
    assert_eq!(r[12]["value"], 5);
    assert_eq!(r[13]["ok"], false, "a wrong shape fails: {}", r[13]);

    // Statistics: exactly the five answered and the one failed request.
    let stats = &r[14]["value"]["model_stats"];
    assert_eq!(stats.as_array().unwrap().len(), 1, "{stats}");
    let zoo = &stats[0];
    assert_eq!((&zoo["name"], &zoo["version"]), (&json!("tensor-zoo"), &json!("1")));
    assert_eq!(number(&zoo["inference_count"]), 5, "{zoo}");
    assert_eq!(number(&zoo["execution_count"]), 5, "one client at a time: a run each; {zoo}");
    let inference = &zoo["inference_stats"];
    assert_eq!(number(&inference["success"]["count"]), 5, "{zoo}");
    assert_eq!(number(&inference["fail"]["count"]), 1, "{zoo}");
    for stage in ["success", "queue", "compute_infer"] {
        assert!(number(&inference[stage]["ns"]) > 0, "{stage} took no time: {zoo}");
    }
    assert_eq!(number(&inference["compute_infer"]["count"]), 5, "{zoo}");
    assert_eq!(number(&zoo["batch_stats"][0]["batch_size"]), 1, "{zoo}");
    assert_eq!(number(&zoo["batch_stats"][0]["compute_infer"]["count"]), 5, "{zoo}");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let last = number(&zoo["last_inference"]);
    assert!(last <= now_ms && now_ms - last < 120_000, "last_inference {last} is not recent (now {now_ms})");
    let every: Vec<&str> =
        r[15]["value"]["model_stats"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(every, ["shapes", "shapes-dyn", "tensor-zoo"], "every loaded model");
    assert_eq!(r[16]["status"], not_found, "{}", r[16]);
    // The same counters as /metrics.
    let text = server.get_text("/metrics").await;
    let series = "sightline_inference_count_total{model_id=\"tensor-zoo/1\"} 5";
    assert!(text.lines().any(|l| l == series), "/metrics agrees: {series}");

    let r = drive(
        protocol,
        &address,
        &[
            step("unload", json!({"name": "tensor-zoo"})),
            ready("tensor-zoo"),
            step("index", json!({})),
            step("unload", json!({"name": "shapes"})),
            step("unload", json!({"name": "shapes"})),
            // Unpinned now: shapes/1, loaded again by a request, is the least recently used and goes.
            infer("shapes", 1, false),
            infer("tensor-zoo", 1, false),
            infer("shapes-dyn", 1, false),
            ready("shapes"),
            ready("tensor-zoo"),
            step("unload", json!({"name": "bad name!"})),
        ],
    );
    for (i, answer) in r.iter().enumerate() {
        assert_eq!(answer["ok"], i != 10, "step {i}: {answer}");
    }
    assert_eq!(r[1]["value"], false, "unloaded");
    assert!(states(&r[2]["value"]).contains(&"tensor-zoo/1: UNAVAILABLE".to_owned()), "{}", r[2]);
    assert!(reason(&r[2]["value"], "tensor-zoo").contains("disk cache"), "{}", r[2]);
    assert_eq!((&r[8]["value"], &r[9]["value"]), (&json!(false), &json!(true)), "an unloaded model is evictable again");
    assert_eq!(r[10]["status"], invalid, "{}", r[10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_and_statistics_over_http_with_tritonclient() {
    repository_and_statistics("http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_and_statistics_over_grpc_with_tritonclient() {
    repository_and_statistics("grpc").await;
}
