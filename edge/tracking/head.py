"""Discriminative IoU head fitted in closed form (torch-free): ridge regression from a box's embedding to its
IoU with the target (ATOM/DiMP's target, a linear closed-form model instead of a learned optimiser).

Training samples come from the first frame (boxes around the target at 0.5-2x its size and shifted, in search
crops taken around boxes too small, right and too large, so every size the tracker may search from is seen).
Solved like the box regression (``RidgeRegressor``: dual form, ``w = X^T (X X^T + alpha I)^-1 y``, bias).
Per frame the prediction is one ``[R, D] @ [D]`` product on the embeddings the search network returns.
"""
from __future__ import annotations

import numpy as np

from edge.tracking.geometry import RidgeRegressor, iou_xyxy


def head_samples(ref: np.ndarray, count: int, rng: np.random.Generator, scale_range: tuple[float, float],
                 max_shift: float) -> np.ndarray:
    """``count`` xyxy boxes around the xyxy box ``ref`` (first row = ref): each side scaled log-uniformly in
    ``scale_range`` (the two sides correlated: aspect changes stay moderate), the centre shifted uniformly by
    up to ``max_shift`` x the box's side."""
    w, h = ref[2] - ref[0], ref[3] - ref[1]
    cx, cy = (ref[0] + ref[2]) / 2, (ref[1] + ref[3]) / 2
    n = count - 1
    lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
    s = rng.uniform(lo, hi, n)
    a = rng.uniform(-0.15, 0.15, n)                      # log aspect jitter
    sw, sh = np.exp(s + a), np.exp(s - a)
    dx, dy = rng.uniform(-max_shift, max_shift, (2, n))
    ncx, ncy, nw, nh = cx + dx * w, cy + dy * h, w * sw, h * sh
    boxes = np.stack([ncx - nw / 2, ncy - nh / 2, ncx + nw / 2, ncy + nh / 2], 1)
    return np.concatenate([ref[None], boxes])


def iou_labels(boxes: np.ndarray, target: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Regression targets: IoU with the target xyxy box, to ``power`` (> 1 favours the near-perfect boxes)."""
    return np.clip(iou_xyxy(boxes, target), 0, 1) ** power


class IoUHead:
    """Embedding -> IoU label: the box regression's ridge (``RidgeRegressor``, dual form, bias column) with one
    target, evaluated in float32 per frame."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, alpha: float):
        w = RidgeRegressor(np.asarray(features, np.float64), np.asarray(labels, np.float64).reshape(-1, 1),
                           float(alpha)).w[:, 0]
        self.w = w[:-1].astype(np.float32)
        self.b = float(w[-1])

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Predicted labels [R] of embeddings [R, D]."""
        # einsum, not BLAS: a threaded gemv on a loaded machine costs 10x more than this single-thread loop
        return np.einsum("rd,d->r", np.asarray(features, np.float32), self.w) + self.b
