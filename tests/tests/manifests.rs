//! The Kubernetes manifests (deploy/kubernetes/) against the API schemas, offline: PyPI
//! `kubernetes-validate --strict` (unknown fields rejected) on every base resource, and on the GPU
//! overlay's Deployment as kustomize would render it; deploy/kserve/ against KServe's own CRD schemas
//! (tests/python/kserve_check.py); plus the facts the manifests must keep.

mod common;

use common::*;

const CHECK: &str = r#"
import copy, glob, json, os, sys
import yaml
import kubernetes_validate

root = sys.argv[1]
base = os.path.join(root, "deploy/kubernetes/base")
kustomization = yaml.safe_load(open(os.path.join(base, "kustomization.yaml")))
files = sorted(os.path.basename(f) for f in glob.glob(os.path.join(base, "*.yaml")) if not f.endswith("kustomization.yaml"))
assert sorted(kustomization["resources"]) == files, ("kustomization lists every resource", kustomization["resources"], files)

def validate(doc, what):
    try:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        # CRDs (ServiceMonitor) have no bundled schema: their apiVersion and kind are checked instead.
        assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "ServiceMonitor", what
    except kubernetes_validate.ValidationError as e:
        raise SystemExit(f"{what}: {e.message} at {list(e.path)}")

docs = {}
for name in files:
    for doc in yaml.safe_load_all(open(os.path.join(base, name))):
        validate(doc, name)
        docs[doc["kind"]] = doc

def merge(into, patch):
    # kustomize's strategic merge for what the overlay uses: maps merge, containers merge by name,
    # env entries merge by name, other lists are replaced.
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        elif key in ("containers", "env") and isinstance(into.get(key), list):
            for item in value:
                same = [i for i in into[key] if i.get("name") == item.get("name")]
                if same:
                    merge(same[0], item)
                else:
                    into[key].append(item)
        else:
            into[key] = value

gpu = copy.deepcopy(docs["Deployment"])
merge(gpu, yaml.safe_load(open(os.path.join(root, "deploy/kubernetes/overlays/gpu/gpu-patch.yaml"))))
validate(gpu, "GPU overlay Deployment")

deployment = docs["Deployment"]["spec"]["template"]["spec"]
container = deployment["containers"][0]
env = {e["name"]: e.get("value") for e in container["env"]}
print(json.dumps({
    "grace": deployment["terminationGracePeriodSeconds"],
    "drain": float(env["SHUTDOWN_DRAIN_SECS"]),
    "timeout": float(env["SHUTDOWN_TIMEOUT_SECS"]),
    "readiness": container["readinessProbe"]["httpGet"]["path"],
    "liveness": container["livenessProbe"]["httpGet"]["path"],
    "hpa_metrics": [m.get("pods", {}).get("metric", {}).get("name") or m["resource"]["name"] for m in docs["HorizontalPodAutoscaler"]["spec"]["metrics"]],
    "gpu_limit": gpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu"),
    "gpu_providers": {e["name"]: e.get("value") for e in gpu["spec"]["template"]["spec"]["containers"][0]["env"]}.get("EXECUTION_PROVIDERS"),
}))
"#;

#[test]
fn every_manifest_validates_strictly_and_keeps_the_shutdown_and_scaling_contract() {
    let root = repo_root();
    let out = venv_python(&["-c", CHECK, root.to_str().unwrap()], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}{}", String::from_utf8_lossy(&out.stdout));
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (grace, drain, timeout) =
        (facts["grace"].as_f64().unwrap(), facts["drain"].as_f64().unwrap(), facts["timeout"].as_f64().unwrap());
    assert!(
        grace > drain + timeout,
        "terminationGracePeriodSeconds {grace} must exceed drain {drain} + timeout {timeout}"
    );
    assert_eq!(facts["readiness"], "/readiness");
    assert_eq!(facts["liveness"], "/healthz");
    assert_eq!(facts["hpa_metrics"], serde_json::json!(["sightline_http_requests_in_flight", "cpu"]));
    assert_eq!(facts["gpu_limit"], 1);
    assert_eq!(facts["gpu_providers"], "cuda,cpu");
}

/// deploy/kserve/: the ClusterServingRuntime and the example InferenceService against KServe's own
/// CRD schemas (vendored in deploy/kserve/schemas/), strictly, by tests/python/kserve_check.py;
/// plus the facts KServe and Sightline must agree on.
#[test]
fn kserve_runtime_and_inference_service_validate_against_the_vendored_crds() {
    let root = repo_root();
    let check = root.join("tests/python/kserve_check.py");
    let out = venv_python(&[check.to_str().unwrap(), root.to_str().unwrap()], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}{}", String::from_utf8_lossy(&out.stdout));
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(facts["runtime"], "sightline");
    assert_eq!(facts["runtime_formats"], serde_json::json!(["onnx"]));
    assert_eq!(facts["protocols"], serde_json::json!(["v2", "grpc-v2"]));
    assert_eq!(facts["container"], "kserve-container");
    assert_eq!(facts["image"], "localhost/sightline:cpu");
    assert_eq!(facts["container_ports"], serde_json::json!([8080]));
    assert!(facts["args"].as_array().unwrap().contains(&serde_json::json!("--port=8080")), "{}", facts["args"]);
    assert_eq!(facts["env"]["MODEL_DIR"], "/mnt/models");
    assert_eq!(facts["env"]["MODEL_SOURCES"], "local");
    assert_eq!(facts["env"]["HOST"], "0.0.0.0");
    assert_eq!(facts["env"]["GRPC_PORT"], "9000");
    assert!(facts["env"].get("PORT").is_none(), "Knative reserves PORT");
    assert_eq!(facts["probes"]["readinessProbe"]["path"], "/v2/health/ready");
    assert_eq!(facts["probes"]["livenessProbe"]["path"], "/v2/health/live");
    assert_eq!(facts["isvc_runtime"], "sightline");
    assert_eq!(facts["isvc_format"], "onnx");
    assert_eq!(facts["isvc_protocol"], "v2");
    assert_eq!(facts["isvc_ports"]["h2c"], 9000);
    assert!(facts["storage_uri"].as_str().unwrap().starts_with("s3://"), "{}", facts["storage_uri"]);
}
