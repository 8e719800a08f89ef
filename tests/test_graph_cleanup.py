"""Exact graph clean-ups of the CPU build: outputs bit-identical to onnxruntime on the original graph, the
redundant copies gone, and the patterns that must stay (the expanded tensor used otherwise) untouched."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from edge.runtime.graph_cleanup import clean, drop_redundant_expands


def _run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, feeds)


def _normalize_model(extra_use: bool = False, other: str = "x") -> onnx.ModelProto:
    """``x / clamp(||x||_2, eps).expand_as(x)`` as PyTorch exports ``F.normalize`` (+ a matmul)."""
    nodes = [helper.make_node("ReduceL2", ["x"], ["n"], axes=[1], keepdims=1),
             helper.make_node("Clip", ["n", "eps"], ["nc"]),
             helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Expand", ["nc", "s"], ["ne"]),
             helper.make_node("Div", [other, "ne"], ["y"]),
             helper.make_node("MatMul", ["y", "t"], ["score"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["R", 48]),
               helper.make_tensor_value_info("score", TensorProto.FLOAT, ["R", 1])]
    if extra_use:             # the expanded tensor is also an output: it must stay
        outputs.append(helper.make_tensor_value_info("ne", TensorProto.FLOAT, ["R", 48]))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["R", 48]),
              helper.make_tensor_value_info("z", TensorProto.FLOAT, ["R", 48]),
              helper.make_tensor_value_info("t", TensorProto.FLOAT, [48, 1])]
    inits = [helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-12])]
    g = helper.make_graph(nodes, "normalize", inputs, outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def test_expand_before_a_broadcasting_op_is_dropped_with_identical_outputs(rng):
    model = _normalize_model()
    feeds = {"x": rng.standard_normal((37, 48)).astype(np.float32),
             "z": rng.standard_normal((37, 48)).astype(np.float32),
             "t": rng.standard_normal((48, 1)).astype(np.float32)}
    feeds["x"][3] = 0.0                     # a zero row: the clamp decides
    cleaned, changes = clean(model)
    assert changes == {"redundant_expand": 1}
    assert not {"Expand", "Shape"} & {n.op_type for n in cleaned.graph.node}
    onnx.checker.check_model(cleaned)
    for a, b in zip(_run(model, feeds), _run(cleaned, feeds)):
        np.testing.assert_array_equal(a, b)


def test_expand_kept_when_used_otherwise_or_against_another_tensor():
    kept, n = drop_redundant_expands(_normalize_model(extra_use=True))
    assert n == 0 and "Expand" in {x.op_type for x in kept.graph.node}
    kept, n = drop_redundant_expands(_normalize_model(other="z"))   # Div(z, expand_as(x)): shape from x
    assert n == 0 and "Expand" in {x.op_type for x in kept.graph.node}
