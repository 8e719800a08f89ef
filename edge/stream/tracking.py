"""One stream's tracker in the loop (torch-free): init, update, lost/recovered events, re-init.

Wraps ``edge.tracking.SiameseTracker`` (got10k interface: ``init(image, box)``, ``update(image) -> box``,
``.last_score``; its lost flag when it has one). Without a lost flag from the tracker, a score below
``lost_threshold`` marks the target lost.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edge.errors import UserError


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x,y,w,h"`` -> floats; zero or negative size is a UserError."""
    parts = [p for p in str(text).replace(" ", "").split(",") if p != ""]
    if len(parts) != 4:
        raise UserError(f"--init-box must be x,y,w,h (4 numbers), got {text!r}")
    try:
        x, y, w, h = (float(p) for p in parts)
    except ValueError:
        raise UserError(f"--init-box must be x,y,w,h numbers, got {text!r}") from None
    if not all(np.isfinite([x, y, w, h])):
        raise UserError(f"--init-box has a non-finite value: {text!r}")
    if w <= 0 or h <= 0:
        raise UserError(f"--init-box {text} has zero or negative area (w={w:g}, h={h:g})")
    return x, y, w, h


def check_box_in_frame(box: Sequence[float], size: tuple[int, int], what: str = "--init-box") -> None:
    """The box must lie inside the ``(width, height)`` frame (UserError otherwise)."""
    x, y, w, h = box
    W, H = size
    if x < 0 or y < 0 or x + w > W or y + h > H:
        raise UserError(f"{what} {x:g},{y:g},{w:g},{h:g} is outside the {W}x{H} frame")


class TrackerStream:
    """Per-stream tracker state and events."""

    def __init__(self, make_tracker: Callable[[], object], box: Sequence[float],
                 lost_threshold: float | None = None) -> None:
        self.make_tracker = make_tracker
        self.init_box = tuple(float(v) for v in box)
        self.lost_threshold = lost_threshold
        self.tracker = None
        self.box: tuple | None = None
        self.score: float | None = None
        self.lost = False
        self.last_good: tuple | None = None

    def reinit(self, image: np.ndarray, box: Sequence[float] | None = None) -> dict:
        """(Re)start on ``image`` from ``box`` (default: the last confident box, else the initial one)."""
        box = tuple(float(v) for v in (box or self.last_good or self.init_box))
        H, W = image.shape[:2]
        x, y, w, h = box                   # clamp into this frame (a live source may change size)
        w, h = min(w, W), min(h, H)
        x, y = min(max(x, 0.0), W - w), min(max(y, 0.0), H - h)
        box = (x, y, w, h)
        self.tracker = self.make_tracker()
        self.tracker.init(image, np.asarray(box, np.float64))
        self.box, self.score, self.lost, self.last_good = box, None, False, box
        return {"type": "track_init", "box": list(box)}

    def update(self, image: np.ndarray) -> list[dict]:
        """Track on one frame -> events (track_lost / track_recovered transitions)."""
        if self.tracker is None:
            return [self.reinit(image)]
        box = self.tracker.update(image)
        self.box = tuple(float(v) for v in np.asarray(box).reshape(-1)[:4])
        s = getattr(self.tracker, "last_score", None)
        self.score = None if s is None else float(s)
        flag = getattr(self.tracker, "lost", None)
        if isinstance(flag, (bool, np.bool_)):
            lost = bool(flag)
        elif self.lost_threshold is not None and self.score is not None:
            lost = self.score < self.lost_threshold
        else:
            lost = False
        events = []
        if lost and not self.lost:
            events.append({"type": "track_lost", "box": list(self.box), "score": self.score})
        elif self.lost and not lost:
            events.append({"type": "track_recovered", "box": list(self.box), "score": self.score})
        self.lost = lost
        if not lost:
            self.last_good = self.box
        return events
