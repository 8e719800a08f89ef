"""On a GPU: build libedge_plugins.so with CMake, build a one-node TensorRT engine per op through the ONNX
parser (edge.ops node, local function stripped, plugin preferred), run it with pycuda, compare with the
PyTorch reference through the production runtime (TrtEngine). Skipped without a GPU (conftest ``gpu`` marker:
needs the full tensorrt + pycuda).

On a Jetson (JetPack 6.x): ``pip install -e .[tensorrt,dev]`` then
``pytest tests/test_plugin_gpu.py -v`` (``CUDA_ARCHS`` overrides this GPU's architecture;
``TENSORRT_INCLUDE_DIR``/``TENSORRT_LIB_DIR`` when TensorRT is not under /usr).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from edge.kernels import build_tools

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="session")
def trt_env(tmp_path_factory):
    """(tensorrt module, logger) with libedge_plugins.so built for this device and loaded."""
    import tensorrt as trt

    from edge.runtime.trt_backend import gpu_device, load_plugin_library
    from test_trt_gpu import _lib_dir, _matching_headers
    arch = os.environ.get("CUDA_ARCHS") or gpu_device()["compute_capability"].replace(".", "")
    lib = build_tools.cmake_build_plugins(tmp_path_factory.mktemp("plugins"), cuda_archs=arch,
                                          tensorrt_include_dir=_matching_headers(trt), tensorrt_lib_dir=_lib_dir())
    load_plugin_library(lib)     # after import tensorrt, as the runtime does
    names = {c.name for c in trt.get_plugin_registry().all_creators}
    assert {"RoiPool", "ConvLSTMCell"} <= names
    return trt, trt.Logger(trt.Logger.WARNING)


def one_node_model(op: str, inputs: dict[str, np.ndarray], outputs: dict[str, tuple], attrs: dict,
                   initializers: dict[str, np.ndarray] = ()):
    """A model with one edge.ops node, its local function attached (as exported) and then stripped."""
    import onnx
    from onnx import helper, numpy_helper

    from edge.kernels.onnx_functions import attach_functions, strip_functions

    def vi(name, arr_dtype, shape):
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(arr_dtype)), shape)

    node = helper.make_node(op, [*inputs, *dict(initializers)], list(outputs), domain="edge.ops", **attrs)
    graph = helper.make_graph(
        [node], f"one_{op}", [vi(k, v.dtype, v.shape) for k, v in inputs.items()],
        [vi(k, dt, shape) for k, (dt, shape) in outputs.items()],
        initializer=[numpy_helper.from_array(v, k) for k, v in dict(initializers).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("edge.ops", 1)],
                              ir_version=10)
    attach_functions(model)
    onnx.checker.check_model(model)
    strip_functions(model, [op])
    assert not model.functions
    return model


def build_engine(trt, logger, model) -> bytes:
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):   # 10.x: opt in; 11.x: always
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if hasattr(trt, "OnnxParserFlag") and hasattr(trt.OnnxParserFlag, "ENABLE_PLUGIN_OVERRIDE"):
        parser.set_flag(trt.OnnxParserFlag.ENABLE_PLUGIN_OVERRIDE)
    if not parser.parse(model.SerializeToString()):
        raise AssertionError("; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
    layer_types = {network.get_layer(i).type for i in range(network.num_layers)}
    assert trt.LayerType.PLUGIN_V3 in layer_types, f"node not imported as a plugin: {layer_types}"
    config = builder.create_builder_config()
    blob = builder.build_serialized_network(network, config)
    assert blob is not None, "engine build failed"
    return bytes(blob)


def run_engine(trt, logger, blob: bytes, feeds: dict[str, np.ndarray], tmp_path) -> dict[str, np.ndarray]:
    """Run through the production runtime (edge.runtime.trt_backend.TrtEngine)."""
    from edge.runtime.trt_backend import TrtEngine
    path = tmp_path / "one.engine"
    path.write_bytes(blob)
    with TrtEngine("one", path, [], []) as engine:
        return engine.run(feeds)


def random_rois(rng, r, n, h, w, scale):
    ih, iw = h / scale, w / scale
    x1 = rng.uniform(-0.2 * iw, 1.1 * iw, r)
    y1 = rng.uniform(-0.2 * ih, 1.1 * ih, r)
    boxes = np.stack([x1, y1, x1 + rng.uniform(0, 0.7 * iw, r), y1 + rng.uniform(0, 0.7 * ih, r)], 1)
    boxes[: r // 4] = np.round(boxes[: r // 4] * 2 * scale) / (2 * scale)        # exact .5 values
    return np.concatenate([rng.integers(0, n, (r, 1)), boxes], 1).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_roi_pool_engine_matches_reference(trt_env, rng, dtype, tmp_path):
    import torch

    from edge.kernels.roi_pool.reference import roi_pool_math

    trt, logger = trt_env
    n, c, h, w, r, pooled, scale = 2, 16, 31, 29, 256, (7, 7), 0.25
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    rois = random_rois(rng, r, n, h, w, scale)                   # rois stay float32 (the plugin takes no other)
    model = one_node_model("RoiPool", {"x": x, "rois": rois}, {"y": (dtype, (r, c, *pooled))},
                           dict(pooled_shape=list(pooled), spatial_scale=scale))
    got = run_engine(trt, logger, build_engine(trt, logger, model), {"x": x, "rois": rois}, tmp_path)["y"]
    want = roi_pool_math(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(rois.astype(np.float32)), pooled,
                         scale).numpy()
    np.testing.assert_array_equal(got.astype(np.float32), want.astype(dtype).astype(np.float32))


@pytest.mark.parametrize("dtype,k", [(np.float32, 3), (np.float32, 1), (np.float16, 3), (np.float16, 5)])
def test_convlstm_engine_matches_reference(trt_env, rng, dtype, k, tmp_path):
    import torch

    from edge.kernels.convlstm.reference import convlstm_cell_math

    trt, logger = trt_env
    n, cx, ch, h, w = 2, 32, 16, 7, 9
    std = 1.0 / np.sqrt((cx + ch) * k * k)
    x = rng.standard_normal((n, cx, h, w)).astype(dtype)
    hid = rng.standard_normal((n, ch, h, w)).astype(dtype)
    cell = rng.standard_normal((n, ch, h, w)).astype(np.float32)       # the cell state is always float32
    weight = (rng.standard_normal((4 * ch, cx + ch, k, k)) * std).astype(dtype)
    bias = rng.standard_normal(4 * ch).astype(dtype)
    model = one_node_model("ConvLSTMCell", {"x": x, "h": hid, "c": cell},
                           {"h_next": (dtype, (n, ch, h, w)), "c_next": (np.float32, (n, ch, h, w))}, {},
                           initializers={"W": weight, "B": bias})
    out = run_engine(trt, logger, build_engine(trt, logger, model), {"x": x, "h": hid, "c": cell}, tmp_path)
    assert out["c_next"].dtype == np.float32
    h_ref, c_ref = convlstm_cell_math(*(torch.from_numpy(a.astype(np.float64)) for a in (x, hid, cell, weight, bias)))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(out["c_next"].astype(np.float64), c_ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["h_next"].astype(np.float64), h_ref.numpy(), **tol)
