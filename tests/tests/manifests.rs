//! The Kubernetes manifests (deploy/kubernetes/) against the API schemas, offline: the base and each
//! overlay (gpu, s3) rendered as kustomize renders them (by the renderer in CHECK, for the kustomize
//! features they use, and compared resource by resource with `kubectl kustomize` where a kubectl
//! with kustomize v5 is installed), every rendered resource through PyPI `kubernetes-validate
//! --strict` (unknown fields rejected); deploy/kserve/ against KServe's own CRD schemas
//! (tests/python/kserve_check.py); plus the facts the manifests must keep.

mod common;

use common::*;

const CHECK: &str = r#"
import copy, glob, json, os, shutil, subprocess, sys
import yaml
import kubernetes_validate

root = sys.argv[1]
kube = os.path.join(root, "deploy/kubernetes")

# A renderer for the kustomize features these manifests use, as kustomize v5 applies them; anything
# else in a kustomization is refused rather than rendered wrong.
KUSTOMIZATION = {"apiVersion", "kind", "resources", "images", "patches", "patchesStrategicMerge"}
IMAGE = {"name", "newName", "newTag", "digest"}
# The lists that a strategic merge merges item by item, by the Kubernetes API's patchMergeKey
# (ports: containerPort in a container, port in a Service); every other list is replaced.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath", "imagePullSecrets": "name"}

def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]

def ident(doc):
    return (doc["apiVersion"], doc["kind"], doc["metadata"]["name"], doc["metadata"].get("namespace"))

def merge_key(field, items):
    if field == "ports":
        return "containerPort" if all("containerPort" in i for i in items) else "port"
    return MERGE_KEYS.get(field)

def merge(into, patch):
    # Maps merge key by key (null deletes); lists with a merge key merge item by item, the patch's
    # items first in the patch's order, then the others as they were (kustomize's kyaml order).
    for key, value in patch.items():
        assert not key.startswith("$"), f"strategic merge directive {key} is not supported"
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list) and merge_key(key, into[key] + value):
            name = merge_key(key, into[key] + value)
            old = {i[name]: i for i in into[key]}
            merged = []
            for item in value:
                assert not any(k.startswith("$") for k in item), f"strategic merge directive in {key}"
                if item[name] in old:
                    base = copy.deepcopy(old[item[name]])
                    merge(base, item)
                    merged.append(base)
                else:
                    merged.append(copy.deepcopy(item))
            touched = {i[name] for i in value}
            into[key] = merged + [i for i in into[key] if i[name] not in touched]
        else:
            into[key] = copy.deepcopy(value)

def split_image(image):
    name, digest = (image.split("@", 1) + [None])[:2]
    tag = None
    if name.rfind(":") > name.rfind("/"):
        name, tag = name.rsplit(":", 1)
    return name, tag, digest

def set_images(node, images):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    name, tag, digest = split_image(container["image"])
                    for entry in images:
                        if entry["name"] == name:
                            new = entry.get("newName", name)
                            if "digest" in entry:
                                container["image"] = f"{new}@{entry['digest']}"
                            elif "newTag" in entry:
                                container["image"] = f"{new}:{entry['newTag']}"
                            else:
                                container["image"] = new + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
            else:
                set_images(value, images)
    elif isinstance(node, list):
        for item in node:
            set_images(item, images)

def render(directory):
    kustomization = yaml.safe_load(open(os.path.join(directory, "kustomization.yaml")))
    unknown = set(kustomization) - KUSTOMIZATION
    assert not unknown, (directory, "kustomization fields this renderer does not apply", sorted(unknown))
    resources = {}
    for entry in kustomization.get("resources", []):
        path = os.path.normpath(os.path.join(directory, entry))
        docs = render(path) if os.path.isdir(path) else load(path)
        for doc in docs:
            assert ident(doc) not in resources, ("resource listed twice", ident(doc))
            resources[ident(doc)] = doc
    patches = [{"path": p} for p in kustomization.get("patchesStrategicMerge", [])] + kustomization.get("patches", [])
    for patch in patches:
        assert set(patch) <= {"path", "patch"} and len(patch) == 1, ("patches with target or options are not supported", patch)
        docs = load(os.path.join(directory, patch["path"])) if "path" in patch else list(yaml.safe_load_all(patch["patch"]))
        for doc in docs:
            assert isinstance(doc, dict), ("JSON 6902 patches are not supported", patch)
            targets = [r for i, r in resources.items() if i[1:3] == (doc["kind"], doc["metadata"]["name"])]
            assert len(targets) == 1, ("a patch must match one resource", patch, len(targets))
            merge(targets[0], doc)
    for entry in kustomization.get("images", []):
        assert set(entry) <= IMAGE, ("image fields this renderer does not apply", entry)
    set_images(list(resources.values()), kustomization.get("images", []))
    return list(resources.values())

def validate(doc, what):
    try:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        # CRDs (ServiceMonitor) have no bundled schema: their apiVersion and kind are checked instead.
        assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "ServiceMonitor", what
    except kubernetes_validate.ValidationError as e:
        raise SystemExit(f"{what}: {e.message} at {list(e.path)}")

# Every file in a kustomization's folder is a resource or patch of it, or an example (*.example.yaml).
for directory in ("base", "overlays/gpu", "overlays/s3"):
    folder = os.path.join(kube, directory)
    k = yaml.safe_load(open(os.path.join(folder, "kustomization.yaml")))
    used = set(k.get("resources", [])) | {p["path"] for p in k.get("patches", [])} | set(k.get("patchesStrategicMerge", []))
    files = {os.path.basename(f) for f in glob.glob(os.path.join(folder, "*.yaml"))} - {"kustomization.yaml"}
    assert {f for f in files if not f.endswith(".example.yaml")} <= used, (directory, "files neither listed nor examples", sorted(files - used))
    assert not {f for f in files if f.endswith(".example.yaml")} & used, (directory, "an example is not part of the kustomization")

renders = {name: render(os.path.join(kube, name)) for name in ("base", "overlays/gpu", "overlays/s3")}
for name, docs in renders.items():
    for doc in docs:
        validate(doc, f"{name}: {doc['kind']} {doc['metadata']['name']}")

# Where kubectl's own kustomize (v5) is installed, its rendering must be the same, resource by resource.
kustomize = None
kubectl = shutil.which("kubectl")
if kubectl:
    try:
        version = json.loads(subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=60).stdout).get("kustomizeVersion", "")
    except (ValueError, subprocess.TimeoutExpired):
        version = ""
    if version.startswith("v") and version[1:].split(".")[0].isdigit() and int(version[1:].split(".")[0]) >= 5:
        kustomize = version
        for name, docs in renders.items():
            out = subprocess.run([kubectl, "kustomize", os.path.join(kube, name)], capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, (name, "kubectl kustomize", out.stderr)
            real = {ident(d): d for d in yaml.safe_load_all(out.stdout) if d is not None}
            ours = {ident(d): d for d in docs}
            assert sorted(real) == sorted(ours), (name, sorted(real), sorted(ours))
            for key in real:
                assert real[key] == ours[key], (name, key, "kustomize renders", real[key], "this renderer", ours[key])

def by_kind(docs, kind):
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc

def container(docs):
    [c] = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c

def env(docs):
    return {e["name"]: e.get("value") for e in container(docs).get("env", [])}

def secret_refs(node):
    # Every Secret a resource names: env valueFrom, envFrom, volumes, imagePullSecrets.
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("secretKeyRef", "secretRef") and isinstance(value, dict):
                found.append(value["name"])
            elif key == "secret" and isinstance(value, dict):
                found.append(value["secretName"])
            elif key == "imagePullSecrets":
                found += [s["name"] for s in value]
            else:
                found += secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            found += secret_refs(item)
    return found

base, gpu, s3 = renders["base"], renders["overlays/gpu"], renders["overlays/s3"]
base_kustomization = yaml.safe_load(open(os.path.join(kube, "base/kustomization.yaml")))
[image] = base_kustomization["images"]
example = load(os.path.join(kube, "overlays/s3/secret.example.yaml"))
for doc in example:
    validate(doc, "overlays/s3/secret.example.yaml")
[example] = example
deployment = by_kind(base, "Deployment")["spec"]["template"]["spec"]
print(json.dumps({
    "grace": deployment["terminationGracePeriodSeconds"],
    "drain": float(env(base)["SHUTDOWN_DRAIN_SECS"]),
    "timeout": float(env(base)["SHUTDOWN_TIMEOUT_SECS"]),
    "readiness": container(base)["readinessProbe"]["httpGet"]["path"],
    "liveness": container(base)["livenessProbe"]["httpGet"]["path"],
    "hpa_metrics": [m.get("pods", {}).get("metric", {}).get("name") or m["resource"]["name"] for m in by_kind(base, "HorizontalPodAutoscaler")["spec"]["metrics"]],
    "kinds": sorted(d["kind"] for d in base),
    "base_sources": env(base)["MODEL_SOURCES"],
    "base_secrets": secret_refs(base),
    "base_s3_env": sorted(n for n in env(base) if n.startswith(("S3_", "AWS_"))),
    "base_image": container(base)["image"],
    "base_images_entry": {"name": image["name"], "image": image.get("newName", image["name"]) + (f"@{image['digest']}" if "digest" in image else f":{image['newTag']}")},
    "base_source_image": yaml.safe_load(open(os.path.join(kube, "base/deployment.yaml")))["spec"]["template"]["spec"]["containers"][0]["image"],
    "s3_sources": env(s3)["MODEL_SOURCES"],
    "s3_bucket": env(s3).get("S3_BUCKET"),
    "s3_env": sorted(n for n in env(s3) if n.startswith(("S3_", "AWS_"))),
    "s3_secrets": secret_refs(s3),
    "s3_kinds": sorted(d["kind"] for d in s3),
    "s3_image": container(s3)["image"],
    "s3_grace": by_kind(s3, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
    "example_secret": {"name": example["metadata"]["name"], "keys": sorted(example.get("stringData", {}))},
    "gpu_limit": container(gpu)["resources"]["limits"].get("nvidia.com/gpu"),
    "gpu_providers": env(gpu).get("EXECUTION_PROVIDERS"),
    "gpu_sources": env(gpu)["MODEL_SOURCES"],
    "gpu_secrets": secret_refs(gpu),
    "gpu_image": container(gpu)["image"],
    "kustomize": kustomize,
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
    assert_eq!(
        facts["kinds"],
        serde_json::json!([
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Ingress",
            "PodDisruptionBudget",
            "Service",
            "ServiceMonitor"
        ])
    );

    // The base serves the image's own models: no bucket, no credentials.
    assert_eq!(facts["base_sources"], "local");
    assert_eq!(facts["base_secrets"], serde_json::json!([]), "the base names no Secret");
    assert_eq!(facts["base_s3_env"], serde_json::json!([]), "the base sets no S3 or AWS variable");
    // The image is kustomize's `images:` variable, a registry name rather than podman's local one.
    assert_eq!(facts["base_source_image"], facts["base_images_entry"]["name"]);
    assert_eq!(facts["base_image"], facts["base_images_entry"]["image"]);
    let image = facts["base_image"].as_str().unwrap();
    assert!(!image.starts_with("localhost/") && image.contains('/'), "{image}");

    // overlays/s3: the bucket first, the image's models second, credentials from a Secret it does
    // not ship (secret.example.yaml is the example, not a resource).
    let sources: Vec<&str> = facts["s3_sources"].as_str().unwrap().split(',').collect();
    assert_eq!(sources.first(), Some(&"s3"), "{sources:?}");
    assert!(sources.contains(&"local"), "{sources:?}");
    assert_eq!(facts["s3_bucket"], "sightline-models");
    assert_eq!(facts["s3_env"], serde_json::json!(["AWS_REGION", "S3_BUCKET", "S3_PREFIX"]));
    assert_eq!(facts["s3_secrets"], serde_json::json!(["sightline-s3"]));
    assert_eq!(facts["s3_kinds"], facts["kinds"], "the overlay adds no resource (no Secret)");
    assert_eq!(facts["example_secret"]["name"], "sightline-s3");
    assert_eq!(facts["example_secret"]["keys"], serde_json::json!(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]));
    assert_eq!(facts["s3_image"], facts["base_image"]);
    assert_eq!(facts["s3_grace"], facts["grace"]);

    // overlays/gpu: the same registry name with the gpu tag, one GPU, CUDA first.
    assert_eq!(facts["gpu_limit"], 1);
    assert_eq!(facts["gpu_providers"], "cuda,cpu");
    assert_eq!(facts["gpu_sources"], "local");
    assert_eq!(facts["gpu_secrets"], serde_json::json!([]));
    let name = image.split('@').next().unwrap();
    let name = match name.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => name,
    };
    assert_eq!(facts["gpu_image"], format!("{name}:gpu"));
    if facts["kustomize"].is_null() {
        eprintln!("no kubectl with kustomize v5 here: the renders were not compared with kustomize's own");
    }
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
