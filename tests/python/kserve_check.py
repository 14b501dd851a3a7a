"""Validates deploy/kserve/*.yaml offline against KServe's own CRD schemas, vendored in
deploy/kserve/schemas/ (see its README.md), strictly: a field the schema does not name is an error
(the API server would prune it silently), and so is a manifest whose kind has no vendored schema.
Then checks that the runtime and the InferenceService fit each other and prints their facts as one
JSON object on stdout; tests/tests/manifests.rs asserts on it.

usage: python kserve_check.py <repo_root>     (exit status 1 and a message on stderr on any violation)
"""
import copy
import glob
import json
import os
import sys

import jsonschema
import yaml

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
# The ObjectMeta fields a manifest may set (the CRDs' schemas leave `metadata` open).
METADATA_FIELDS = {"name", "generateName", "namespace", "labels", "annotations", "finalizers", "ownerReferences"}


def fail(message):
    print(f"kserve_check: {message}", file=sys.stderr)
    sys.exit(1)


def strict(schema):
    """The schema as the API server applies it, made strict: every object schema with `properties`,
    not marked x-kubernetes-preserve-unknown-fields and without its own additionalProperties, gets
    additionalProperties: false; x-kubernetes-int-or-string accepts an integer or a string."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = strict(value)
        else:
            out[key] = value
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def list_map_keys(validator, keys, instance, schema):
    """x-kubernetes-list-type: map: no two items with the same keys (absent keys take their default)."""
    if not validator.is_type(instance, "array"):
        return
    properties = schema.get("items", {}).get("properties", {})
    seen = {}
    for index, item in enumerate(instance):
        if not isinstance(item, dict):
            continue
        key = tuple(item.get(k, properties.get(k, {}).get("default")) for k in keys)
        if key in seen:
            yield jsonschema.ValidationError(f"items {seen[key]} and {index} share the map keys {dict(zip(keys, key))}")
        seen[key] = index


def in_range(bounds):
    def check(value):
        return not isinstance(value, int) or isinstance(value, bool) or bounds[0] <= value <= bounds[1]
    return check


FORMATS = jsonschema.FormatChecker()
FORMATS.checks("int32")(in_range(INT32))
FORMATS.checks("int64")(in_range(INT64))
Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"x-kubernetes-list-map-keys": list_map_keys})


def path_of(error):
    return "/".join(str(p) for p in error.absolute_path) or "(the document)"


def validate(doc, crd, where):
    if doc.get("apiVersion") != crd["apiVersion"] or doc.get("kind") != crd["kind"]:
        fail(f"{where}: apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')} is not the CRD's {crd['apiVersion']}/{crd['kind']}")
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        fail(f"{where}: metadata.name is missing")
    unknown = sorted(set(metadata) - METADATA_FIELDS)
    if unknown:
        fail(f"{where}: unknown metadata field(s) {unknown}")
    if crd["scope"] == "Cluster" and "namespace" in metadata:
        fail(f"{where}: a cluster-scoped {crd['kind']} has no metadata.namespace")
    errors = sorted(Validator(crd["strict"], format_checker=FORMATS).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for error in errors:
            # anyOf failures name the branch that came closest.
            best = jsonschema.exceptions.best_match([error])
            lines.append(f"  at {path_of(best)}: {best.message}")
        fail(f"{where} does not validate against {crd['source']}:\n" + "\n".join(lines))


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def main():
    if len(sys.argv) != 2:
        fail("usage: python kserve_check.py <repo_root>")
    root = os.path.join(sys.argv[1], "deploy/kserve")
    crds = {}
    for path in sorted(glob.glob(os.path.join(root, "schemas/*.json"))):
        crd = json.load(open(path))
        crd["strict"] = strict(copy.deepcopy(crd["openAPIV3Schema"]))
        jsonschema.Draft202012Validator.check_schema(crd["strict"])
        crds[crd["kind"]] = crd
    if not crds:
        fail(f"no schemas in {root}/schemas")

    docs = {}
    manifests = sorted(glob.glob(os.path.join(root, "*.yaml")))
    if not manifests:
        fail(f"no manifests in {root}")
    for path in manifests:
        for index, doc in enumerate(yaml.safe_load_all(open(path))):
            where = f"{os.path.relpath(path, sys.argv[1])} (document {index + 1})"
            if doc is None:
                continue
            if not isinstance(doc, dict):
                fail(f"{where}: not a mapping")
            crd = crds.get(doc.get("kind"))
            if crd is None:
                fail(f"{where}: no vendored schema for kind {doc.get('kind')!r} (have {sorted(crds)})")
            validate(doc, crd, where)
            if doc["kind"] in docs:
                fail(f"{where}: a second {doc['kind']}")
            docs[doc["kind"]] = doc
    for kind in ("ClusterServingRuntime", "InferenceService"):
        if kind not in docs:
            fail(f"no {kind} in deploy/kserve/*.yaml")

    # What KServe itself requires of the pair beyond the schemas.
    runtime, isvc = docs["ClusterServingRuntime"], docs["InferenceService"]
    spec = runtime["spec"]
    containers = [c for c in spec["containers"] if c["name"] == "kserve-container"]
    if len(containers) != 1:
        fail("the runtime needs one container named kserve-container (KServe finds it by that name)")
    container = containers[0]
    env = env_of(container)
    if "PORT" in env:
        fail("the runtime sets PORT, which Knative reserves (it sets PORT to the container port)")
    ports = [p["containerPort"] for p in container.get("ports", [])]
    if len(ports) != 1:
        fail(f"the runtime declares {len(ports)} container ports; Knative accepts one")
    probes = {}
    for probe in ("readinessProbe", "livenessProbe"):
        get = container.get(probe, {}).get("httpGet")
        if not get:
            fail(f"the runtime's container has no {probe}.httpGet")
        if get["port"] not in (ports[0], container["ports"][0].get("name")):
            fail(f"{probe} probes port {get['port']}, not the container port {ports[0]}")
        probes[probe] = {"path": get["path"], "port": get["port"]}
    formats = [f["name"] for f in spec.get("supportedModelFormats", [])]
    protocols = spec.get("protocolVersions", [])

    predictor = isvc["spec"]["predictor"]
    model = predictor.get("model")
    if not model:
        fail("the InferenceService's predictor has no model")
    if model.get("runtime") != runtime["metadata"]["name"]:
        fail(f"the InferenceService names runtime {model.get('runtime')!r}, not {runtime['metadata']['name']!r}")
    if model["modelFormat"]["name"] not in formats:
        fail(f"model format {model['modelFormat']['name']!r} is not among the runtime's {formats}")
    if model.get("protocolVersion") not in protocols:
        fail(f"protocol {model.get('protocolVersion')!r} is not among the runtime's {protocols}")
    isvc_ports = {p.get("name"): p["containerPort"] for p in model.get("ports", [])}
    if "h2c" in isvc_ports and str(isvc_ports["h2c"]) != env.get("GRPC_PORT"):
        fail(f"the h2c port {isvc_ports['h2c']} is not the runtime's GRPC_PORT {env.get('GRPC_PORT')}")
    if isvc_ports and isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode") != "Standard":
        fail("an InferenceService adding ports must run in Standard mode (Knative accepts one port)")

    print(json.dumps({
        "runtime": runtime["metadata"]["name"],
        "runtime_formats": formats,
        "protocols": protocols,
        "container": container["name"],
        "image": container["image"],
        "args": container.get("args", []),
        "container_ports": ports,
        "env": env,
        "probes": probes,
        "isvc": isvc["metadata"]["name"],
        "isvc_runtime": model["runtime"],
        "isvc_format": model["modelFormat"]["name"],
        "isvc_protocol": model["protocolVersion"],
        "isvc_ports": isvc_ports,
        "isvc_env": env_of(model),
        "service_account": predictor.get("serviceAccountName"),
        "storage_uri": model.get("storageUri"),
        "schemas": {kind: crd["source"] for kind, crd in sorted(crds.items())},
    }, indent=1))


if __name__ == "__main__":
    main()
