"""The fused ConvLSTM CUDA body (kernels/convlstm/convlstm.cuh) built with g++, run over an emulated grid,
against the PyTorch reference."""
from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest
import torch

from edge.kernels import build_tools
from edge.kernels.convlstm.reference import convlstm_cell_math

HARNESS = r"""
#include "convlstm/convlstm.cuh"
using namespace edge;
using namespace edge::convlstm;

template <class T>
static long long run(const void* x, const void* h, const void* c, const void* wt, const void* b, void* h_out,
                     void* c_out, int n, int cx, int ch, int hh, int ww, int k) {
    const ConvLstmShape s{n, cx, ch, hh, ww, k};
    const index_t total = output_size(s);
    if (total <= 0) return 0;
    const index_t blocks = grid_blocks(total), stride = blocks * kBlockSize;
    long long calls = 0;
    for (index_t blk = 0; blk < blocks; ++blk)           // blockIdx.x
        for (int t = 0; t < kBlockSize; ++t)             // threadIdx.x
            for (index_t i = blk * kBlockSize + t; i < total; i += stride, ++calls)
                convlstm_element<T>(i, static_cast<const T*>(x), static_cast<const T*>(h),
                                    static_cast<const T*>(c), static_cast<const T*>(wt), static_cast<const T*>(b),
                                    static_cast<T*>(h_out), static_cast<T*>(c_out), s);
    return calls;
}

extern "C" {
long long convlstm_f32(const void* x, const void* h, const void* c, const void* w, const void* b, void* ho,
                       void* co, int n, int cx, int ch, int hh, int ww, int k) {
    return run<float>(x, h, c, w, b, ho, co, n, cx, ch, hh, ww, k); }
long long convlstm_f16(const void* x, const void* h, const void* c, const void* w, const void* b, void* ho,
                       void* co, int n, int cx, int ch, int hh, int ww, int k) {
    return run<host_half>(x, h, c, w, b, ho, co, n, cx, ch, hh, ww, k); }
}
"""


@pytest.fixture(scope="session")
def lib(tmp_path_factory):
    if build_tools.find_cxx() is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("convlstm_host")
    src = d / "harness.cpp"
    src.write_text(HARNESS)
    so = ctypes.CDLL(str(build_tools.build_host_library([src], d, "convlstm_harness")))
    for name in ("convlstm_f32", "convlstm_f16"):
        fn = getattr(so, name)
        fn.restype = ctypes.c_longlong
        fn.argtypes = [ctypes.c_void_p] * 7 + [ctypes.c_int] * 6
    return so


def run_kernel(lib, x, h, c, w, b):
    n, cx, hh, ww = x.shape
    ch = h.shape[1]
    k = w.shape[-1]
    fn = lib.convlstm_f32 if x.dtype == np.float32 else lib.convlstm_f16
    args = [np.ascontiguousarray(a, dtype=x.dtype) for a in (x, h, c, w, b)]
    h_out = np.full(h.shape, np.nan, x.dtype)     # sentinel: every element must be written
    c_out = np.full(h.shape, np.nan, x.dtype)
    calls = fn(*(a.ctypes.data for a in args), h_out.ctypes.data, c_out.ctypes.data, n, cx, ch, hh, ww, k)
    assert calls == h_out.size, "the emulated grid must visit every output element exactly once"
    return h_out, c_out


def make_inputs(rng, n, cx, ch, hh, ww, k):
    scale = 1.0 / np.sqrt((cx + ch) * k * k)             # keep pre-activations O(1): gates not saturated
    return (rng.standard_normal((n, cx, hh, ww)).astype(np.float32),
            rng.standard_normal((n, ch, hh, ww)).astype(np.float32),
            (rng.standard_normal((n, ch, hh, ww)) * 2).astype(np.float32),
            (rng.standard_normal((4 * ch, cx + ch, k, k)) * 2 * scale).astype(np.float32),
            rng.standard_normal(4 * ch).astype(np.float32))


def reference(*arrays):
    """The reference in float64 on the given values (the kernel's inputs, after any fp16 rounding)."""
    h, c = convlstm_cell_math(*(torch.from_numpy(a.astype(np.float64)) for a in arrays))
    return h.numpy(), c.numpy()


@pytest.mark.parametrize("n,cx,ch,hh,ww,k", [
    (2, 3, 4, 7, 9, 3),
    (3, 5, 2, 5, 11, 1),
    (2, 4, 3, 9, 7, 5),
    (1, 2, 2, 1, 3, 5),          # map smaller than the kernel window
    (2, 16, 8, 7, 7, 3),         # Ego-RNN-like channel counts at a small map
])
def test_fp32_matches_reference(lib, rng, n, cx, ch, hh, ww, k):
    inputs = make_inputs(rng, n, cx, ch, hh, ww, k)
    h_out, c_out = run_kernel(lib, *inputs)
    h_ref, c_ref = reference(*inputs)
    np.testing.assert_allclose(c_out, c_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_out, h_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_fp16_within_half_tolerance(lib, rng, k):
    """Half I/O, float32 accumulation: only the final rounding to half separates it from the reference."""
    inputs = [a.astype(np.float16) for a in make_inputs(rng, 2, 6, 4, 9, 7, k)]
    h_out, c_out = run_kernel(lib, *inputs)
    h_ref, c_ref = reference(*inputs)
    np.testing.assert_allclose(c_out.astype(np.float64), c_ref, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(h_out.astype(np.float64), h_ref, rtol=1e-3, atol=1e-4)


def test_hand_computed_1x1():
    """Not the kernel: pins the gate order the oracle and kernel share (i, f, o, g) by hand arithmetic."""
    x = torch.zeros(1, 1, 1, 1)
    h = torch.zeros(1, 1, 1, 1)
    c = torch.full((1, 1, 1, 1), 2.0)
    w = torch.zeros(4, 2, 1, 1)
    b = torch.tensor([100.0, -100.0, 100.0, 0.5])        # i = 1, f = 0, o = 1, g = tanh(0.5)
    h2, c2 = convlstm_cell_math(x, h, c, w, b)
    assert abs(c2.item() - np.tanh(0.5)) < 1e-6
    assert abs(h2.item() - np.tanh(np.tanh(0.5))) < 1e-6


def test_gate_order_in_kernel(lib):
    """Same hand case through the kernel body: f gate 0 forgets c, i gate 1 writes tanh(bias_g)."""
    x = np.zeros((1, 1, 2, 2), np.float32)
    h = np.zeros((1, 1, 2, 2), np.float32)
    c = np.full((1, 1, 2, 2), 2.0, np.float32)
    w = np.zeros((4, 2, 3, 3), np.float32)
    b = np.array([100.0, -100.0, 100.0, 0.5], np.float32)
    h_out, c_out = run_kernel(lib, x, h, c, w, b)
    np.testing.assert_allclose(c_out, np.tanh(0.5), rtol=1e-6)
    np.testing.assert_allclose(h_out, np.tanh(np.tanh(0.5)), rtol=1e-6)


def test_launcher_is_one_fused_kernel():
    """The cell is one kernel launch writing h' and c' only: no pre-activation buffer, no second kernel."""
    src = (build_tools.KERNELS_DIR / "convlstm" / "convlstm.cu").read_text()
    assert len(re.findall(r"__global__", src)) == 1
    assert len(re.findall(r"<<<", src)) == 1
    assert not re.search(r"cudaMalloc|workspace", src)
