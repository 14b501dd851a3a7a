"""Drives a server through PyPI's tritonclient[http], unchanged, and computes every answer again
with ONNX Runtime's Python package on the same ONNX file and the same tensors. Prints a JSON
report on stdout; tests/tests/kserve.rs asserts on it.

stdin: {"url": "127.0.0.1:PORT", "models": [{"name", "version", "file", "batch"}],
        "errors": [{"name", "version", "input": {"name", "datatype", "shape"}}]}
"""
import json
import sys

import numpy as np
import onnxruntime as ort
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from tensor_checks import compare, random_tensor

spec = json.load(sys.stdin)
client = httpclient.InferenceServerClient(spec["url"], network_timeout=120.0)
report = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "server": client.get_server_metadata(),
    "models": [],
    "errors": [],
}


for case in spec["models"]:
    name, version = case["name"], case["version"]
    entry = {"name": name, "ready_before": client.is_model_ready(name, version)}
    meta = client.get_model_metadata(name, version)
    entry["metadata"] = meta
    entry["ready_after"] = client.is_model_ready(name, version)
    entry["config"] = client.get_model_config(name, version)
    session = ort.InferenceSession(case["file"], providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    feeds = {}
    for spec_input in meta["inputs"]:
        shape = [case["batch"] if d == -1 else d for d in spec_input["shape"]]
        feeds[spec_input["name"]] = random_tensor(rng, spec_input["datatype"], shape)
    names = [o.name for o in session.get_outputs()]
    expected = dict(zip(names, session.run(None, feeds)))
    entry["reference_outputs"] = names
    for mode in ["json", "binary", "default"]:
        binary = mode != "json"
        inputs = []
        for input_name, array in feeds.items():
            datatype = next(i["datatype"] for i in meta["inputs"] if i["name"] == input_name)
            tensor = httpclient.InferInput(input_name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array, binary_data=binary)
            inputs.append(tensor)
        # "default": no outputs named, so the client asks for every output in binary.
        outputs = None if mode == "default" else [httpclient.InferRequestedOutput(n, binary_data=binary) for n in names]
        result = client.infer(name, inputs, model_version=version, outputs=outputs, request_id=f"{mode}-1")
        response = result.get_response()
        entry[mode] = {
            "id": response.get("id"),
            "model_name": response.get("model_name"),
            "model_version": response.get("model_version"),
            "binary_outputs": [o["name"] for o in response["outputs"] if "binary_data_size" in o.get("parameters", {})],
            "outputs": {n: compare(expected[n], result.as_numpy(n)) for n in names},
        }
    report["models"].append(entry)

for case in spec["errors"]:
    tensor = httpclient.InferInput(case["input"]["name"], case["input"]["shape"], case["input"]["datatype"])
    array = np.zeros(case["input"]["shape"], dtype=triton_to_np_dtype(case["input"]["datatype"]))
    tensor.set_data_from_numpy(array, binary_data=case.get("binary", False))
    try:
        client.infer(case["name"], [tensor], model_version=case["version"])
        report["errors"].append({"status": "200"})
    except InferenceServerException as e:
        report["errors"].append({"status": e.status(), "message": e.message()})

json.dump(report, sys.stdout)
