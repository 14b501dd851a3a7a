//! The compose stack's monitoring (docker/): Prometheus' configuration passes `promtool check
//! config`; every Grafana panel query parses as PromQL (`promtool check rules`) and names only
//! metric families the server really exports; compose.yaml mounts files that exist.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

fn promtool(args: &[&str]) -> std::process::Output {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    Command::new(promtool).args(args).output().expect("promtool (make setup installs Debian's prometheus)")
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo_root().join("docker/grafana/dashboards/sightline.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

fn queries(dashboard: &Value) -> Vec<String> {
    let panels = dashboard["panels"].as_array().expect("panels");
    panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap_or_else(|| panic!("panel without targets: {p}")).clone())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn prometheus_config_and_every_dashboard_query_are_valid() {
    let out = promtool(&["check", "config", repo_root().join("docker/prometheus/prometheus.yml").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "sightline");
    let rules: Vec<Value> = queries(&dashboard)
        .iter()
        .enumerate()
        .map(|(i, q)| json!({"record": format!("panel:query_{i}"), "expr": q}))
        .collect();
    assert!(rules.len() >= 12, "{} queries", rules.len());
    let dir = TempDir::new("rules");
    let file = dir.path().join("rules.json");
    // promtool reads YAML, of which JSON is a subset.
    std::fs::write(&file, json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string()).unwrap();
    let out = promtool(&["check", "rules", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Metric names in a PromQL expression (ours and the process collector's).
fn metric_names(query: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in query.match_indices("sightline_").chain(query.match_indices("process_")) {
        if start > 0 && query.as_bytes()[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        let name: String = query[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let family =
            ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name).to_owned();
        names.insert(family);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_names_only_metrics_the_server_exports() {
    // One model slot, so that the second model evicts the first; a broken image counts an error.
    let server = Server::start(&repo_root().join("assets/models"), &[("MAX_ACTIVE_MODELS", "1")]).await;
    // A model no source has (first: with one slot it would evict a loaded model): a failed download.
    assert_eq!(server.post_json("/model/add", &json!({"model_id": "missing/1"})).await.0, 404);
    for model in ["shapes/1", "shapes-dyn/1"] {
        let (status, body) =
            server.post_json("/infer/object_detection", &detect_body(model, "shapes_640x480.png", 0.25, 0.45)).await;
        assert_eq!(status, 200, "{body}");
    }
    let broken = json!({"model_id": "shapes-dyn/1", "image": {"type": "base64", "value": "bm90IGFuIGltYWdl"}});
    let (status, _) = server.post_json("/infer/object_detection", &broken).await;
    assert_eq!(status, 400);
    let metrics = server.get_text("/metrics").await;
    let exported: BTreeSet<&str> =
        metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    let mut used = BTreeSet::new();
    for query in queries(&dashboard()) {
        used.extend(metric_names(&query));
    }
    assert!(used.len() >= 12, "{used:?}");
    for name in &used {
        if name.starts_with("sightline_gpu_") {
            // Exported only where NVML sees a GPU (none here): the names must be the collector's.
            let source = std::fs::read_to_string(repo_root().join("server/src/gpu_metrics.rs")).unwrap();
            assert!(source.contains(&format!("\"{name}\"")) && !exported.contains(name.as_str()), "{name}");
        } else {
            assert!(exported.contains(name.as_str()), "the dashboard uses {name}, which /metrics lacks:\n{metrics}");
        }
    }
}

const COMPOSE: &str = r#"
import json, os, sys, yaml
docker = os.path.join(sys.argv[1], "docker")
compose = yaml.safe_load(open(os.path.join(docker, "compose.yaml")))
mounts = []
for name, service in compose["services"].items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            mounts.append(os.path.exists(os.path.join(docker, source)))
print(json.dumps({
    "services": sorted(compose["services"]),
    "gpu_profiles": compose["services"]["sightline-gpu"].get("profiles"),
    "gpu_devices": compose["services"]["sightline-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"],
    "mounts_exist": mounts,
    "grace": compose["services"]["sightline"]["stop_grace_period"],
}))
"#;

#[test]
fn the_compose_stack_mounts_files_that_exist_and_keeps_the_gpu_server_in_a_profile() {
    let out = venv_python(&["-c", COMPOSE, repo_root().to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let facts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(facts["services"], json!(["grafana", "prometheus", "sightline", "sightline-gpu"]));
    assert_eq!(facts["gpu_profiles"], json!(["gpu"]));
    assert_eq!(facts["gpu_devices"], json!(["gpu"]));
    let mounts = facts["mounts_exist"].as_array().unwrap();
    assert!(mounts.len() >= 3 && mounts.iter().all(|m| m == true), "{facts}");
    assert_eq!(facts["grace"], "45s");
}
