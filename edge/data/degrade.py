"""What a cheap deployed camera does to a clip: training-time degradations of generated clips (torch-free).

Users' cameras stream heavily compressed video, are mounted sideways, film dim rooms and IR scenes at night,
and shake on poles. A model that saw only clean generated clips scores such footage with confidence it has not
earned (round 3's windows reached 0.97-0.99 for an alarm class on compressed, rotated and dim real footage).
:func:`degrade_clip` applies each fault independently with its own probability, to every class alike (a fault
must never be a cue for ``none``), with parameters drawn from wide ranges rather than one camera's setting.
Used by the ``*_faults`` copies of the generated splits (``edge.data.actions.DEGRADED_SPLITS``: the same clips
as train / val / test, with faults); the clean splits, the calibration streams and the held-back footage are
left as they are, so earlier rounds stay comparable and the held-back conditions of ``edge.bench.conditions``
remain a measurement, not a training set.

Faults, in camera order (``FAULTS``: name -> probability):

* ``rotate``: the whole view turned 90 degrees either way (a portrait-mounted camera); the label is unchanged.
* ``dark``: gain 0.2-0.55, black level lifted by 0-16, extra sensor noise sigma 3-9; half of them grey (IR).
* ``grey``: colour dropped alone (a camera in mono mode).
* ``jitter``: every frame shifted by N(0, 0.5-2.5 % of the side) on top of the clip's smooth camera motion.
* ``jpeg``: every frame JPEG-encoded at quality 6-55 (a low-bit-rate stream's blocks and ringing).
"""
from __future__ import annotations

import cv2
import numpy as np

VERSION = 1
FAULTS = {"rotate": 0.10, "dark": 0.15, "grey": 0.05, "jitter": 0.15, "jpeg": 0.30}


def _grey(f: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)[:, :, None], 3, 2)


def degrade_clip(clip: np.ndarray, rng: np.random.Generator, faults: dict[str, float] | None = None
                 ) -> tuple[np.ndarray, tuple[str, ...]]:
    """(degraded copy of ``clip`` [T, H, W, 3] uint8 BGR, names of the faults applied). ``faults``: name ->
    probability (default ``FAULTS``). One draw per fault per clip (the same fault on every frame, as a camera
    has it); shapes and dtype are kept (``rotate`` only turns square clips)."""
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
        raise ValueError(f"expected a [T, H, W, 3] uint8 clip, got {clip.shape} {clip.dtype}")
    faults = FAULTS if faults is None else faults
    bad = [n for n in faults if n not in FAULTS] + [n for n, p in faults.items() if not 0 <= p <= 1]
    if bad:
        raise ValueError(f"unknown camera fault or probability outside [0, 1]: {', '.join(map(str, bad))} "
                         f"(have: {', '.join(FAULTS)})")
    on = {name: rng.random() < faults.get(name, 0.0) for name in FAULTS}
    draws = {"k": int(rng.choice([1, 3])), "gain": rng.uniform(0.2, 0.55), "lift": rng.uniform(0, 16),
             "sigma": rng.uniform(3, 9), "ir": rng.random() < 0.5, "shift": rng.uniform(0.005, 0.025),
             "quality": int(rng.integers(6, 56))}
    out = []
    for f in clip:
        if on["rotate"] and f.shape[0] == f.shape[1]:
            f = np.rot90(f, draws["k"])
        if on["dark"]:
            g = f.astype(np.float32) * draws["gain"] + draws["lift"]
            g = g + rng.normal(0, draws["sigma"], g.shape)
            f = np.clip(g, 0, 255).astype(np.uint8)
            if draws["ir"]:
                f = _grey(f)
        if on["grey"]:
            f = _grey(f)
        if on["jitter"]:
            h, w = f.shape[:2]
            dx, dy = rng.normal(0, draws["shift"] * min(h, w), 2)
            f = cv2.warpAffine(np.ascontiguousarray(f), np.float32([[1, 0, dx], [0, 1, dy]]), (w, h),
                               borderMode=cv2.BORDER_REFLECT101)
        if on["jpeg"]:
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(f), [cv2.IMWRITE_JPEG_QUALITY, draws["quality"]])
            if not ok:
                raise RuntimeError("OpenCV could not JPEG-encode a frame")
            f = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        out.append(np.ascontiguousarray(f))
    return np.stack(out), tuple(n for n, v in on.items() if v)
