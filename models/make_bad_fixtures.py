"""Writes fixtures/not-gpt2.onnx: a valid ONNX graph that is not a GPT-2 decoder (one Add node over
float inputs `x` and `y`), so tests can check the loader names the unexpected tensor."""
import os

import onnx
from onnx import TensorProto, helper

here = os.path.dirname(os.path.abspath(__file__))
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
out = helper.make_tensor_value_info("sum", TensorProto.FLOAT, [1, 4])
graph = helper.make_graph([helper.make_node("Add", ["x", "y"], ["sum"])], "not_gpt2", [x, y], [out])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 9
onnx.checker.check_model(model)
path = os.path.join(here, "fixtures", "not-gpt2.onnx")
onnx.save(model, path)
print(f"wrote {path}")
