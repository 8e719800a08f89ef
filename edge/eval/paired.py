"""Paired comparisons of two systems on the same items (torch-free): the percentile bootstrap interval of the
mean per-item difference (items resampled with their pairs kept; a fixed seed, so a report is reproducible)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def mean_difference_interval(differences: Sequence[float], level: float = 0.95, reps: int = 10000,
                             seed: int = 0) -> tuple[float, float]:
    """``level`` bootstrap interval of the mean of per-item ``differences`` (second - first on each item)."""
    d = np.asarray(differences, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("mean_difference_interval: no items")
    idx = np.random.default_rng(seed).integers(0, d.size, (reps, d.size))
    means = d[idx].mean(1)
    tail = (1.0 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))
