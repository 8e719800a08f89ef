"""RoiPool CPU face (numba, torch-free): exact equality with the PyTorch reference and with ONNX Runtime's
own MaxRoiPool on the named edge cases; fp16 input; bad input; the eager torch op that runs it (+ backward)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from edge.kernels.roi_pool import cpu
from edge.kernels.roi_pool.reference import roi_pool_math
from edge.kernels.roi_pool.torch_op import roi_pool as torch_roi_pool
from fixtures.roi_pool_cases import KINDS, make_features, make_rois, ort_max_roi_pool


def _reference(x, rois, pooled_shape, scale):
    return roi_pool_math(torch.from_numpy(x), torch.from_numpy(rois), pooled_shape, scale).numpy()


@pytest.mark.parametrize("scale", [0.25, 0.0625, 1.0])
@pytest.mark.parametrize("pooled_shape", [(7, 7), (4, 4), (3, 2)])
def test_matches_reference_and_max_roi_pool_exactly(rng, scale, pooled_shape):
    n, c = int(rng.integers(1, 4)), int(rng.integers(1, 9))
    h, w = int(rng.integers(3, 16)) | 1, int(rng.integers(3, 16)) | 1
    x = make_features(rng, n, c, h, w)
    rois = make_rois(rng, n, h, w, scale, 3 * len(KINDS))
    got = cpu.roi_pool(x, rois, pooled_shape, scale)
    assert got.dtype == np.float32 and got.shape == (len(rois), c, *pooled_shape)
    np.testing.assert_array_equal(got, _reference(x, rois, pooled_shape, scale))
    np.testing.assert_array_equal(got, ort_max_roi_pool(x, rois, pooled_shape, scale))


@pytest.mark.parametrize("count", [1, 512])
def test_tracker_like_sizes(rng, count):
    """Channels > SIMD width, several images, R = 1 and 512, the map of a 192 px crop at stride 8."""
    x = make_features(rng, 2, 40, 24, 24)
    rois = make_rois(rng, 2, 24, 24, 0.125, count)
    got = cpu.roi_pool(x, rois, (4, 4), 0.125)
    np.testing.assert_array_equal(got, ort_max_roi_pool(x, rois, (4, 4), 0.125))
    np.testing.assert_array_equal(got, _reference(x, rois, (4, 4), 0.125))
    for parallel in (False, True):
        np.testing.assert_array_equal(cpu.roi_pool(x, rois, (4, 4), 0.125, parallel=parallel), got)


def test_rois_sharing_rounded_corners(rng):
    """Many rois round to the same bins (a tracker's candidates around one box): each one equals
    MaxRoiPool's, including copies in another image of the batch and near-copies that round apart."""
    x = make_features(rng, 2, 24, 10, 10)
    base = rng.uniform(8, 60, (6, 4)).astype(np.float32)
    base[:, 2:] += base[:, :2] + 16                       # x2 > x1, y2 > y1 in image pixels
    jitter = rng.uniform(-6, 6, (40, 6, 4)).astype(np.float32)   # +-6 px at scale 1/16: mostly the same bins
    boxes = (base[None] + jitter).reshape(-1, 4)
    batch = rng.integers(0, 2, (len(boxes), 1)).astype(np.float32)
    rois = np.concatenate([batch, boxes], 1)
    rois = np.concatenate([rois, rois[:5] * np.float32([0, 1, 1, 1, 1]) + np.float32([1, 0, 0, 0, 0])])  # image 1
    corners = np.floor(np.abs(rois[:, 1:] / 16) + 0.5)
    assert len(np.unique(np.concatenate([rois[:, :1], corners], 1), axis=0)) < len(rois) // 2
    got = cpu.roi_pool(x, rois, (4, 4), 1 / 16)
    np.testing.assert_array_equal(got, ort_max_roi_pool(x, rois, (4, 4), 1 / 16))
    for parallel in (False, True):
        np.testing.assert_array_equal(cpu.roi_pool(x, rois, (4, 4), 1 / 16, parallel=parallel), got)


def test_argmax_points_at_the_maximum(rng):
    x = make_features(rng, 2, 5, 9, 7)
    rois = make_rois(rng, 2, 9, 7, 0.5, 40)
    y, arg = cpu.roi_pool_with_argmax(x, rois, (3, 3), 0.5)
    np.testing.assert_array_equal(y, cpu.roi_pool(x, rois, (3, 3), 0.5))
    b = rois[:, 0].astype(np.int64)[:, None, None, None]
    ch = np.arange(5)[None, :, None, None]
    flat = x.reshape(2, 5, -1)
    empty = arg < 0
    np.testing.assert_array_equal(y[empty], 0)
    np.testing.assert_array_equal(flat[b, ch, np.where(empty, 0, arg)][~empty], y[~empty])


def test_float16_input_is_upcast(rng):
    x = make_features(rng, 2, 6, 11, 9).astype(np.float16)
    rois = make_rois(rng, 2, 11, 9, 0.25, 30)
    got = cpu.roi_pool(x, rois, (2, 2), 0.25)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, ort_max_roi_pool(x.astype(np.float32), rois, (2, 2), 0.25))


def test_no_rois_and_float64_rois(rng):
    x = make_features(rng, 1, 3, 5, 5)
    assert cpu.roi_pool(x, np.zeros((0, 5), np.float32), (2, 2), 1.0).shape == (0, 3, 2, 2)
    rois = make_rois(rng, 1, 5, 5, 1.0, 10)
    np.testing.assert_array_equal(cpu.roi_pool(x, rois.astype(np.float64), (2, 2), 1.0),
                                  cpu.roi_pool(x, rois, (2, 2), 1.0))


@pytest.mark.parametrize("x_shape, rois, pooled, scale, match", [
    ((1, 2, 5), [[0, 0, 0, 2, 2]], (2, 2), 1.0, "rank"),
    ((1, 2, 5, 5), [[0, 0, 0, 2]], (2, 2), 1.0, r"\[R, 5\]"),
    ((1, 2, 5, 5), [[0, 0, 0, 2, 2]], (0, 2), 1.0, "positive"),
    ((1, 2, 5, 5), [[0, 0, 0, 2, 2]], (2,), 1.0, "two integers"),
    ((1, 2, 5, 5), [[0, 0, 0, 2, 2]], (2, 2), 0.0, "spatial_scale"),
    ((1, 2, 5, 5), [[-1, 0, 0, 2, 2]], (2, 2), 1.0, "batch index"),
    ((1, 2, 5, 5), [[1, 0, 0, 2, 2]], (2, 2), 1.0, "batch index"),
    ((1, 2, 5, 5), [[0, np.nan, 0, 2, 2]], (2, 2), 1.0, "NaN"),
])
def test_bad_input_is_a_one_line_value_error(x_shape, rois, pooled, scale, match):
    with pytest.raises(ValueError, match=match) as err:
        cpu.roi_pool(np.zeros(x_shape, np.float32), np.array(rois, np.float32), pooled, scale)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match="float32"):
        cpu.roi_pool(np.zeros((1, 2, 5, 5), dtype), np.zeros((1, 5), np.float32), (2, 2), 1.0)


def test_module_is_torch_free():
    code = ("import sys, numpy as np; import edge.kernels.roi_pool.cpu as c; "
            "c.roi_pool(np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 5), np.float32), (1, 1), 1.0); "
            "assert 'torch' not in sys.modules; print(c.should_use_numba(32, 24, 24, (4, 4)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() in ("True", "False"), res.stderr[-2000:]


def test_decision_record_is_consistent():
    for (c, h, w, ph, pw), speedup in cpu.MEASURED_SPEEDUP.items():
        assert cpu.should_use_numba(c, h, w, (ph, pw)) == (speedup >= cpu.MIN_SPEEDUP)


def test_eager_torch_op_forward_and_backward_match_reference(rng):
    """The eager CPU path (numba) equals the reference forward and its gradient (distinct random values)."""
    x = make_features(rng, 2, 6, 13, 11)
    rois = make_rois(rng, 2, 13, 11, 0.25, 60)
    xa = torch.from_numpy(x).requires_grad_()
    xb = torch.from_numpy(x.copy()).requires_grad_()
    ya = torch_roi_pool(xa, torch.from_numpy(rois), (3, 4), 0.25)
    yb = roi_pool_math(xb, torch.from_numpy(rois), (3, 4), 0.25)
    assert torch.equal(ya, yb)
    g = torch.from_numpy(rng.standard_normal(ya.shape).astype(np.float32))
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-5)
    with torch.no_grad():   # no-grad call takes the kernel without argmax
        assert torch.equal(torch_roi_pool(xa, torch.from_numpy(rois), (3, 4), 0.25), yb)
