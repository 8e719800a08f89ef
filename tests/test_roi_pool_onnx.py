"""RoiPool ONNX face: export -> one edge.ops node + local function; checker (fresh process); onnxruntime
vs the PyTorch reference and vs ORT's own MaxRoiPool node, on named edge cases; dynamic R and batch; bad input.

onnx.reference.ReferenceEvaluator has no MaxRoiPool implementation, so it is not an oracle here
(test_convlstm_onnx.py uses it for the cell).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from edge.kernels.onnx_functions import EDGE_DOMAIN, attach_functions, strip_functions
from edge.ops import export_onnx
from edge.kernels.roi_pool.reference import roi_pool_math
from edge.kernels.roi_pool.torch_op import RoiPool, roi_pool
from fixtures.roi_pool_cases import KINDS, make_features, make_rois, ort_max_roi_pool, session

DYN = {"x": {0: "N", 1: "C", 2: "H", 3: "W"}, "rois": {0: "R"}, "y": {0: "R", 1: "C"}}
_SESSIONS: dict = {}


def _exported(pooled_shape, scale, tmp_path=None):
    """ONNX Runtime session of an exported RoiPool module (cached per attributes)."""
    key = (tuple(pooled_shape), scale)
    if key not in _SESSIONS:
        x = torch.randn(2, 3, 9, 11)
        rois = torch.tensor([[0, 0.0, 0.0, 8.0, 8.0], [1, 4.0, 2.0, 30.0, 20.0]])
        model = export_onnx(RoiPool(pooled_shape, scale), (x, rois), None, ["x", "rois"], ["y"], DYN)
        _SESSIONS[key] = (model, session(model.SerializeToString()))
    return _SESSIONS[key]


def _reference(x, rois, pooled_shape, scale):
    return roi_pool_math(torch.from_numpy(x), torch.from_numpy(rois), pooled_shape, scale).numpy()


def test_export_is_one_custom_node_with_function():
    model, _ = _exported((7, 7), 0.25)
    assert [(n.domain, n.op_type) for n in model.graph.node] == [(EDGE_DOMAIN, "RoiPool")]
    attrs = {a.name: helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
    assert list(attrs["pooled_shape"]) == [7, 7] and attrs["spatial_scale"] == pytest.approx(0.25)
    (fn,) = model.functions
    assert (fn.domain, fn.name) == (EDGE_DOMAIN, "RoiPool")
    assert [n.op_type for n in fn.node] == ["MaxRoiPool"]
    assert {a.ref_attr_name for a in fn.node[0].attribute} == {"pooled_shape", "spatial_scale"}
    assert any(i.domain == EDGE_DOMAIN for i in model.opset_import)
    out = model.graph.output[0].type.tensor_type.shape.dim
    assert [out[0].dim_param, out[1].dim_param] == ["R", "C"] and [d.dim_value for d in out[2:]] == [7, 7]


def test_checker_full_in_fresh_process(tmp_path):
    """Exported model (with its function) passes check_model(full_check=True) in a new interpreter."""
    path = tmp_path / "roi.onnx"
    x, rois = torch.randn(1, 3, 15, 13), torch.tensor([[0, 1.0, 2.0, 20.0, 24.0]])

    class Net(torch.nn.Module):   # a conv in front so the node reads a computed map
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
            self.pool = RoiPool((4, 3), 0.5)

        def forward(self, x, rois):
            return self.pool(torch.relu(self.conv(x)), rois).flatten(1)

    export_onnx(Net(), (x, rois), path, ["x", "rois"], ["y"], DYN)
    code = ("import sys, onnx; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); "
            "assert len(m.functions) == 1; print('ok')")
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


@pytest.mark.parametrize("scale", [0.25, 0.0625, 1.0])
@pytest.mark.parametrize("pooled_shape", [(7, 7), (4, 4), (2, 3)])
def test_onnxruntime_matches_reference_and_max_roi_pool(rng, scale, pooled_shape):
    _, sess = _exported(pooled_shape, scale)
    n, c, h, w = 3, 5, int(rng.integers(5, 14)) | 1, int(rng.integers(5, 14)) | 1   # odd sizes
    x = make_features(rng, n, c, h, w)
    rois = make_rois(rng, n, h, w, scale, 4 * len(KINDS))
    got = sess.run(None, {"x": x, "rois": rois})[0]
    assert got.shape == (len(rois), c, *pooled_shape)
    np.testing.assert_array_equal(got, _reference(x, rois, pooled_shape, scale))
    np.testing.assert_array_equal(got, ort_max_roi_pool(x, rois, pooled_shape, scale))


@pytest.mark.parametrize("count", [1, 512])
def test_dynamic_rois_and_batch(rng, count):
    _, sess = _exported((7, 7), 0.0625)
    for n in (1, 4):
        x = make_features(rng, n, 3, 9, 11)
        rois = make_rois(rng, n, 9, 11, 0.0625, count)
        got = sess.run(None, {"x": x, "rois": rois})[0]
        assert got.shape == (count, 3, 7, 7)
        np.testing.assert_array_equal(got, _reference(x, rois, (7, 7), 0.0625))


def test_round_half_away_one_ulp_below_half():
    """Corners one float32 ulp below k + .5 round down (C round), as ONNX Runtime does."""
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    below = float(np.nextafter(np.float32(0.5), np.float32(0)))
    rois = np.array([[0, below, 0, 3, 3], [0, 2.5, 1.5, -0.5, 2.5]], np.float32)
    expect_first = np.array([12, 13, 14, 15], np.float32)       # x1 -> 0: columns 0..3, max over rows
    oracle = ort_max_roi_pool(x, rois, (1, 4), 1.0)
    np.testing.assert_array_equal(oracle[0, 0, 0], expect_first)
    np.testing.assert_array_equal(_reference(x, rois, (1, 4), 1.0), oracle)
    np.testing.assert_array_equal(_exported((1, 4), 1.0)[1].run(None, {"x": np.tile(x, (1, 3, 1, 1)),
                                                                       "rois": rois})[0][:, :1], oracle)


def test_strip_then_attach(rng):
    model, _ = _exported((4, 4), 0.25)
    stripped = strip_functions(onnx.ModelProto.FromString(model.SerializeToString()), ["RoiPool"])
    assert len(stripped.functions) == 0 and stripped.graph.node[0].op_type == "RoiPool"
    with pytest.raises(Exception):          # ORT refuses a custom-domain node without its function
        session(stripped.SerializeToString())
    again = attach_functions(stripped)
    x = make_features(rng, 2, 3, 9, 11)
    rois = make_rois(rng, 2, 9, 11, 0.25, 20)
    got = session(again.SerializeToString()).run(None, {"x": x, "rois": rois})[0]
    np.testing.assert_array_equal(got, ort_max_roi_pool(x, rois, (4, 4), 0.25))


class _Fn(torch.nn.Module):
    def __init__(self, pooled_shape, scale=0.25):
        super().__init__()
        self.pooled_shape, self.scale = pooled_shape, scale

    def forward(self, x, rois):
        return roi_pool(x, rois, self.pooled_shape, self.scale)


@pytest.mark.parametrize("case, match", [
    (dict(pooled_shape=(0, 7)), "pooled_shape"),
    (dict(pooled_shape=(7,)), "pooled_shape"),
    (dict(x=torch.randn(3, 9, 9)), "rank"),
    (dict(rois=torch.zeros(2, 4)), r"\[R, 5\]"),
    (dict(rois=torch.zeros(2, 5, dtype=torch.int64)), "floating"),
    (dict(rois=torch.tensor([[-1.0, 0, 0, 4, 4]])), "batch index"),
    (dict(rois=torch.tensor([[2.0, 0, 0, 4, 4]])), "batch index"),
    (dict(scale=0.0), "spatial_scale"),
])
def test_bad_input_fails_at_export_with_one_line(case, match, tmp_path):
    x = case.get("x", torch.randn(2, 3, 9, 9))
    rois = case.get("rois", torch.tensor([[0, 0.0, 0, 8, 8]]))
    path = tmp_path / "bad.onnx"
    with pytest.raises(ValueError, match=match) as err:
        export_onnx(_Fn(case.get("pooled_shape", (2, 2)), case.get("scale", 0.25)), (x, rois), path,
                    ["x", "rois"], ["y"], DYN)
    assert "\n" not in str(err.value)
    assert not path.exists() and not list(tmp_path.iterdir())   # nothing half-written
    with pytest.raises(ValueError, match=match):                # and the same in eager mode
        _Fn(case.get("pooled_shape", (2, 2)), case.get("scale", 0.25))(x, rois)


def _hand_model(attrs: dict) -> onnx.ModelProto:
    node = helper.make_node("RoiPool", ["X", "rois"], ["Y"], domain=EDGE_DOMAIN, name="pool", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2, 5, 5]),
                                            helper.make_tensor_value_info("rois", TensorProto.FLOAT, ["R", 5])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


@pytest.mark.parametrize("attrs, match", [
    (dict(pooled_shape=[0, 2], spatial_scale=1.0), "pooled_shape"),
    (dict(pooled_shape=[2, 2, 2], spatial_scale=1.0), "pooled_shape"),
    (dict(pooled_shape=[2, 2]), "spatial_scale"),
    (dict(pooled_shape=[2, 2], spatial_scale=-1.0), "spatial_scale"),
])
def test_attach_rejects_bad_nodes(attrs, match):
    with pytest.raises(ValueError, match=match):
        attach_functions(_hand_model(attrs))


def test_hand_built_node_runs_and_bad_batch_index_is_an_error_not_a_crash(rng):
    model = attach_functions(_hand_model(dict(pooled_shape=[3, 2], spatial_scale=1.0)))
    sess = session(model.SerializeToString())
    x = make_features(rng, 1, 2, 5, 5)
    rois = make_rois(rng, 1, 5, 5, 1.0, 12)
    np.testing.assert_array_equal(sess.run(None, {"X": x, "rois": rois})[0], _reference(x, rois, (3, 2), 1.0))
    with pytest.raises(Exception, match="roi_batch_id"):
        sess.run(None, {"X": x, "rois": np.array([[-1, 0, 0, 2, 2]], np.float32)})
