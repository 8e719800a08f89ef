"""The CUDA ROI pooling body (kernels/roi_pool/roi_pool.cuh) built with g++, run over an emulated grid.

The harness walks blocks x threads x grid-stride exactly like ``roi_pool_kernel`` in roi_pool.cu (same
``grid_blocks``/``kBlockSize``) and calls the same ``__host__ __device__`` body; every element is compared
with the PyTorch reference (and, for fp32, with onnxruntime's own MaxRoiPool). The cases live in
edge.kernels.cases (bench/gpu_kernels.py runs the same ones on a GPU).
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

from edge.kernels import build_tools
from edge.kernels.cases import HUGE_EXPECTED_MAX_BIN, HUGE_POOLED, ROI_CASES, huge_rois, make_rois
from edge.kernels.roi_pool.reference import roi_pool_math

HARNESS = r"""
#include "roi_pool/roi_pool.cuh"
using namespace edge;
using namespace edge::roi_pool;

template <class T, class TR>
static long long run(const void* x, const void* rois, void* out, int n, int c, int h, int w, int r, int ph, int pw,
                     float scale) {
    const RoiPoolShape s{n, c, h, w, r, ph, pw, scale};
    const index_t total = output_size(s);
    if (total <= 0) return 0;
    const index_t blocks = grid_blocks(total), stride = blocks * kBlockSize;
    long long calls = 0;
    for (index_t b = 0; b < blocks; ++b)                 // blockIdx.x
        for (int t = 0; t < kBlockSize; ++t)             // threadIdx.x
            for (index_t i = b * kBlockSize + t; i < total; i += stride, ++calls)
                roi_pool_element<T, TR>(i, static_cast<const T*>(x), static_cast<const TR*>(rois),
                                        static_cast<T*>(out), s);
    return calls;
}

extern "C" {
long long roi_pool_f32(const void* x, const void* rois, void* out, int n, int c, int h, int w, int r, int ph,
                       int pw, float scale) { return run<float, float>(x, rois, out, n, c, h, w, r, ph, pw, scale); }
long long roi_pool_f16(const void* x, const void* rois, void* out, int n, int c, int h, int w, int r, int ph,
                       int pw, float scale) {
    return run<host_half, float>(x, rois, out, n, c, h, w, r, ph, pw, scale); }
void to_half(const float* src, unsigned short* dst, long long count) {
    for (long long i = 0; i < count; ++i) dst[i] = float_to_half_bits(src[i]); }
void from_half(const unsigned short* src, float* dst, long long count) {
    for (long long i = 0; i < count; ++i) dst[i] = half_bits_to_float(src[i]); }
}
"""


@pytest.fixture(scope="session")
def lib(tmp_path_factory):
    if build_tools.find_cxx() is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("roi_pool_host")
    src = d / "harness.cpp"
    src.write_text(HARNESS)
    so = ctypes.CDLL(str(build_tools.build_host_library([src], d, "roi_pool_harness")))
    for name in ("roi_pool_f32", "roi_pool_f16"):
        fn = getattr(so, name)
        fn.restype = ctypes.c_longlong
        fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 7 + [ctypes.c_float]
    for name in ("to_half", "from_half"):
        getattr(so, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong]
    return so


def run_kernel(lib, x: np.ndarray, rois: np.ndarray, pooled, scale: float) -> np.ndarray:
    n, c, h, w = x.shape
    r = rois.shape[0]
    ph, pw = pooled
    assert rois.dtype == np.float32, "rois are always float32 (the plugin accepts nothing else)"
    fn = {np.float32: lib.roi_pool_f32, np.float16: lib.roi_pool_f16}[x.dtype.type]
    x = np.ascontiguousarray(x)
    rois = np.ascontiguousarray(rois)
    out = np.full((r, c, ph, pw), np.nan, dtype=x.dtype)       # sentinel: every element must be written
    calls = fn(x.ctypes.data, rois.ctypes.data, out.ctypes.data, n, c, h, w, r, ph, pw, scale)
    assert calls == out.size, "the emulated grid must visit every output element exactly once"
    return out


def reference(x: np.ndarray, rois: np.ndarray, pooled, scale: float) -> np.ndarray:
    out = roi_pool_math(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(rois.astype(np.float32)),
                        pooled, scale)
    return out.numpy()


@pytest.mark.parametrize("case", ROI_CASES, ids=[c.name for c in ROI_CASES])
def test_fp32_matches_reference_exactly(lib, rng, case):
    x = rng.standard_normal(case.shape).astype(np.float32)
    n, _, h, w = case.shape
    rois = make_rois(rng, case.rois, n, h, w, case.spatial_scale)
    got = run_kernel(lib, x, rois, case.pooled, case.spatial_scale)
    np.testing.assert_array_equal(got, reference(x, rois, case.pooled, case.spatial_scale))


def test_boxes_clamped_at_both_ends_do_not_overflow(lib, rng):
    """Corners far beyond int range clamp to +-2^30; the roi size 2^31 + 1 must not wrap (it did: all zeros)."""
    x = rng.standard_normal((2, 3, 9, 13)).astype(np.float32)
    rois = huge_rois(2)
    got = run_kernel(lib, x, rois, HUGE_POOLED, 1.0)
    np.testing.assert_array_equal(got, reference(x, rois, HUGE_POOLED, 1.0))
    for i, (b, *_) in enumerate(rois):
        want = np.zeros((3, 4), np.float32)
        want[:, HUGE_EXPECTED_MAX_BIN[i % len(HUGE_EXPECTED_MAX_BIN)]] = x[int(b)].max(axis=(1, 2))
        np.testing.assert_array_equal(got[i].reshape(3, 4), want)


def test_fp32_matches_onnxruntime_maxroipool(lib, rng):
    """A second, independent oracle: onnxruntime's own MaxRoiPool kernel."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    n, c, h, w, r, pooled, scale = 2, 3, 12, 15, 256, (3, 5), 0.5
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    rois = make_rois(rng, r, n, h, w, scale)
    node = helper.make_node("MaxRoiPool", ["x", "rois"], ["y"], pooled_shape=list(pooled), spatial_scale=scale)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
                                            helper.make_tensor_value_info("rois", TensorProto.FLOAT, rois.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, (r, c, *pooled))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = sess.run(None, {"x": x, "rois": rois})
    np.testing.assert_array_equal(run_kernel(lib, x, rois, pooled, scale), want)


def test_fp16_matches_reference(lib, rng):
    """Half features, float32 rois: the max of halves is exact, so the result equals the reference on the same
    half inputs."""
    n, c, h, w, r, pooled, scale = 3, 4, 13, 9, 512, (7, 7), 0.25
    x = (rng.standard_normal((n, c, h, w)) * 100).astype(np.float16)
    rois = make_rois(rng, r, n, h, w, scale)
    got = run_kernel(lib, x, rois, pooled, scale)
    want = reference(x, rois, pooled, scale).astype(np.float16)
    np.testing.assert_array_equal(got, want)


def test_hand_computed_case(lib):
    """4x4 map of 0..15; roi (0, 0)-(3, 3) pooled 2x2 -> the max of each quadrant; one roi outside -> 0."""
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    rois = np.array([[0, 0, 0, 3, 3], [0, 10, 10, 20, 20], [0, 1.4, 0.5, 1.4, 0.5]], np.float32)
    got = run_kernel(lib, x, rois, (2, 2), 1.0)
    np.testing.assert_array_equal(got[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(got[1, 0], np.zeros((2, 2)))
    # x = 1.4 -> 1, y = 0.5 -> 1 (half away from zero): a one-cell roi at (1, 1); bins [0,1) and [0,1) of
    # size 0.5 -> row bins [floor(0), ceil(0.5)) = [1, 2) and [floor(0.5), ceil(1)) = [1, 2)
    np.testing.assert_array_equal(got[2, 0], [[5, 5], [5, 5]])


def test_rounding_just_below_half(lib):
    """One float32 ulp below .5 rounds down (C round), although |v| + 0.5 in float32 would round up."""
    below = float(np.nextafter(np.float32(2.5), np.float32(0)))
    x = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)
    rois = np.array([[0, below, below, below, below], [0, -below, 0, below, 0]], np.float32)
    got = run_kernel(lib, x, rois, (1, 1), 1.0)
    np.testing.assert_array_equal(got.ravel(), [x[0, 0, 2, 2], x[0, 0, 0, 2]])
    np.testing.assert_array_equal(got, reference(x, rois, (1, 1), 1.0))


def test_invalid_batch_index_gives_zeros_not_a_fault(lib):
    x = np.ones((2, 1, 3, 3), np.float32)
    rois = np.array([[-1, 0, 0, 2, 2], [2, 0, 0, 2, 2], [np.nan, 0, 0, 2, 2], [1, 0, 0, 2, 2]], np.float32)
    got = run_kernel(lib, x, rois, (1, 1), 1.0)
    np.testing.assert_array_equal(got.ravel(), [0, 0, 0, 1])


def test_half_conversion_helpers_match_numpy(lib, rng):
    """The host half type behind the fp16 tests converts exactly like IEEE binary16 (numpy)."""
    bits = np.arange(65536, dtype=np.uint16)
    as_float = np.empty(65536, np.float32)
    lib.from_half(bits.ctypes.data, as_float.ctypes.data, bits.size)
    want = bits.view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(as_float), nan)
    np.testing.assert_array_equal(as_float[~nan], want[~nan])

    finite = bits.view(np.float16)[~nan].astype(np.float32)
    mids = ((finite[:-1].astype(np.float64) + finite[1:]) / 2).astype(np.float32)   # exact ties
    samples = np.concatenate([
        finite, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf)),
        rng.standard_normal(20000).astype(np.float32) * np.float32(10.0) ** rng.integers(-9, 6, 20000),
        np.array([65504, 65519.99, 65520, 1e9, -1e9, np.inf, -np.inf, 5.96e-8, 2.98e-8, 1e-10], np.float32)])
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    got = np.empty(samples.size, np.uint16)
    lib.to_half(samples.ctypes.data, got.ctypes.data, samples.size)
    with np.errstate(over="ignore"):
        want_bits = samples.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(got, want_bits)
