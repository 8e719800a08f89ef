"""Latency statistics in trtexec's metric set (torch-free).

trtexec reports throughput (runs / host wall time), latency min/max/mean/median and percentiles. Its
percentile is the nearest-rank value ``sorted[max(n - 1 - int((1 - p/100) * n), 0)]``, which is numpy's
``inverted_cdf`` method; its median averages the two middle values for an even count (``np.median``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

PERCENTILES = (90, 95, 99)


def latency_stats(times_s: Sequence[float], wall_s: float | None = None) -> dict:
    """Latency summary in milliseconds of per-run times (seconds) plus throughput in runs per second.

    ``wall_s`` is the host wall time of the whole timed loop (trtexec's throughput denominator); without it
    the sum of the run times is used.
    """
    t = np.asarray(times_s, dtype=np.float64).ravel()
    if t.size == 0:
        raise ValueError("latency_stats: no timings")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("latency_stats: timings must be finite and non-negative")
    ms = t * 1e3
    wall = float(t.sum() if wall_s is None else wall_s)
    out = {
        "runs": int(t.size),
        "throughput": float(t.size / wall) if wall > 0 else float("inf"),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "mean_ms": float(ms.mean()),
        "median_ms": float(np.median(ms)),
    }
    for p in PERCENTILES:
        out[f"p{p}_ms"] = float(np.percentile(ms, p, method="inverted_cdf"))
    return out
