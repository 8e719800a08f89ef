"""The tiled ConvLSTM CUDA kernel's pieces (kernels/convlstm/convlstm.cuh) built with g++ and run over an
emulated grid of blocks with emulated shared memory, against the PyTorch reference.

The harness runs exactly the kernel's sequence (convlstm.cu) for every block: ``init_acc``; per stage
``stage_load`` for all threads, then ``stage_accumulate`` for all threads (one phase per ``__syncthreads``);
``reduce_write`` and ``finish``. Shared memory is poisoned with NaN before every stage, so a thread reading a
slot that no thread of its block loaded in that stage turns its outputs NaN. The plan (tile, channel groups,
input-channel slices, stage size) depends on the SM count: every case runs with several.
"""
from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest
import torch

from edge.kernels import build_tools
from edge.kernels.cases import CELL_CASES, CellCase, cell_inputs
from edge.kernels.convlstm.reference import convlstm_cell_math

HARNESS = r"""
#include <cmath>
#include <vector>
#include "convlstm/convlstm.cuh"
using namespace edge;
using namespace edge::convlstm;

template <class T, int K>
static void accumulate_all(const ConvLstmShape& s, const TilePlan& p, int ci0, const T* smem, std::vector<Acc>& acc) {
    for (int tid = 0; tid < p.threads; ++tid) stage_accumulate<T, K>(s, p, ci0, tid, smem, acc[tid]);
}

template <class T, class TS>
static long long run(const void* xv, const void* hv, const void* cv, const void* wv, const void* bv, void* hov,
                     void* cov, int n, int cx, int ch, int hh, int ww, int k, int sm_count, int* plan_out) {
    const T* x = static_cast<const T*>(xv);
    const T* h = static_cast<const T*>(hv);
    const TS* c = static_cast<const TS*>(cv);
    const T* w = static_cast<const T*>(wv);
    const T* b = static_cast<const T*>(bv);
    T* ho = static_cast<T*>(hov);
    TS* co = static_cast<TS*>(cov);
    const ConvLstmShape s{n, cx, ch, hh, ww, k};
    const TilePlan p = plan_tiles(s, static_cast<int>(sizeof(T)), sm_count);
    const int fields[] = {p.th, p.tw, p.cb, p.ks, p.ci, p.tiles_x, p.tiles_y, p.ch_blocks, p.threads, p.smem_bytes};
    for (int i = 0; i < 10; ++i) plan_out[i] = fields[i];
    if (output_size(s) <= 0) return 0;
    if (p.threads == 0) return -1;
    std::vector<float> storage(static_cast<size_t>(p.smem_bytes) / sizeof(float) + 1);   // __shared__ (aligned)
    T* smem = reinterpret_cast<T*>(storage.data());
    float* red = storage.data();
    std::vector<Acc> acc(static_cast<size_t>(p.threads));
    const int cin = cx + ch;
    const int grid_z = imin(n, kMaxGridZ);
    long long written = 0;
    for (int bz = 0; bz < grid_z; ++bz)                                  // blockIdx.z
    for (int img = bz; img < n; img += grid_z)                           //   grid-stride over images
    for (int by = 0; by < p.ch_blocks; ++by)                             // blockIdx.y
    for (int bx = 0; bx < p.tiles_x * p.tiles_y; ++bx) {                 // blockIdx.x
        const BlockPos pos{bx, by, img};
        for (int tid = 0; tid < p.threads; ++tid) init_acc(b, s, p, pos, tid, acc[tid]);
        for (int ci0 = 0; ci0 < cin; ci0 += p.ci) {
            for (int i = 0; i < p.smem_elems; ++i) smem[i] = from_float<T>(NAN);
            for (int tid = 0; tid < p.threads; ++tid) stage_load(x, h, w, s, p, pos, ci0, tid, smem);
            if (k == 1) accumulate_all<T, 1>(s, p, ci0, smem, acc);
            else if (k == 3) accumulate_all<T, 3>(s, p, ci0, smem, acc);
            else accumulate_all<T, 0>(s, p, ci0, smem, acc);
        }
        if (p.ks > 1) {
            for (size_t i = 0; i < storage.size(); ++i) storage[i] = NAN;
            for (int tid = 0; tid < p.threads; ++tid) reduce_write(p, tid, acc[tid], red);
        }
        for (int tid = 0; tid < p.threads; ++tid) written += finish(c, ho, co, s, p, pos, tid, acc[tid], red);
    }
    return written;
}

extern "C" {
long long convlstm_f32(const void* x, const void* h, const void* c, const void* w, const void* b, void* ho,
                       void* co, int n, int cx, int ch, int hh, int ww, int k, int sm, int* plan) {
    return run<float, float>(x, h, c, w, b, ho, co, n, cx, ch, hh, ww, k, sm, plan); }
long long convlstm_f16(const void* x, const void* h, const void* c, const void* w, const void* b, void* ho,
                       void* co, int n, int cx, int ch, int hh, int ww, int k, int sm, int* plan) {
    return run<host_half, float>(x, h, c, w, b, ho, co, n, cx, ch, hh, ww, k, sm, plan); }
}
"""
PLAN_FIELDS = ("th", "tw", "cb", "ks", "ci", "tiles_x", "tiles_y", "ch_blocks", "threads", "smem_bytes")
SM_COUNTS = (1, 16, 132)      # a tiny GPU, Orin-class (AGX Orin: 16 SMs), H200-class: different plans


@pytest.fixture(scope="session")
def lib(tmp_path_factory):
    if build_tools.find_cxx() is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("convlstm_host")
    src = d / "harness.cpp"
    src.write_text(HARNESS)
    so = ctypes.CDLL(str(build_tools.build_host_library([src], d, "convlstm_harness",
                                                        extra_flags=["-fno-strict-aliasing"])))
    for name in ("convlstm_f32", "convlstm_f16"):
        fn = getattr(so, name)
        fn.restype = ctypes.c_longlong
        fn.argtypes = [ctypes.c_void_p] * 7 + [ctypes.c_int] * 7 + [ctypes.c_void_p]
    return so


def run_kernel(lib, x, h, c, w, b, sm_count=16):
    """(h', c', plan) from the emulated grid; x/h/W/B float32 or float16, c always float32."""
    n, cx, hh, ww = x.shape
    ch = h.shape[1]
    k = w.shape[-1]
    fn = lib.convlstm_f32 if x.dtype == np.float32 else lib.convlstm_f16
    args = [np.ascontiguousarray(a, dtype=x.dtype) for a in (x, h)]
    c = np.ascontiguousarray(c, dtype=np.float32)
    wb = [np.ascontiguousarray(a, dtype=x.dtype) for a in (w, b)]
    h_out = np.full(h.shape, np.nan, x.dtype)          # sentinel: every element must be written
    c_out = np.full(h.shape, np.nan, np.float32)
    plan = np.zeros(len(PLAN_FIELDS), np.int32)
    written = fn(args[0].ctypes.data, args[1].ctypes.data, c.ctypes.data, wb[0].ctypes.data, wb[1].ctypes.data,
                 h_out.ctypes.data, c_out.ctypes.data, n, cx, ch, hh, ww, k, sm_count, plan.ctypes.data)
    plan = dict(zip(PLAN_FIELDS, plan.tolist()))
    assert written == h_out.size, f"the emulated grid must write every output exactly once ({written}, {plan})"
    return h_out, c_out, plan


def reference(x, h, c, w, b):
    """The reference in float64 on the given values (the kernel's inputs, after any fp16 rounding)."""
    h2, c2 = convlstm_cell_math(*(torch.from_numpy(np.asarray(a, np.float64)) for a in (x, h, c, w, b)))
    return h2.numpy(), c2.numpy()


@pytest.mark.parametrize("sm_count", SM_COUNTS)
@pytest.mark.parametrize("case", CELL_CASES, ids=[c.name for c in CELL_CASES])
def test_fp32_matches_reference(lib, rng, case, sm_count):
    inputs = cell_inputs(rng, case)
    h_out, c_out, plan = run_kernel(lib, *inputs, sm_count=sm_count)
    print(case.name, sm_count, plan)
    h_ref, c_ref = reference(*inputs)
    np.testing.assert_allclose(c_out, c_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_out, h_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CELL_CASES, ids=[c.name for c in CELL_CASES])
def test_fp16_with_fp32_state_within_half_tolerance(lib, rng, case):
    """x, h, W, B and h' in half, the cell state c / c' in float32, float32 accumulation: only the final
    rounding of h' to half separates it from the reference on the same inputs."""
    x, h, c, w, b = cell_inputs(rng, case)
    x, h, w, b = (a.astype(np.float16) for a in (x, h, w, b))
    h_out, c_out, _ = run_kernel(lib, x, h, c, w, b)
    assert h_out.dtype == np.float16 and c_out.dtype == np.float32
    h_ref, c_ref = reference(x, h, c, w, b)
    np.testing.assert_allclose(c_out.astype(np.float64), c_ref, rtol=1e-5, atol=1e-5)   # state: float32 exact
    np.testing.assert_allclose(h_out.astype(np.float64), h_ref, rtol=1e-3, atol=1e-3)


def test_cases_exercise_every_part_of_the_plan(lib, rng):
    """The named cases reach partial tiles, 1/2/4 channel groups, input-channel slices and multi-stage loads."""
    plans = []
    for case in CELL_CASES:
        for sm in SM_COUNTS:
            plans.append((case, run_kernel(lib, *cell_inputs(rng, case), sm_count=sm)[2]))
    assert {p["cb"] for _, p in plans} == {4, 8, 16}
    assert {p["ks"] for _, p in plans} >= {1, 2, 8}
    assert any(c.cx + c.ch > p["ci"] and (c.cx + c.ch) % p["ci"] for c, p in plans)      # partial last stage
    assert any(p["tiles_x"] * p["tw"] > c.w and p["tiles_x"] > 1 for c, p in plans)       # partial tile
    assert any(c.ch % 4 for c, _ in plans)
    for _, p in plans:
        assert 0 < p["threads"] <= 256 and p["smem_bytes"] <= 48 * 1024


def test_kernel_window_too_large_for_shared_memory_has_no_plan(lib, rng):
    case = CellCase("k31", 1, 2, 2, 8, 8, 31)
    x, h, c, w, b = cell_inputs(rng, case)
    plan = np.zeros(len(PLAN_FIELDS), np.int32)
    written = lib.convlstm_f32(*(a.ctypes.data for a in (x, h, c, w, b)), h.ctypes.data, c.ctypes.data,
                               1, 2, 2, 8, 8, 31, 16, plan.ctypes.data)
    assert written == -1 and plan[PLAN_FIELDS.index("threads")] == 0


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
    """Same hand case through the kernel: f gate 0 forgets c, i gate 1 writes tanh(bias_g)."""
    x = np.zeros((1, 1, 2, 2), np.float32)
    h = np.zeros((1, 1, 2, 2), np.float32)
    c = np.full((1, 1, 2, 2), 2.0, np.float32)
    w = np.zeros((4, 2, 3, 3), np.float32)
    b = np.array([100.0, -100.0, 100.0, 0.5], np.float32)
    h_out, c_out, _ = run_kernel(lib, x, h, c, w, b)
    np.testing.assert_allclose(c_out, np.tanh(0.5), rtol=1e-6)
    np.testing.assert_allclose(h_out, np.tanh(np.tanh(0.5)), rtol=1e-6)


def test_launcher_is_one_fused_kernel():
    """The cell is one kernel (one launch per k specialisation) writing h' and c' only: no pre-activation
    buffer, no second kernel; it reports its own launch error without clearing earlier ones."""
    src = (build_tools.KERNELS_DIR / "convlstm" / "convlstm.cu").read_text()
    assert len(re.findall(r"__global__", src)) == 1
    assert not re.search(r"cudaMalloc|workspace", src)
    assert "cudaGetLastError" not in src and "cudaPeekAtLastError" in src
