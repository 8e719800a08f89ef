"""Numerical agreement of one engine's outputs with the reference's on identical inputs (torch-free).

Per output: max and mean absolute error, minimum cosine similarity over samples (each batch row flattened),
and for score-like outputs (per-candidate scores, class logits) top-1 agreement: the fraction of samples
whose argmax matches the reference's.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

# outputs whose argmax is a decision: the tracker's best candidate, the classifier's label
TOP1_OUTPUTS = {"scores": "all", "score": "all", "logits": "rows"}


def _rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(1, -1) if a.ndim <= 1 else a.reshape(a.shape[0], -1)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (two zero rows count as 1)."""
    a, b = _rows(a), _rows(b)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = np.sum(a * b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * nb)
    return np.where(both_zero, 1.0, np.nan_to_num(cos, nan=0.0))


def top1(a: np.ndarray, mode: str) -> np.ndarray:
    """Decisions of a score output: one argmax over everything (``all``) or one per row (``rows``)."""
    a = np.asarray(a)
    if mode == "all":
        return np.array([int(np.argmax(a))])
    return np.argmax(_rows(a), axis=1)


def compare(ref: Sequence[Mapping[str, np.ndarray]], out: Sequence[Mapping[str, np.ndarray]]) -> dict:
    """Aggregate agreement of ``out`` with ``ref`` (lists of output dicts from the same inputs).

    Returns ``{output_name: {max_abs_err, mean_abs_err, min_cosine, top1_agreement|None, samples}}``.
    """
    if len(ref) != len(out):
        raise ValueError(f"compare: {len(ref)} reference results vs {len(out)} engine results")
    result: dict[str, dict] = {}
    names = list(ref[0]) if ref else []
    for name in names:
        max_err, abs_sum, count, cos_min = 0.0, 0.0, 0, 1.0
        agree, decisions = 0, 0
        for r, o in zip(ref, out):
            if name not in o:
                raise ValueError(f"compare: engine output {name!r} missing (has {sorted(o)})")
            a, b = np.asarray(r[name], np.float64), np.asarray(o[name], np.float64)
            if a.shape != b.shape:
                raise ValueError(f"compare: output {name!r} shape {b.shape} != reference {a.shape}")
            d = np.abs(a - b)
            if d.size:
                max_err = max(max_err, float(d.max()))
                abs_sum += float(d.sum())
                count += d.size
                cos_min = min(cos_min, float(cosine_rows(a, b).min()))
            mode = TOP1_OUTPUTS.get(name)
            if mode and a.size:
                ta, tb = top1(a, mode), top1(b, mode)
                agree += int(np.sum(ta == tb))
                decisions += ta.size
        result[name] = {
            "max_abs_err": max_err,
            "mean_abs_err": abs_sum / count if count else 0.0,
            "min_cosine": cos_min,
            "top1_agreement": agree / decisions if decisions else None,
            "samples": len(ref),
        }
    return result


def summarize(per_network: Mapping[str, Mapping[str, dict]]) -> dict:
    """Row-level summary over networks/outputs: worst errors, worst cosine, lowest top-1 agreement."""
    outs = [o for net in per_network.values() for o in net.values()]
    top = [o["top1_agreement"] for o in outs if o["top1_agreement"] is not None]
    return {
        "max_abs_err": max((o["max_abs_err"] for o in outs), default=None),
        "mean_abs_err": max((o["mean_abs_err"] for o in outs), default=None),
        "min_cosine": min((o["min_cosine"] for o in outs), default=None),
        "top1_agreement": min(top) if top else None,
    }


def candidate_agreement(feeds: Sequence[Mapping[str, np.ndarray]], ref: Sequence[Mapping[str, np.ndarray]],
                        out: Sequence[Mapping[str, np.ndarray]], rois: str = "rois", scores: str = "scores",
                        min_iou: float = 0.5) -> dict | None:
    """For a candidate-scoring network (tracker ``search``): how close the engine's best candidate box is to
    the reference's when they differ — mean IoU of the two picks and the fraction with IoU >= ``min_iou``
    (a strict top-1 flip between two nearly identical neighbouring candidates does not move the box)."""
    if not feeds or rois not in feeds[0] or scores not in ref[0]:
        return None
    ious = []
    for f, r, o in zip(feeds, ref, out):
        boxes = np.asarray(f[rois], np.float64).reshape(-1, 5)[:, 1:]
        a, b = boxes[int(np.argmax(r[scores]))], boxes[int(np.argmax(o[scores]))]
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
        ious.append(iw * ih / union if union > 0 else 1.0)
    ious = np.asarray(ious)
    return {"top1_box_iou_mean": float(ious.mean()), "top1_box_agreement": float(np.mean(ious >= min_iou)),
            "min_iou": min_iou}
