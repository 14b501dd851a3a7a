"""Drives Triton's model repository and statistics extensions through PyPI's tritonclient, unchanged,
over HTTP or gRPC (the same steps through either client), and reports what each step answered.
tests/tests/triton_extensions.rs asserts on the report.

stdin: {"protocol": "http" | "grpc", "url": "127.0.0.1:PORT", "steps": [step, ...]} where a step is
  {"op": "index", "ready": bool}
  {"op": "load", "name": "shapes" | "shapes/1", "config": optional JSON text}
  {"op": "unload", "name": ...}
  {"op": "ready", "name": ..., "version": ...}
  {"op": "infer", "name": ..., "version": ..., "count": n, "bad": bool}  (bad: a wrong shape)
  {"op": "stats", "name": optional, "version": optional}
stdout: [{"ok": true, "value": ...} | {"ok": false, "status": ..., "message": ...}, ...]
"""
import json
import sys
import urllib.request

import numpy as np
from tritonclient.utils import InferenceServerException

from tensor_checks import random_tensor

spec = json.load(sys.stdin)
if spec["protocol"] == "grpc":
    import tritonclient.grpc as client_module
else:
    import tritonclient.http as client_module
client = client_module.InferenceServerClient(spec["url"])
rng = np.random.default_rng(11)


def as_json(value):
    """gRPC answers are messages (as_json=True gives int64 as text); HTTP answers are JSON already."""
    return json.loads(json.dumps(value))


def index(step):
    """The client's index call; with `ready` (which neither client exposes), the protocol's own
    request: the gRPC stub's message, or the REST body."""
    if not step.get("ready"):
        if spec["protocol"] == "grpc":
            return client.get_model_repository_index(as_json=True).get("models", [])
        return client.get_model_repository_index()
    if spec["protocol"] == "grpc":
        from google.protobuf.json_format import MessageToDict
        from tritonclient.grpc import service_pb2
        answer = client._client_stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(ready=True))
        return MessageToDict(answer, preserving_proto_field_name=True).get("models", [])
    request = urllib.request.Request(f"http://{spec['url']}/v2/repository/index", data=b'{"ready": true}', method="POST")
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


def infer(step):
    meta = client.get_model_metadata(step["name"], step["version"])
    meta = meta if isinstance(meta, dict) else as_json(client.get_model_metadata(step["name"], step["version"], as_json=True))
    answered = 0
    for _ in range(step["count"]):
        inputs = []
        for spec_input in meta["inputs"]:
            shape = [1 if int(d) == -1 else int(d) for d in spec_input["shape"]]
            if step.get("bad"):
                shape = shape[:-1] + [shape[-1] + 1]
            array = random_tensor(rng, spec_input["datatype"], shape)
            tensor = client_module.InferInput(spec_input["name"], list(array.shape), spec_input["datatype"])
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        client.infer(step["name"], inputs, model_version=step["version"])
        answered += 1
    return answered


def run(step):
    op = step["op"]
    if op == "index":
        return index(step)
    if op == "load":
        if step.get("config") is not None:
            return client.load_model(step["name"], config=step["config"])
        return client.load_model(step["name"])
    if op == "unload":
        return client.unload_model(step["name"])
    if op == "ready":
        return client.is_model_ready(step["name"], step["version"])
    if op == "infer":
        return infer(step)
    if op == "stats":
        name, version = step.get("name", ""), step.get("version", "")
        if spec["protocol"] == "grpc":
            return client.get_inference_statistics(name, version, as_json=True)
        return client.get_inference_statistics(name, version)
    raise SystemExit(f"unknown step {op}")


report = []
for step in spec["steps"]:
    try:
        report.append({"ok": True, "value": as_json(run(step))})
    except InferenceServerException as e:
        report.append({"ok": False, "status": str(e.status()), "message": e.message()})
json.dump(report, sys.stdout)
