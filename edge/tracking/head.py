"""Discriminative IoU head fitted in closed form (torch-free): ridge regression from a box's embedding to its
IoU with the target (ATOM/DiMP's target, a linear closed-form model instead of a learned optimiser).

Training samples come from the first frame (boxes around the target at 0.5-2x its size and shifted, in search
crops taken around boxes too small, right and too large, so every size the tracker may search from is seen),
and optionally from later confident frames (``add``: a bounded memory, oldest online samples dropped first).
Solved in the dual (samples << dimension): ``w = X^T (X X^T + alpha I)^-1 y`` with a bias column; the Gram
matrix is kept and only the new rows are computed on an update. Per frame the prediction is one
``[R, D] @ [D]`` product on the embeddings the search network already returns.
"""
from __future__ import annotations

import numpy as np

from edge.tracking.geometry import iou_xyxy


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
    """Linear ridge regression embedding -> IoU label, dual form, with a bounded memory of online samples."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, alpha: float, memory: int = 0):
        x = np.asarray(features, np.float64)
        self.alpha = float(alpha)
        self.fixed = len(x)                    # first-frame samples: always kept
        self.memory = int(memory)              # online samples kept (oldest dropped first)
        self.x = np.concatenate([x, np.ones((len(x), 1))], 1)
        self.y = np.asarray(labels, np.float64).reshape(-1)
        self.gram = self.x @ self.x.T
        self._solve()

    def _solve(self) -> None:
        k = self.gram + self.alpha * np.eye(len(self.x))
        coef = np.linalg.solve(k, self.y)
        w = self.x.T @ coef
        self.w = w[:-1].astype(np.float32)
        self.b = float(w[-1])

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Predicted labels [R] of embeddings [R, D]."""
        # einsum, not BLAS: a threaded gemv on a loaded machine costs 10x more than this single-thread loop
        return np.einsum("rd,d->r", np.asarray(features, np.float32), self.w) + self.b

    def add(self, features: np.ndarray, labels: np.ndarray) -> None:
        """Add online samples (beyond ``memory``: the oldest online ones go) and re-solve."""
        if self.memory <= 0 or len(features) == 0:
            return
        xn = np.concatenate([np.asarray(features, np.float64), np.ones((len(features), 1))], 1)[-self.memory:]
        yn = np.asarray(labels, np.float64).reshape(-1)[-self.memory:]
        keep = np.arange(len(self.x))
        online = len(self.x) - self.fixed
        drop = max(0, online + len(xn) - self.memory)
        if drop:
            keep = np.concatenate([keep[:self.fixed], keep[self.fixed + drop:]])
        x_old = self.x[keep]
        cross = xn @ x_old.T
        self.gram = np.block([[self.gram[np.ix_(keep, keep)], cross.T], [cross, xn @ xn.T]])
        self.x = np.concatenate([x_old, xn])
        self.y = np.concatenate([self.y[keep], yn])
        self._solve()
