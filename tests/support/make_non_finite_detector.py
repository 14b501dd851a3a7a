"""Writes tests/data/models/non-finite/weights.onnx: a "YOLOv8 detector" whose output holds NaN and
infinity, as a model with overflowing weights can give, to check that no answer carries them.

Input (1, 3, 256, 256); output0 (1, 7, 4): four candidates of (cx, cy, w, h, circle, square,
triangle) in input pixels, a constant plus 0 x the input's mean (so the input is used):
  0: a finite box, circle 0.9      1: cx = +inf, square 0.8
  2: w = NaN, triangle 0.85        3: a finite box elsewhere, square 0.7
Run with a Python that has `onnx` and `numpy` (onnx 1.23.2); the file is committed.
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/models/non-finite/weights.onnx"
inf, nan = np.inf, np.nan
candidates = np.array(
    [
        [100.0, 100.0, 50.0, 50.0, 0.9, 0.0, 0.0],
        [inf, 60.0, 30.0, 30.0, 0.0, 0.8, 0.0],
        [60.0, 200.0, nan, 30.0, 0.0, 0.0, 0.85],
        [200.0, 50.0, 20.0, 20.0, 0.0, 0.7, 0.0],
    ],
    dtype=np.float32,
)
constant = numpy_helper.from_array(candidates.T[np.newaxis].copy(), "candidates")
zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
graph = helper.make_graph(
    [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["candidates", "nothing"], ["output0"]),
    ],
    "non_finite_detector",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 256, 256])],
    [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 7, 4])],
    initializer=[constant, zero],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="sightline-tests")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, out)
print(f"wrote {out}")
