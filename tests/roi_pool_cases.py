"""Named RoiPool edge cases and the independent oracle (ONNX Runtime's own one-node MaxRoiPool).

Shared by tests/test_roi_pool_onnx.py and tests/test_roi_pool_cpu.py (owner: H2).
"""
from __future__ import annotations

import functools

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

KINDS = ("inside", "partly_outside", "wholly_outside", "zero_area", "one_pixel", "half", "below_half",
         "inverted", "fractional", "whole_map")


def make_rois(rng: np.random.Generator, batch: int, height: int, width: int, scale: float, count: int,
              kinds=KINDS) -> np.ndarray:
    """``count`` float32 rois [R, 5] cycling through the named kinds; image coordinates = map / scale.

    ``half``: every corner lands exactly on k + .5 after scaling (negative ones too);
    ``below_half``: one float32 ulp below k + .5 after scaling (scales are powers of two, so exact).
    """
    wi, hi = width / scale, height / scale
    out = np.zeros((count, 5), np.float64)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        b = rng.integers(0, batch)
        if kind == "inside":
            x1, y1 = rng.uniform(0, 0.7 * (wi - 1)), rng.uniform(0, 0.7 * (hi - 1))
            x2, y2 = rng.uniform(x1, wi - 1), rng.uniform(y1, hi - 1)
        elif kind == "partly_outside":
            x1, y1 = rng.uniform(-0.6 * wi, 0.9 * wi), rng.uniform(-0.6 * hi, 0.9 * hi)
            x2, y2 = x1 + rng.uniform(0.3, 1.2) * wi, y1 + rng.uniform(0.3, 1.2) * hi
        elif kind == "wholly_outside":
            if rng.random() < 0.5:   # beyond the right/bottom edge
                x1, y1 = wi + (2 + rng.uniform(0, 0.5 * wi)) / scale, rng.uniform(0, hi)
            else:                    # left of / above the map
                x1, y1 = -rng.uniform(0.3, 1.0) * wi - 4 / scale, -rng.uniform(0.3, 1.0) * hi - 4 / scale
            x2, y2 = x1 + rng.uniform(0, 0.2) * wi, y1 + rng.uniform(0, 0.2) * hi
        elif kind == "zero_area":
            x1, y1 = rng.uniform(-2, wi + 2), rng.uniform(-2, hi + 2)
            x2, y2 = (x1, y1) if rng.random() < 0.5 else (x1, y1 + rng.uniform(0, 0.5 * hi))
        elif kind == "one_pixel":
            x1, y1 = rng.integers(0, width) / scale, rng.integers(0, height) / scale
            x2, y2 = x1 + 1 / scale, y1
        elif kind in ("half", "below_half"):
            k = rng.integers(-3, max(width, height) + 3, 4) + 0.5
            if kind == "below_half":
                k = np.nextafter(k.astype(np.float32), np.float32(0)).astype(np.float64)
            x1, y1, x2, y2 = k[0] / scale, k[1] / scale, max(k[0], k[2]) / scale, max(k[1], k[3]) / scale
        elif kind == "inverted":
            x2, y2 = rng.uniform(0, wi), rng.uniform(0, hi)
            x1, y1 = x2 + rng.uniform(1, 0.5 * wi), y2 + rng.uniform(1, 0.5 * hi)
        elif kind == "fractional":
            x1, x2 = np.sort(rng.uniform(-0.1 * wi, 1.1 * wi, 2))
            y1, y2 = np.sort(rng.uniform(-0.1 * hi, 1.1 * hi, 2))
        elif kind == "whole_map":
            x1, y1, x2, y2 = 0.0, 0.0, wi - 1, hi - 1
        else:
            raise KeyError(kind)
        out[i] = (b, x1, y1, x2, y2)
    return out.astype(np.float32)


def make_features(rng: np.random.Generator, batch: int, channels: int, height: int, width: int) -> np.ndarray:
    """Signed random maps (negative maxima catch a wrong initial value of the max)."""
    return rng.standard_normal((batch, channels, height, width)).astype(np.float32)


def _session(model_bytes: bytes) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=None)
def _max_roi_pool_session(pooled_shape: tuple[int, int], spatial_scale: float) -> ort.InferenceSession:
    node = helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"], pooled_shape=list(pooled_shape),
                            spatial_scale=float(spatial_scale))
    graph = helper.make_graph([node], "max_roi_pool",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", "C", "H", "W"]),
                               helper.make_tensor_value_info("rois", TensorProto.FLOAT, ["R", 5])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    return _session(model.SerializeToString())


def ort_max_roi_pool(x: np.ndarray, rois: np.ndarray, pooled_shape, spatial_scale: float) -> np.ndarray:
    """ONNX Runtime's own MaxRoiPool in a one-node model: the independent oracle."""
    sess = _max_roi_pool_session(tuple(int(v) for v in pooled_shape), float(spatial_scale))
    return sess.run(None, {"X": x, "rois": rois})[0]


def session(model_bytes: bytes) -> ort.InferenceSession:
    return _session(model_bytes)
