"""The tracker in a stream (torch-free): one ``TrackerSession`` per stream, ``TrackerRuntime.step`` for a
batch of frames of several streams (the inference stage), events on state changes.

Protocol shared with ``edge.classify.runtime`` (see ``edge.stream.pipeline``): ``runtime.session(...)``
makes a stream's session; ``session.prepare(frame)`` runs in that stream's preprocessing thread;
``runtime.step(items)`` runs in the inference thread on ``(session, prepared, frame)`` items and returns
one update per item; ``session.close(last_frame)`` gives the final events.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from edge.errors import UserError
from edge.events import Event, TrackInit, TrackLost, TrackRecovered
from edge.runtime.base import Engines
from edge.tracking.params import TrackerParams
from edge.tracking.tracker import SiameseTracker


def parse_box(text) -> tuple[float, float, float, float]:
    """``"x,y,w,h"`` (or 4 numbers) -> floats; zero or negative size is a UserError."""
    parts = [p for p in str(text).replace(" ", "").strip("()[]").split(",") if p != ""] \
        if isinstance(text, str) else list(np.asarray(text, dtype=object).reshape(-1))
    if len(parts) != 4:
        raise UserError(f"init box must be x,y,w,h (4 numbers), got {text!r}")
    try:
        x, y, w, h = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise UserError(f"init box must be x,y,w,h numbers, got {text!r}") from None
    if not all(np.isfinite([x, y, w, h])):
        raise UserError(f"init box has a non-finite value: {text!r}")
    if w <= 0 or h <= 0:
        raise UserError(f"init box {text} has zero or negative area (w={w:g}, h={h:g})")
    return x, y, w, h


def clip_box(box: Sequence[float], size: tuple[int, int], what: str = "--init-box") -> tuple[float, ...]:
    """The one rule for an init box, for files (checked before the run) and live sources (at their first
    frame) alike: the part outside the ``(width, height)`` frame is cut off; a box with less than 2 px of it
    inside is a UserError."""
    x, y, w, h = (float(v) for v in box)
    W, H = size
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, float(W)), min(y + h, float(H))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise UserError(f"{what} {x:g},{y:g},{w:g},{h:g} lies outside the {W}x{H} frame")
    return x0, y0, x1 - x0, y1 - y0


@dataclass
class TrackerUpdate:
    """The tracker's state after one frame, and what changed."""
    box: tuple | None
    score: float | None
    lost: bool
    events: list[Event] = field(default_factory=list)


class TrackerSession:
    """One stream's tracker: init on the first frame, update, lost/recovered events, re-init after a gap."""

    def __init__(self, runtime: "TrackerRuntime", box: Sequence[float]) -> None:
        self.runtime = runtime
        self.init_box = tuple(float(v) for v in box)
        self.tracker: SiameseTracker | None = None
        self.box: tuple | None = None
        self.score: float | None = None
        self.lost = False
        self.last_good: tuple | None = None
        self.index = -1                 # the source index of the last frame tracked

    def prepare(self, frame) -> None:
        """Nothing to do ahead of inference (the crop depends on the previous box)."""
        return None

    def reinit(self, image: np.ndarray, index: int, box: Sequence[float] | None = None) -> TrackInit:
        """(Re)start on ``image`` from ``box`` (default: the last confident box, else the initial one)."""
        box = tuple(float(v) for v in (box or self.last_good or self.init_box))
        box = clip_box(box, (image.shape[1], image.shape[0]))      # a live source may change size
        self.tracker = self.runtime.tracker()
        self.tracker.init(image, np.asarray(box, np.float64))
        self.box, self.score, self.lost, self.last_good = box, None, False, box
        self.index = index
        return TrackInit(index, box)

    def update(self, image: np.ndarray, index: int, reconnected: bool = False) -> TrackerUpdate:
        """Track one frame -> the new state and its events (init, lost / recovered transitions)."""
        if self.tracker is None or reconnected:
            ev = self.reinit(image, index)
            return TrackerUpdate(self.box, self.score, self.lost, [ev])
        # frames dropped upstream (a live source behind, a corrupt frame skipped) leave a gap in the index:
        # the tracker's motion prior covers it
        box = self.tracker.update(image, max(1, index - self.index))
        self.index = index
        self.box = tuple(float(v) for v in np.asarray(box).reshape(-1)[:4])
        s = self.tracker.last_score
        self.score = None if s is None or not np.isfinite(s) else float(s)
        lost = bool(self.tracker.lost)
        events: list[Event] = []
        if lost and not self.lost:
            events.append(TrackLost(index, self.box, self.score))
        elif self.lost and not lost:
            events.append(TrackRecovered(index, self.box, self.score))
        self.lost = lost
        if not lost:
            self.last_good = self.box
        return TrackerUpdate(self.box, self.score, self.lost, events)

    def close(self, last_frame: int) -> list[Event]:
        return []


class TrackerRuntime:
    """The SINT tracker over ``Engines`` (``template`` + ``search``): one session per stream, shared engines."""

    def __init__(self, engines: Engines, params: TrackerParams | Mapping | None = None) -> None:
        if engines.kind != "tracker":
            raise UserError(f"tracker engines needed (template + search), got {engines.kind} engines "
                            f"({', '.join(engines.networks)})")
        self.engines = engines
        self.params = params
        SiameseTracker(engines, params)       # validates the parameters once, up front

    @property
    def max_lanes(self) -> int:
        """How many of this runtime's sessions (streams) may step at once in threads of their own
        (``Pipeline``'s lanes; sessions share no state). CPU onnxruntime engines: as many as the cores hold at
        the engines' intra-op threads each (a session takes concurrent runs, the numba ROI kernel releases the
        GIL). Served engines: one per core (a gRPC client per thread: the server sees the streams' requests
        together). 1 for TensorRT (one execution context and its buffers) and PyTorch (its own threads)."""
        b, cores = self.engines.backend, os.cpu_count() or 1
        if b == "onnxruntime":
            return max(1, cores // (self.engines.threads or cores))
        return cores if b.startswith("triton") else 1

    def tracker(self) -> SiameseTracker:
        return SiameseTracker(self.engines, self.params)

    def session(self, init_box: Sequence[float]) -> TrackerSession:
        return TrackerSession(self, init_box)

    def step(self, items: Sequence[tuple[TrackerSession, object, object]]) -> list[TrackerUpdate]:
        """One update per ``(session, prepared, frame)`` item, in order (frames carry image/index/reconnected)."""
        return [s.update(f.image, f.index, f.reconnected) for s, _, f in items]
