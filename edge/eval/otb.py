"""OTB one-pass evaluation in the got10k toolkit's definitions (torch-free).

- ``iou``: boxes ``[x, y, w, h]``, intersection width ``max(0, min(x1 + w1, x2 + w2) - max(x1, x2))``,
  IoU = inter / (union + eps), clipped to [0, 1] (got10k ``rect_iou``).
- ``center_error``: Euclidean distance of ``xy + (wh - 1) / 2`` (got10k ``center_error``).
- success curve over ``linspace(0, 1, 21)`` with success if IoU **>** t; AUC = mean of the curve.
- precision curve over integer thresholds 0..50 px with precise if error **<=** t; precision = value at 20 px.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

SUCCESS_THRESHOLDS = np.linspace(0, 1, 21)
PRECISION_THRESHOLDS = np.arange(0, 51)


def _boxes(a) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.shape[-1] != 4:
        raise ValueError(f"boxes must be [..., 4] (x, y, w, h), got shape {a.shape}")
    return a


def iou(a, b) -> np.ndarray:
    """Per-row IoU of [N, 4] (or [4]) boxes x, y, w, h."""
    a, b = _boxes(a), _boxes(b)
    x1 = np.maximum(a[..., 0], b[..., 0])
    y1 = np.maximum(a[..., 1], b[..., 1])
    x2 = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    y2 = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = np.maximum(0.0, x2 - x1) * np.maximum(0.0, y2 - y1)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def center_error(a, b) -> np.ndarray:
    """Per-row distance between box centres (got10k: ``xy + (wh - 1) / 2``)."""
    a, b = _boxes(a), _boxes(b)
    ca = a[..., :2] + (a[..., 2:] - 1) / 2
    cb = b[..., :2] + (b[..., 2:] - 1) / 2
    return np.sqrt(np.sum((ca - cb) ** 2, axis=-1))


def success_curve(ious) -> np.ndarray:
    """Fraction of frames with IoU > t for t in linspace(0, 1, 21)."""
    ious = np.asarray(ious, np.float64).reshape(-1)
    return np.mean(ious[:, None] > SUCCESS_THRESHOLDS[None], axis=0)


def precision_curve(errors) -> np.ndarray:
    """Fraction of frames with centre error <= t px for t = 0..50."""
    errors = np.asarray(errors, np.float64).reshape(-1)
    return np.mean(errors[:, None] <= PRECISION_THRESHOLDS[None], axis=0)


def auc(ious) -> float:
    """Success AUC of per-frame IoUs = mean of the 21-point success curve."""
    return float(np.mean(success_curve(ious)))


def precision_at(errors, threshold: int = 20) -> float:
    """Precision at ``threshold`` px: fraction of frames with centre error <= threshold."""
    return float(np.mean(np.asarray(errors, np.float64).reshape(-1) <= threshold))


def evaluate(boxes, gt) -> dict:
    """One sequence (or concatenated frames): IoUs, errors, curves, AUC and precision@20."""
    boxes, gt = _boxes(boxes), _boxes(gt)
    if boxes.shape != gt.shape:
        raise ValueError(f"{len(boxes)} predicted boxes for {len(gt)} ground-truth boxes")
    valid = np.isfinite(gt).all(1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)   # OTB marks missing targets
    ious, errs = iou(boxes[valid], gt[valid]), center_error(boxes[valid], gt[valid])
    succ, prec = success_curve(ious), precision_curve(errs)
    return {"ious": ious, "center_errors": errs, "success_curve": succ, "precision_curve": prec,
            "auc": float(np.mean(succ)), "precision": float(prec[20])}


def summarize_by_attribute(evals: dict[str, dict], attributes: dict[str, Sequence[str]]) -> dict:
    """Per attribute tag: OTB success/precision curves averaged over the sequences carrying it (as the
    OTB attribute plots), with AUC, precision@20 and the sequence count; {} when nothing is tagged."""
    out = {}
    tags = sorted({t for name in evals for t in attributes.get(name, ())})
    for tag in tags:
        sub = [e for name, e in evals.items() if tag in attributes.get(name, ())]
        s = np.mean([e["success_curve"] for e in sub], axis=0)
        p = np.mean([e["precision_curve"] for e in sub], axis=0)
        out[tag] = {"auc": float(np.mean(s)), "precision20": float(p[20]), "sequences": len(sub),
                    "success_curve": s.tolist(), "precision_curve": p.tolist()}
    return out


def run_sequence(tracker, frames: Iterable, init_box, index=None) -> tuple[np.ndarray, np.ndarray]:
    """got10k one-pass evaluation: init on frame 0 with ``init_box``, update on the rest.

    ``frames`` are HxWx3 uint8 BGR arrays or image paths. ``index``: each frame's index in its stream, when the
    loop dropped frames; a gap reaches the tracker as ``update(image, elapsed)``. Returns boxes [N, 4] (row 0 =
    init box) and per-frame times in seconds (row 0 = init time)."""
    import cv2
    boxes, times = [], []
    for i, f in enumerate(frames):
        gap = 1 if index is None or i == 0 else int(index[i]) - int(index[i - 1])
        if isinstance(f, (str, Path)):
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"cannot read image {f}")
            f = img
        t = time.perf_counter()
        if i == 0:
            tracker.init(f, init_box)
            box = np.asarray(init_box, np.float64)
        else:
            box = np.asarray(tracker.update(f) if gap == 1 else tracker.update(f, gap), np.float64)
        times.append(time.perf_counter() - t)
        boxes.append(box)
    if not boxes:
        raise ValueError("run_sequence: no frames")
    return np.stack(boxes), np.asarray(times)
