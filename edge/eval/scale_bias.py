"""Score-vs-candidate-scale profile of a tracker on a target of known size (torch-free).

The tracker is initialised on the target in frame a; in frame b (target of known box ``box_b``) boxes at
the true centre with sizes ``step**k`` x the true size (k = -K..K) are scored in the search crop the tracker
takes around ``around`` (default: the true box, i.e. a tracker that followed perfectly; a larger box
is a tracker whose box has already inflated). An unbiased tracker scores k = 0 best.
"""
from __future__ import annotations

import numpy as np


def scale_boxes(box, step: float, k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """(exponents k = -k_max..k_max, boxes [2K+1, 4]) centred on ``box`` with sizes ``step**k`` x its size."""
    b = np.asarray(box, np.float64)
    ks = np.arange(-k_max, k_max + 1)
    c = b[:2] + b[2:] / 2
    wh = b[2:][None] * (float(step) ** ks)[:, None]
    return ks, np.concatenate([c[None] - wh / 2, wh], 1)


def scale_profile(tracker, frame_a, box_a, frame_b, box_b, step: float, k_max: int,
                  around_scale: float = 1.0) -> dict:
    """Scores of the scaled boxes; ``best_k`` is the exponent of the best-scoring one (0 = true size)."""
    tracker.init(frame_a, box_a)
    b = np.asarray(box_b, np.float64)
    c = b[:2] + b[2:] / 2
    around = np.concatenate([c - b[2:] * around_scale / 2, b[2:] * around_scale])
    ks, boxes = scale_boxes(b, step, k_max)
    scores = np.asarray(tracker.score_boxes(frame_b, boxes, around), np.float64)
    return {"k": ks.tolist(), "scores": scores.tolist(), "best_k": int(ks[int(np.argmax(scores))])}
