"""Writes a YOLOv8-shaped detector of a chosen size for `make soak`: a model folder
(weights.onnx, class_names.txt, model_type.json, environment.json) whose weights are mostly one
large MatMul, so that loading it costs memory like a real 40+ MB detector while a test inference
costs little CPU.

Usage: python scripts/make_big_model.py <folder> [megabytes, default 44]
Input (1, 3, 640, 640) -> global average pool -> (1, 3) -> MatMul (3, H) -> Relu -> MatMul (H, H)
-> Relu -> MatMul (H, 7 * 2100) -> (1, 7, 2100): 4 box values and 3 class scores per anchor.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

folder = sys.argv[1]
megabytes = float(sys.argv[2]) if len(sys.argv) > 2 else 44.0
anchors, values = 2100, 7
# Bytes ~= 4 * (3H + H^2 + 7 * 2100 * H): choose H for the requested size.
target = megabytes * 1e6 / 4
b = 3 + values * anchors
hidden = int((-b + (b * b + 4 * target) ** 0.5) / 2)
rng = np.random.default_rng(0)


def weight(name, shape):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.01).astype(np.float32), name)


initializers = [
    weight("w0", (3, hidden)),
    weight("w1", (hidden, hidden)),
    weight("w2", (hidden, values * anchors)),
    numpy_helper.from_array(np.array([1, values, anchors], dtype=np.int64), "shape"),
    numpy_helper.from_array(np.array([1, 3], dtype=np.int64), "flat"),
]
nodes = [
    helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
    helper.make_node("Reshape", ["pooled", "flat"], ["x0"]),
    helper.make_node("MatMul", ["x0", "w0"], ["h0"]),
    helper.make_node("Relu", ["h0"], ["a0"]),
    helper.make_node("MatMul", ["a0", "w1"], ["h1"]),
    helper.make_node("Relu", ["h1"], ["a1"]),
    helper.make_node("MatMul", ["a1", "w2"], ["h2"]),
    helper.make_node("Reshape", ["h2", "shape"], ["output0"]),
]
graph = helper.make_graph(
    nodes,
    "big_detector",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
    [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, values, anchors])],
    initializers,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="sightline-soak")
model.ir_version = 8
onnx.checker.check_model(model)
os.makedirs(folder, exist_ok=True)
onnx.save(model, os.path.join(folder, "weights.onnx"))
with open(os.path.join(folder, "class_names.txt"), "w") as f:
    f.write("circle\nsquare\ntriangle\n")
with open(os.path.join(folder, "model_type.json"), "w") as f:
    json.dump({"project_task_type": "object-detection", "model_type": "yolov8n"}, f)
with open(os.path.join(folder, "environment.json"), "w") as f:
    json.dump({"PREPROCESSING": {"resize": {"enabled": True, "format": "Fit (black edges) in", "width": 640, "height": 640}}}, f)
size = os.path.getsize(os.path.join(folder, "weights.onnx"))
print(f"wrote {folder}/weights.onnx: {size / 1e6:.1f} MB (hidden {hidden})")
