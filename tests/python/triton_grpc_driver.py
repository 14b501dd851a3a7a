"""Drives a server through PyPI's tritonclient[grpc], unchanged, and computes every answer again
with ONNX Runtime's Python package on the same ONNX file and the same tensors. Inputs go as
raw_input_contents (what tritonclient sends) and, through the client's own generated stub, as
typed contents. Prints a JSON report on stdout; tests/tests/grpc.rs asserts on it.

stdin: {"url": "127.0.0.1:PORT", "key": null | "...", "models": [{"name", "version", "file", "batch"}],
        "errors": [{"name", "version", "input": {"name", "datatype", "shape"}}]}
"""
import json
import queue
import sys

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from tensor_checks import compare, random_tensor

spec = json.load(sys.stdin)
headers = {"authorization": f"Bearer {spec['key']}"} if spec.get("key") else None
client = grpcclient.InferenceServerClient(spec["url"])
report = {
    "live": client.is_server_live(headers=headers),
    "ready": client.is_server_ready(headers=headers),
    "server": client.get_server_metadata(headers=headers, as_json=True),
    "models": [],
    "errors": [],
}


TYPED = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
         "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
         "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents"}


def typed_infer(name, version, feeds, datatypes, names):
    """The request built from tritonclient's own messages, every input in typed contents (FP16,
    which has none, stays raw), sent through the client's generated stub."""
    request = service_pb2.ModelInferRequest(model_name=name, model_version=version, id="typed-1")
    raw_needed = any(datatypes[n] not in TYPED for n in feeds)
    for input_name, array in feeds.items():
        tensor = request.inputs.add(name=input_name, datatype=datatypes[input_name], shape=list(array.shape))
        if not raw_needed:
            getattr(tensor.contents, TYPED[datatypes[input_name]]).extend(array.flatten().tolist())
    if raw_needed:
        request.raw_input_contents.extend([a.tobytes() for a in feeds.values()])
    for output in names:
        request.outputs.add(name=output)
    metadata = tuple(headers.items()) if headers else None
    response = client._client_stub.ModelInfer(request, metadata=metadata)
    return grpcclient.InferResult(response), raw_needed


def stream_infer(name, version, inputs, expected, names, meta):
    """ModelStreamInfer: four requests on one stream, the third with a wrong shape; the answers
    come back in order, the failed one as an error, and the stream goes on."""
    answers = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)), headers=headers)
    first = meta["inputs"][0]
    bad_shape = [1 if int(d) == -1 else int(d) for d in first["shape"]]
    bad_shape[-1] += 1
    bad = grpcclient.InferInput(first["name"], bad_shape, first["datatype"])
    bad.set_data_from_numpy(random_tensor(np.random.default_rng(3), first["datatype"], bad_shape))
    for i in range(4):
        client.async_stream_infer(name, [bad] if i == 2 else inputs, model_version=version, request_id=f"s-{i}")
    got = [answers.get(timeout=60) for _ in range(4)]
    client.stop_stream()
    report = []
    for result, error in got:
        if error is not None:
            report.append({"error": error.message()})
            continue
        response = result.get_response(as_json=True)
        report.append({"id": response.get("id"), "outputs": {n: compare(expected[n], result.as_numpy(n)) for n in names}})
    return report


for case in spec["models"]:
    name, version = case["name"], case["version"]
    entry = {"name": name, "ready_before": client.is_model_ready(name, version, headers=headers)}
    meta = client.get_model_metadata(name, version, headers=headers, as_json=True)
    entry["metadata"] = meta
    entry["ready_after"] = client.is_model_ready(name, version, headers=headers)
    entry["config"] = client.get_model_config(name, version, headers=headers, as_json=True)["config"]
    session = ort.InferenceSession(case["file"], providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    feeds, datatypes = {}, {}
    for spec_input in meta["inputs"]:
        shape = [case["batch"] if int(d) == -1 else int(d) for d in spec_input["shape"]]
        feeds[spec_input["name"]] = random_tensor(rng, spec_input["datatype"], shape)
        datatypes[spec_input["name"]] = spec_input["datatype"]
    names = [o.name for o in session.get_outputs()]
    expected = dict(zip(names, session.run(None, feeds)))
    entry["reference_outputs"] = names
    inputs = []
    for input_name, array in feeds.items():
        tensor = grpcclient.InferInput(input_name, list(array.shape), datatypes[input_name])
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = client.infer(name, inputs, model_version=version, request_id="raw-1", headers=headers)
    response = result.get_response(as_json=True)
    entry["raw"] = {
        "id": response.get("id"),
        "model_name": response.get("model_name"),
        "model_version": response.get("model_version"),
        "outputs": {n: compare(expected[n], result.as_numpy(n)) for n in names},
    }
    typed, kept_raw = typed_infer(name, version, feeds, datatypes, list(reversed(names)))
    typed_response = typed.get_response(as_json=True)
    entry["typed"] = {
        "id": typed_response.get("id"),
        "kept_raw": kept_raw,
        "output_order": [o["name"] for o in typed_response["outputs"]],
        "outputs": {n: compare(expected[n], typed.as_numpy(n)) for n in names},
    }
    entry["stream"] = stream_infer(name, version, inputs, expected, names, meta)
    report["models"].append(entry)

for case in spec["errors"]:
    tensor = grpcclient.InferInput(case["input"]["name"], case["input"]["shape"], case["input"]["datatype"])
    tensor.set_data_from_numpy(np.zeros(case["input"]["shape"], dtype=triton_to_np_dtype(case["input"]["datatype"])))
    try:
        client.infer(case["name"], [tensor], model_version=case["version"], headers=headers)
        report["errors"].append({"status": "OK"})
    except InferenceServerException as e:
        report["errors"].append({"status": e.status(), "message": e.message()})

json.dump(report, sys.stdout)
