//! `/docs` works without internet: Debian's Chromium, driven by playwright
//! (tests/python/docs_browser.py), opens the page inside a network namespace that has only
//! loopback (`unshare --net`), with the server started in the same namespace. Every tag's
//! operations must render, `GET /info` must run from the page and show the server's answer, and
//! no request may leave loopback.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

#[test]
fn the_docs_page_renders_and_runs_a_request_with_only_loopback() {
    let cache = TempDir::new("docs-page");
    let screenshot = cache.path().join("docs.png");
    let env = json!({
        "ORT_DYLIB_PATH": ort_dylib(),
        "MODEL_DIR": repo_root().join("assets/models"),
        "MODEL_CACHE_DIR": cache.path().join("cache"),
        "EXECUTION_PROVIDERS": "cpu",
        "HTTP_WORKERS": "2",
        "LOG_LEVEL": "warn",
    });
    let spec = json!({"env": env, "port": free_port(), "screenshot": screenshot});
    let python = repo_root().join(".venv/bin/python");
    let driver = repo_root().join("tests/python/docs_browser.py");
    let mut child = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", r#"ip link set lo up && exec "$0" "$@""#])
        .arg(&python)
        .arg(&driver)
        .arg(binary())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) and ip (iproute2): run `make setup`");
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the browser run failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    let tags = report["tags"].as_object().unwrap();
    for tag in ["inference", "models", "legacy", "operations", "inference protocol"] {
        let operations = tags.get(tag).and_then(Value::as_array).map_or(0, Vec::len);
        assert!(operations > 0, "tag {tag:?} shows no operation: {tags:?}");
    }
    let shown: usize = tags.values().map(|ops| ops.as_array().unwrap().len()).sum();
    assert!(shown >= 30, "{shown} operations rendered: {tags:?}");
    assert!(tags["inference protocol"]
        .as_array()
        .unwrap()
        .contains(&json!("POST /v2/models/{name}/versions/{version}/infer")));
    assert_eq!(report["without_summary"], json!([]), "operations shown without a summary");
    assert!(
        report["info_description"].as_str().is_some_and(|d| d.len() > 20),
        "the opened /info operation shows its description: {report}"
    );
    assert_eq!(report["info_status"], "200", "{report}");
    let body: Value = serde_json::from_str(report["info_body"].as_str().unwrap()).unwrap();
    assert_eq!(body["name"], "Sightline", "the page shows the server's answer: {body}");
    for url in report["requests"].as_array().unwrap() {
        assert!(url.as_str().unwrap().starts_with("http://127.0.0.1:"), "the page asked for {url}");
    }
    assert_eq!(report["failed_requests"], json!([]), "requests that failed: {report}");
    assert!(screenshot.is_file());
}
