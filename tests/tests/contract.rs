//! The OpenAPI document against the server it describes: schemathesis (from .venv) generates
//! requests from `/openapi.json` for every operation and runs all of its checks (statuses,
//! content types, response schemas, `Allow` on 405, schema-valid requests accepted and invalid
//! ones refused). The server has no models, so every inference reaches the 404 of a model it
//! lacks rather than a random image's 400; the task routes' own answers are tested against
//! references elsewhere. The seed is fixed so that a failure reproduces.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_in_the_document() {
    let models = TempDir::new("contract");
    let server = Server::start(models.path(), &[]).await;
    let scratch = TempDir::new("contract-cwd");
    let schemathesis = repo_root().join(".venv/bin/schemathesis");
    assert!(schemathesis.is_file(), "{} is missing: run `make setup`", schemathesis.display());
    let out = std::process::Command::new(schemathesis)
        .args(["run", &server.url("/openapi.json"), "--checks", "all", "--max-examples", "25", "--seed", "1"])
        .args(["--no-color", "--request-timeout", "30"])
        .env("SCHEMATHESIS_HOOKS", "")
        // schemathesis keeps a cache of what it found in its working directory: not the source tree.
        .current_dir(scratch.path())
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis found failures:\n{report}\n{}", String::from_utf8_lossy(&out.stderr));
    let (_, doc) = server.get_json("/openapi.json").await;
    let operations: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert!(operations >= 30, "{operations} operations documented");
    assert!(report.contains(&format!("Tested: {operations}")), "every operation is tested:\n{report}");
}
