"""CPU face of RoiPool: a numba kernel with exactly ONNX ``MaxRoiPool`` semantics (torch-free).

Semantics are ``reference.roi_pool_math`` and ONNX Runtime's ``MaxRoiPool``, in float32 math like ORT:
corners ``round(coord * spatial_scale)`` (C ``round``: half away from zero), roi at least 1x1, bin
``[floor(p * bin), ceil((p + 1) * bin))`` plus the roi start, clipped to the map, empty bin = 0.
A non-empty bin starts at ``-FLT_MAX`` like ORT (a bin of only ``-inf`` gives ``-FLT_MAX``); NaN inputs
are unspecified. float16 input is upcast once; the output is float32.

Speed (see ``bench/ops.py``): the map is copied channels-last once; rois whose rounded corners (and batch)
equal an earlier roi's pool the same bins, so only the first of them is computed and the rest copied (a
tracker's candidates on a stride-16 map: 60 of 256 computed); the kernel runs ``prange`` over chunks of rois
with one set of scratch buffers per chunk, computes each roi's bins once, keeps the channel loop innermost
(``np.fmax``, vectorised) in a per-roi buffer and writes the NCHW output contiguously (2.4-3x less CPU than
the per-element loop it replaced, on the tracker's two maps). By default it runs single-threaded when the machine is
oversubscribed (load average > cores), where a parallel region waits on descheduled workers.
``should_use_numba`` says whether the CPU engine should run this
kernel instead of onnxruntime's ``MaxRoiPool`` (issue 2: only when measured >= 2x faster).
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _numba_cache_dir() -> None:
    """numba caches compiled kernels beside this file, else in the user's cache folder; where neither is
    writable (a read-only install, no writable $HOME) it would refuse to compile: cache under the temp
    folder instead (``NUMBA_CACHE_DIR`` set by the user always wins)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = Path(__file__).parent
    if os.access(here / "__pycache__" if (here / "__pycache__").is_dir() else here, os.W_OK):
        return
    try:
        user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except (KeyError, RuntimeError):        # no home folder at all
        user = None
    probe = user
    while probe is not None and not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe is not None and os.access(probe, os.W_OK):
        return
    path = os.path.join(tempfile.gettempdir(), f"edge-numba-cache-{os.getuid()}")
    os.environ["NUMBA_CACHE_DIR"] = path
    if "numba" in sys.modules:            # numba read its config already
        sys.modules["numba"].config.CACHE_DIR = path


_numba_cache_dir()

from numba import njit, prange  # noqa: E402  (after the cache folder is settled)

from .args import check_attributes, check_layout, check_rois  # noqa: E402

_FLT_MAX = np.float32(np.finfo(np.float32).max)


def check_roi_pool_args(x: np.ndarray, rois: np.ndarray, pooled_shape, spatial_scale) -> tuple[int, int]:
    """Validate arguments; raise ValueError with a one-line message. Returns (pooled_h, pooled_w)."""
    x, rois = np.asarray(x), np.asarray(rois)
    check_layout(x.shape, rois.shape)
    if x.dtype not in (np.float32, np.float16) or rois.dtype.kind != "f":
        raise ValueError(f"roi_pool: features must be float32/float16 and rois floating point, "
                         f"got {x.dtype} and {rois.dtype}")
    ph, pw = check_attributes(pooled_shape, spatial_scale)
    if rois.shape[0]:
        check_rois(rois, x.shape[0])
    return ph, pw


@njit(cache=True, inline="always")
def _round_half_away(v):
    """C ``round`` of a float32 value (exact: the float64 add cannot round)."""
    d = np.float64(v)
    r = math.floor(abs(d) + 0.5)
    return int(-r) if d < 0 else int(r)


@njit(cache=True, inline="always")
def _bins(roi, ph, pw, scale, height, width, hs, he, ws, we):
    """Clipped integer bin limits of one roi, float32 math like ORT."""
    x1 = _round_half_away(np.float32(roi[1]) * scale)
    y1 = _round_half_away(np.float32(roi[2]) * scale)
    x2 = _round_half_away(np.float32(roi[3]) * scale)
    y2 = _round_half_away(np.float32(roi[4]) * scale)
    bin_h = np.float32(max(y2 - y1 + 1, 1)) / np.float32(ph)
    bin_w = np.float32(max(x2 - x1 + 1, 1)) / np.float32(pw)
    for p in range(ph):
        hs[p] = min(max(int(math.floor(np.float32(p) * bin_h)) + y1, 0), height)
        he[p] = min(max(int(math.ceil(np.float32(p + 1) * bin_h)) + y1, 0), height)
    for p in range(pw):
        ws[p] = min(max(int(math.floor(np.float32(p) * bin_w)) + x1, 0), width)
        we[p] = min(max(int(math.ceil(np.float32(p + 1) * bin_w)) + x1, 0), width)


@njit(cache=True, fastmath=False)
def _pool_roi(xt, roi, ph, pw, scale, out_r, hs, he, ws, we, acc):
    """One roi: xt [N, H, W, C] float32 (channels last) -> out_r [C, PH, PW]; ``hs``..``we`` [PH]/[PW] and
    ``acc`` [PH * PW, C] are the caller's scratch buffers (one set per thread, reused across rois).

    The channel loop is ``np.fmax`` into the bin's row (vectorised; ``fmax`` skips a NaN input like
    ``MaxRoiPool``'s ``if (v > max)``, and the row never holds NaN: it starts at ``-FLT_MAX``)."""
    height, width = xt.shape[1], xt.shape[2]
    _bins(roi, ph, pw, scale, height, width, hs, he, ws, we)
    b = int(roi[0])
    for i in range(ph):
        for j in range(pw):
            m = acc[i * pw + j]
            if he[i] <= hs[i] or we[j] <= ws[j]:
                m[:] = 0.0
                continue
            m[:] = -_FLT_MAX
            for y in range(hs[i], he[i]):
                for x in range(ws[j], we[j]):
                    np.fmax(m, xt[b, y, x], m)
    for c in range(xt.shape[3]):                   # contiguous NCHW writes (no div/mod per element)
        for i in range(ph):
            for j in range(pw):
                out_r[c, i, j] = acc[i * pw + j, c]


_KEY_BITS = 12            # rounded corners within [-2048, 2048) and batch < 2**15 make one int64 key


@njit(cache=True)
def _first_same(rois, scale):
    """For each roi, the index of the first roi with the same batch and rounded corners (its own index
    when it is the first): those rois pool the same bins, so only the first is computed. Rois whose
    corners do not fit the key are never shared."""
    n = rois.shape[0]
    keys = np.empty(n, np.int64)
    half = 1 << (_KEY_BITS - 1)
    for r in range(n):
        b = int(rois[r, 0])
        x1 = _round_half_away(np.float32(rois[r, 1]) * scale)
        y1 = _round_half_away(np.float32(rois[r, 2]) * scale)
        x2 = _round_half_away(np.float32(rois[r, 3]) * scale)
        y2 = _round_half_away(np.float32(rois[r, 4]) * scale)
        ok = 0 <= b < (1 << 15)
        for v in (x1, y1, x2, y2):
            ok = ok and -half <= v < half
        if ok:
            keys[r] = ((((b << _KEY_BITS | (x1 + half)) << _KEY_BITS | (y1 + half)) << _KEY_BITS | (x2 + half))
                       << _KEY_BITS) | (y2 + half)
        else:
            keys[r] = -1 - r               # unique
    order = np.argsort(keys, kind="mergesort")     # stable: the first of equal keys comes first
    first = np.empty(n, np.int64)
    for k in range(n):
        r = order[k]
        if k > 0 and keys[order[k - 1]] == keys[r]:
            first[r] = first[order[k - 1]]
        else:
            first[r] = r
    return first


@njit(cache=True, fastmath=False)
def _pool_range(xt, rois, ph, pw, scale, out, first, start, stop):
    """Rois ``start:stop`` that are the first of their bins (``first[r] == r``), one set of scratch buffers."""
    hs = np.empty(ph, np.int64)
    he = np.empty(ph, np.int64)
    ws = np.empty(pw, np.int64)
    we = np.empty(pw, np.int64)
    acc = np.empty((ph * pw, xt.shape[3]), np.float32)
    for r in range(start, stop):
        if first[r] == r:
            _pool_roi(xt, rois[r], ph, pw, scale, out[r], hs, he, ws, we, acc)


@njit(cache=True)
def _copy_shared(out, first):
    for r in range(out.shape[0]):
        if first[r] != r:
            out[r] = out[first[r]]


@njit(parallel=True, nogil=True, cache=True, fastmath=False)
def _roi_pool_nhwc(xt, rois, ph, pw, scale, out, chunks):
    """xt [N, H, W, C] float32, rois [R, 5] float32 -> out [R, C, PH, PW]; ``chunks`` contiguous roi ranges
    split over threads."""
    n = rois.shape[0]
    first = _first_same(rois, scale)
    for k in prange(chunks):
        _pool_range(xt, rois, ph, pw, scale, out, first, k * n // chunks, (k + 1) * n // chunks)
    _copy_shared(out, first)


@njit(nogil=True, cache=True, fastmath=False)
def _roi_pool_nhwc_serial(xt, rois, ph, pw, scale, out):
    """Single-threaded ``_roi_pool_nhwc`` (no thread barrier: steadier on an oversubscribed CPU)."""
    first = _first_same(rois, scale)
    _pool_range(xt, rois, ph, pw, scale, out, first, 0, rois.shape[0])
    _copy_shared(out, first)


@njit(parallel=True, nogil=True, cache=True, fastmath=False)
def _roi_pool_argmax_nhwc(xt, rois, ph, pw, scale, out, arg):
    """As ``_roi_pool_nhwc`` plus arg [R, C, PH, PW] = flat ``y * W + x`` of the max (-1: empty bin)."""
    height, width, channels = xt.shape[1], xt.shape[2], xt.shape[3]
    for r in prange(rois.shape[0]):
        hs = np.empty(ph, np.int64)
        he = np.empty(ph, np.int64)
        ws = np.empty(pw, np.int64)
        we = np.empty(pw, np.int64)
        _bins(rois[r], ph, pw, scale, height, width, hs, he, ws, we)
        b = int(rois[r, 0])
        acc = np.empty((ph * pw, channels), np.float32)
        idx = np.empty((ph * pw, channels), np.int64)
        for i in range(ph):
            for j in range(pw):
                p = i * pw + j
                if he[i] <= hs[i] or we[j] <= ws[j]:
                    acc[p, :] = 0.0
                    idx[p, :] = -1
                    continue
                # first element of the bin seeds the max, so every non-empty bin has a valid index
                row = xt[b, hs[i], ws[j]]
                for c in range(channels):
                    acc[p, c] = row[c]
                    idx[p, c] = hs[i] * width + ws[j]
                for y in range(hs[i], he[i]):
                    for x in range(ws[j], we[j]):
                        row = xt[b, y, x]
                        for c in range(channels):
                            if row[c] > acc[p, c]:
                                acc[p, c] = row[c]
                                idx[p, c] = y * width + x
        for c in range(channels):
            for p in range(ph * pw):
                out[r, c, p // pw, p % pw] = acc[p, c]
                arg[r, c, p // pw, p % pw] = idx[p, c]


def _prepare(x, rois, pooled_shape, spatial_scale):
    ph, pw = check_roi_pool_args(x, rois, pooled_shape, spatial_scale)
    x = np.asarray(x)
    n, c, h, w = x.shape
    xt = np.empty((n, h, w, c), np.float32)
    xt[...] = x.transpose(0, 2, 3, 1)                    # channels-last copy (and fp16 -> fp32)
    rois = np.ascontiguousarray(rois, dtype=np.float32)
    return xt, rois, ph, pw, np.float32(spatial_scale), (rois.shape[0], c, ph, pw)


_load = [0.0, 0.0]   # [time of the last check, 1-min load average]


def _cpu_oversubscribed() -> bool:
    """1-min load average above the core count (checked at most once a second)."""
    now = time.monotonic()
    if now - _load[0] > 1.0:
        try:
            _load[1] = os.getloadavg()[0]
        except OSError:
            _load[1] = 0.0
        _load[0] = now
    return _load[1] > (os.cpu_count() or 1)


def roi_pool(x: np.ndarray, rois: np.ndarray, pooled_shape, spatial_scale: float = 1.0, *,
             parallel: bool | None = None) -> np.ndarray:
    """ROI max pooling: x [N, C, H, W] float32/float16, rois [R, 5] -> float32 [R, C, PH, PW].

    ``parallel=True`` splits the rois over numba's threads (``numba.set_num_threads``); ``False`` runs
    one thread. ``None`` (default): parallel unless the CPU is oversubscribed (load average > cores),
    where a parallel region keeps waiting for descheduled workers and one thread is much steadier.
    """
    xt, rois, ph, pw, scale, shape = _prepare(x, rois, pooled_shape, spatial_scale)
    out = np.empty(shape, np.float32)
    if parallel is None:
        parallel = not _cpu_oversubscribed()
    if shape[0]:
        if parallel:
            import numba
            _roi_pool_nhwc(xt, rois, ph, pw, scale, out, max(1, min(numba.get_num_threads(), shape[0])))
        else:
            _roi_pool_nhwc_serial(xt, rois, ph, pw, scale, out)
    return out


def roi_pool_with_argmax(x: np.ndarray, rois: np.ndarray, pooled_shape,
                         spatial_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``roi_pool`` plus the int64 flat (y * W + x) index of each max in its map (-1 for an empty bin)."""
    xt, rois, ph, pw, scale, shape = _prepare(x, rois, pooled_shape, spatial_scale)
    out = np.empty(shape, np.float32)
    arg = np.empty(shape, np.int64)
    if shape[0]:
        _roi_pool_argmax_nhwc(xt, rois, ph, pw, scale, out, arg)
    return out, arg


# Decision record, copied from bench/results/ops.json (``python bench/ops.py``): median ms of
# onnxruntime's MaxRoiPool (2 threads) / median ms of this kernel (default mode; under that load it ran
# single-threaded), 256 SINT-like boxes, keyed by (C, H, W, PH, PW). Run of 2026-11-22 04:04 UTC on the
# shared 2-core machine at load average 8-11 (8 helpers busy): both sides suffer; a quiet spot check
# (load 0.7) gave 6.2-7.5x at 2 threads on the same kinds of sizes. The CPU engine uses numba only where
# the speedup is >= MIN_SPEEDUP (issue 2).
MIN_SPEEDUP = 2.0
MEASURED_SPEEDUP: dict[tuple[int, int, int, int, int], float] = {
    (32, 20, 20, 4, 4): 3.08,     # SINT 160 px crop, stride 8 (the tracker)
    (96, 10, 10, 4, 4): 9.56,     # SINT 160 px crop, stride 16 (the tracker)
    (32, 24, 24, 4, 4): 10.9,     # 192 px crop, stride 8
    (32, 24, 24, 7, 7): 5.89,
    (96, 12, 12, 4, 4): 9.4,      # 192 px crop, stride 16
    (96, 12, 12, 7, 7): 3.12,
    (96, 32, 32, 4, 4): 3.32,     # REFERENCE.md probe sizes
    (96, 32, 32, 7, 7): 2.97,
    (320, 16, 16, 7, 7): 2.88,
}


def should_use_numba(channels: int, height: int, width: int, pooled_shape, num_rois: int = 256) -> bool:
    """Whether the CPU engine should run this kernel rather than onnxruntime's MaxRoiPool.

    Uses the measured speedup of the closest benchmarked size (by work ``C * PH * PW`` and map area);
    ``False`` when nothing was measured. ``num_rois`` is accepted for the record (all sizes were
    measured at 256 boxes; the ratio barely depends on it since both sides are linear in R).
    """
    if not MEASURED_SPEEDUP:
        return False
    ph, pw = (int(v) for v in pooled_shape)
    key = (int(channels), int(height), int(width), ph, pw)
    if key in MEASURED_SPEEDUP:
        return MEASURED_SPEEDUP[key] >= MIN_SPEEDUP

    def distance(k):
        return abs(math.log(k[0] * k[3] * k[4] / (channels * ph * pw))) + abs(math.log(k[1] * k[2] / (height * width)))
    return MEASURED_SPEEDUP[min(MEASURED_SPEEDUP, key=distance)] >= MIN_SPEEDUP
