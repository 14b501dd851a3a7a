"""Writes tests/data/models/det-classifier/weights.onnx: a tiny "classifier" whose one operator
(Det, the determinant) OpenVINO does not implement, so a session on OpenVINO (which Sightline builds
with CPU fallback disabled) is refused and the next execution provider must take it.

Input (1, 3, 4, 4) -> Det over the last two axes -> (1, 3): three class scores.
Run with a Python that has `onnx` (e.g. `pip install onnx==1.23.2`); the file is committed.
"""
import sys

import onnx
from onnx import TensorProto, helper

out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/models/det-classifier/weights.onnx"
graph = helper.make_graph(
    [helper.make_node("Det", ["images"], ["output0"])],
    "det_classifier",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 4, 4])],
    [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3])],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="sightline-tests")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, out)
print(f"wrote {out}")
