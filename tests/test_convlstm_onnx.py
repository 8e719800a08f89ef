"""ConvLSTMCell ONNX face: export -> one edge.ops node + local function; checker (fresh process);
onnxruntime and onnx.reference.ReferenceEvaluator vs the PyTorch reference; dynamic batch; bad input."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from edge.kernels.convlstm.reference import convlstm_cell_math
from edge.kernels.convlstm.torch_op import ConvLSTMCell, convlstm_cell
from edge.kernels.onnx_functions import EDGE_DOMAIN, attach_functions
from edge.ops import export_onnx
from fixtures.roi_pool_cases import session

NAMES = ["x", "h", "c"]
OUT = ["h_next", "c_next"]
DYN = {k: {0: "N"} for k in NAMES + OUT}


class Step(torch.nn.Module):
    def __init__(self, cx, ch, k):
        super().__init__()
        self.cell = ConvLSTMCell(cx, ch, k)

    def forward(self, x, h, c):
        return self.cell(x, h, c)


def _randomise(cell: ConvLSTMCell, rng) -> None:
    with torch.no_grad():
        cell.weight.copy_(torch.from_numpy(rng.normal(0, 0.3, cell.weight.shape).astype(np.float32)))
        cell.bias.copy_(torch.from_numpy(rng.normal(0, 0.5, cell.bias.shape).astype(np.float32)))


def _inputs(rng, n, cx, ch, h, w):
    return [rng.standard_normal((n, k, h, w)).astype(np.float32) * s for k, s in ((cx, 1), (ch, 0.5), (ch, 1))]


def _reference(cell, feeds):
    with torch.no_grad():
        out = convlstm_cell_math(*(torch.from_numpy(a) for a in feeds), cell.weight, cell.bias)
    return [o.numpy() for o in out]


def test_export_is_one_custom_node_with_function():
    model = export_onnx(Step(4, 3, 3), tuple(torch.randn(1, k, 5, 5) for k in (4, 3, 3)), None, NAMES, OUT, DYN)
    (node,) = model.graph.node
    assert (node.domain, node.op_type) == (EDGE_DOMAIN, "ConvLSTMCell") and len(node.input) == 5
    assert list(node.output) == OUT
    (fn,) = model.functions
    assert (fn.domain, fn.name) == (EDGE_DOMAIN, "ConvLSTMCell")
    assert {n.op_type for n in fn.node} == {"Concat", "Conv", "Split", "Sigmoid", "Tanh", "Mul", "Add"}


def test_checker_full_in_fresh_process(tmp_path):
    class Net(torch.nn.Module):     # the classifier's step shape: conv features -> cell -> logits
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
            self.cell = ConvLSTMCell(6, 4, 3)
            self.fc = torch.nn.Linear(4, 5)

        def forward(self, x, h, c):
            h2, c2 = self.cell(torch.relu(self.conv(x)), h, c)
            return h2, c2, self.fc(c2.mean((2, 3)))

    path = tmp_path / "cell.onnx"
    args = (torch.randn(2, 3, 7, 9), torch.randn(2, 4, 7, 9), torch.randn(2, 4, 7, 9))
    export_onnx(Net(), args, path, NAMES, OUT + ["logits"], {**DYN, "logits": {0: "N"}})
    code = ("import sys, onnx; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); "
            "assert [f.name for f in m.functions] == ['ConvLSTMCell']; print('ok')")
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("n, size", [(1, (7, 7)), (3, (5, 9))])
def test_onnxruntime_and_reference_evaluator_match_reference(rng, k, n, size):
    cx, ch = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    step = Step(cx, ch, k)
    _randomise(step.cell, rng)
    model = export_onnx(step, tuple(torch.randn(1, c, 3, 5) for c in (cx, ch, ch)), None, NAMES, OUT,
                        {k_: {0: "N", 2: "H", 3: "W"} for k_ in NAMES + OUT})
    feeds = _inputs(rng, n, cx, ch, *size)
    want = _reference(step.cell, feeds)
    got_ort = session(model.SerializeToString()).run(None, dict(zip(NAMES, feeds)))
    got_ev = ReferenceEvaluator(model).run(None, dict(zip(NAMES, feeds)))
    for got in (got_ort, got_ev):
        for g, w in zip(got, want):
            assert g.shape == w.shape == (n, ch, *size)
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=2e-6)


def test_dynamic_batch_and_opset_18(rng):
    step = Step(3, 4, 3)
    _randomise(step.cell, rng)
    for opset in (17, 18):   # Split changed in 18 (num_outputs)
        model = export_onnx(step, tuple(torch.randn(2, c, 6, 5) for c in (3, 4, 4)), None, NAMES, OUT, DYN,
                            opset=opset)
        sess = session(model.SerializeToString())
        for n in (1, 5):
            feeds = _inputs(rng, n, 3, 4, 6, 5)
            for g, w in zip(sess.run(None, dict(zip(NAMES, feeds))), _reference(step.cell, feeds)):
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=2e-6)


def test_stays_differentiable(rng):
    """Eager calls train: gradients reach x, h, c, weight and bias and match finite differences."""
    x, h, c = (torch.from_numpy(a).double().requires_grad_() for a in _inputs(rng, 2, 2, 2, 4, 3))
    w = torch.from_numpy(rng.normal(0, 0.3, (8, 4, 3, 3))).requires_grad_()
    b = torch.from_numpy(rng.normal(0, 0.3, 8)).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: convlstm_cell(*a), (x, h, c, w, b), fast_mode=True)


class _Fn(torch.nn.Module):
    def __init__(self, weight, bias):
        super().__init__()
        self.weight, self.bias = torch.nn.Parameter(weight), torch.nn.Parameter(bias, requires_grad=False)

    def forward(self, x, h, c):
        return convlstm_cell(x, h, c, self.weight, self.bias)


@pytest.mark.parametrize("case, match", [
    (dict(bias=torch.zeros(7)), "bias must be"),
    (dict(bias=torch.zeros(4, 2)), "bias must be rank 1"),
    (dict(weight=torch.zeros(8, 5, 3, 3)), "weight must be"),          # Cx + Ch mismatch
    (dict(weight=torch.zeros(8, 4, 2, 2)), "odd k"),
    (dict(x=torch.zeros(1, 2, 5)), "rank 4"),
    (dict(h=torch.zeros(1, 3, 5, 5)), "h and c"),
    (dict(c=torch.zeros(1, 2, 4, 5)), "h and c"),
    (dict(x=torch.zeros(1, 2, 5, 5, dtype=torch.int32)), "floating point"),
])
def test_bad_input_fails_at_export_with_one_line(case, match, tmp_path):
    x = case.get("x", torch.zeros(1, 2, 5, 5))
    h = case.get("h", torch.zeros(1, 2, 5, 5))
    c = case.get("c", torch.zeros(1, 2, 5, 5))
    mod = _Fn(case.get("weight", torch.zeros(8, 4, 3, 3)), case.get("bias", torch.zeros(8)))
    path = tmp_path / "bad.onnx"
    with pytest.raises(ValueError, match=match) as err:
        export_onnx(mod, (x, h, c), path, NAMES, OUT, DYN)
    assert "\n" not in str(err.value) and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=match):
        mod(x, h, c)


def test_even_kernel_rejected_by_module():
    with pytest.raises(ValueError, match="odd"):
        ConvLSTMCell(3, 4, 4)


def _hand_model(w_shape, b_shape) -> onnx.ModelProto:
    node = helper.make_node("ConvLSTMCell", ["X", "H", "C", "W", "B"], OUT, domain=EDGE_DOMAIN, name="cell")
    inits = [numpy_helper.from_array(np.zeros(w_shape, np.float32), "W"),
             numpy_helper.from_array(np.zeros(b_shape, np.float32), "B")]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", ch, 5, 5])
          for n, ch in (("X", 3), ("H", 2), ("C", 2))]
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in OUT]
    graph = helper.make_graph([node], "g", vi, outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


@pytest.mark.parametrize("w_shape, b_shape, match", [
    ((8, 5, 3, 3), (7,), "B must be"),
    ((8, 5, 2, 2), (8,), "odd k"),
    ((8, 5, 3, 1), (8,), "odd k"),
    ((12, 6, 3, 3), (12,), "channels"),
    ((8, 6, 3, 3), (8,), "X channels"),
])
def test_attach_rejects_mismatched_weight_and_bias(w_shape, b_shape, match):
    with pytest.raises(ValueError, match=match):
        attach_functions(_hand_model(w_shape, b_shape))


def test_hand_built_node_runs(rng):
    model = attach_functions(_hand_model((8, 5, 3, 3), (8,)))
    w = rng.normal(0, 0.3, (8, 5, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.3, 8).astype(np.float32)
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "W"))
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(b, "B"))
    feeds = _inputs(rng, 2, 3, 2, 5, 5)
    got = session(model.SerializeToString()).run(None, dict(zip(["X", "H", "C"], feeds)))
    want = convlstm_cell_math(*(torch.from_numpy(a) for a in feeds), torch.from_numpy(w), torch.from_numpy(b))
    for g, t in zip(got, want):
        np.testing.assert_allclose(g, t.numpy(), rtol=1e-5, atol=2e-6)


def test_model_with_both_ops_gets_both_functions(rng):
    from edge.kernels.roi_pool.torch_op import RoiPool

    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = ConvLSTMCell(3, 2, 3)
            self.pool = RoiPool((2, 2), 0.5)

        def forward(self, x, h, c, rois):
            h2, c2 = self.cell(x, h, c)
            return self.pool(h2, rois), c2

    net = Both()
    _randomise(net.cell, rng)
    args = (torch.randn(2, 3, 6, 7), torch.randn(2, 2, 6, 7), torch.randn(2, 2, 6, 7),
            torch.tensor([[1, 0.0, 1, 9, 7]]))
    model = export_onnx(net, args, None, NAMES + ["rois"], ["y", "c_next"], {"rois": {0: "R"}, "y": {0: "R"}})
    assert sorted(f.name for f in model.functions) == ["ConvLSTMCell", "RoiPool"]
    assert sorted(n.op_type for n in model.graph.node) == ["ConvLSTMCell", "RoiPool"]
    feeds = _inputs(rng, 2, 3, 2, 6, 7) + [np.array([[0, 1, 2, 11, 9], [1, -3, 0, 4, 20]], np.float32)]
    got = session(model.SerializeToString()).run(None, dict(zip(NAMES + ["rois"], feeds)))
    with torch.no_grad():
        want = net(*(torch.from_numpy(a) for a in feeds))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=2e-6)
    for n in model.graph.node:   # TensorRT's plugin_namespace hint does not upset attach_functions
        n.attribute.append(helper.make_attribute("plugin_namespace", ""))
    attach_functions(model)
