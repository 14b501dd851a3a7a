"""Writes tests/data/models/tensor-zoo/1/model.onnx: a plain ONNX model (no Roboflow metadata)
with one input of each datatype the inference protocol tests send, every first axis symbolic
("batch") so that the server may batch requests.

  x FP32 (batch, 4)  h FP16 (batch, 4)  i64 INT64 (batch, 3)  i32 INT32 (batch, 3)
  u8 UINT8 (batch, 2, 2)  flag BOOL (batch, 2)
  ->
  x_plus_h FP32 = x + float(h)         h_twice FP16 = h + h
  i64_mix INT64 = i64 * 2 + int64(i32)  i32_neg INT32 = -i32
  u8_t UINT8 = transpose(u8, (0, 2, 1)) flag_not BOOL = not flag
  u8_sum FP32 (batch, 1) = sum over the last two axes of float(u8)

Run with a Python that has `onnx` (.venv after `make setup`); the file is committed.
"""
import sys

import onnx
from onnx import TensorProto, helper

out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/models/tensor-zoo/1/model.onnx"
T = TensorProto
inputs = [
    helper.make_tensor_value_info("x", T.FLOAT, ["batch", 4]),
    helper.make_tensor_value_info("h", T.FLOAT16, ["batch", 4]),
    helper.make_tensor_value_info("i64", T.INT64, ["batch", 3]),
    helper.make_tensor_value_info("i32", T.INT32, ["batch", 3]),
    helper.make_tensor_value_info("u8", T.UINT8, ["batch", 2, 2]),
    helper.make_tensor_value_info("flag", T.BOOL, ["batch", 2]),
]
outputs = [
    helper.make_tensor_value_info("x_plus_h", T.FLOAT, ["batch", 4]),
    helper.make_tensor_value_info("h_twice", T.FLOAT16, ["batch", 4]),
    helper.make_tensor_value_info("i64_mix", T.INT64, ["batch", 3]),
    helper.make_tensor_value_info("i32_neg", T.INT32, ["batch", 3]),
    helper.make_tensor_value_info("u8_t", T.UINT8, ["batch", 2, 2]),
    helper.make_tensor_value_info("flag_not", T.BOOL, ["batch", 2]),
    helper.make_tensor_value_info("u8_sum", T.FLOAT, ["batch", 1]),
]
two = helper.make_tensor("two", T.INT64, [], [2])
axes = helper.make_tensor("axes", T.INT64, [2], [1, 2])
nodes = [
    helper.make_node("Cast", ["h"], ["h_float"], to=T.FLOAT),
    helper.make_node("Add", ["x", "h_float"], ["x_plus_h"]),
    helper.make_node("Add", ["h", "h"], ["h_twice"]),
    helper.make_node("Mul", ["i64", "two"], ["i64_double"]),
    helper.make_node("Cast", ["i32"], ["i32_long"], to=T.INT64),
    helper.make_node("Add", ["i64_double", "i32_long"], ["i64_mix"]),
    helper.make_node("Neg", ["i32"], ["i32_neg"]),
    helper.make_node("Transpose", ["u8"], ["u8_t"], perm=[0, 2, 1]),
    helper.make_node("Not", ["flag"], ["flag_not"]),
    helper.make_node("Cast", ["u8"], ["u8_float"], to=T.FLOAT),
    helper.make_node("ReduceSum", ["u8_float", "axes"], ["u8_sum3"], keepdims=0),
    helper.make_node("Unsqueeze", ["u8_sum3", "one_axis"], ["u8_sum"]),
]
one_axis = helper.make_tensor("one_axis", T.INT64, [1], [1])
graph = helper.make_graph(nodes, "tensor_zoo", inputs, outputs, initializer=[two, axes, one_axis])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="sightline-tests")
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)
onnx.save(model, out)
print(f"wrote {out}")
