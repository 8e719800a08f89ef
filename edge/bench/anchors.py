"""Anchor rows for the tracker benchmark: OpenCV's CSRT, KCF and MIL on the same sequences, through the same
OTB metric code (``edge.eval.otb``), labelled "what a user would pick instead" (no pass/fail against PyTorch).

CSRT and KCF live in ``opencv-contrib-python-headless`` (the same ``cv2`` module as
``opencv-python-headless``, which has MIL only): a missing tracker is skipped with the reason. Each OpenCV
tracker runs behind got10k's interface (``init(image, box)`` / ``update(image) -> box``, boxes [x, y, w, h]);
when OpenCV reports a failure the last box is held (what a user's loop would show). CSRT and KCF give the
same boxes run to run; MIL samples at random and does not (measured: AUC 0.38-0.66 over six reruns of one
12-frame sequence), so its row moves between runs. Torch-free.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

ANCHORS = ("CSRT", "KCF", "MIL")
LABEL = "what a user would pick instead"
CONTRIB = "opencv-contrib-python-headless"


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """``kinds`` as a tuple, or a ValueError (one line) naming an unknown one."""
    unknown = [k for k in kinds if k not in ANCHORS]
    if unknown:
        raise ValueError(f"unknown anchor tracker {unknown[0]!r} (have {', '.join(ANCHORS)})")
    return tuple(kinds)


def factory(kind: str) -> tuple[Callable | None, str | None]:
    """(constructor of the OpenCV tracker ``kind``, None) or (None, why it is not available)."""
    check_kinds([kind])
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - cv2 is a runtime dependency
        return None, f"OpenCV not importable ({e})"
    for make in (getattr(cv2, f"Tracker{kind}_create", None), getattr(getattr(cv2, f"Tracker{kind}", None), "create", None),
                 getattr(getattr(cv2, "legacy", None), f"Tracker{kind}_create", None)):
        if callable(make):
            return make, None
    return None, (f"cv2 {cv2.__version__} has no Tracker{kind} (it is in {CONTRIB}, which replaces "
                  f"opencv-python-headless: install one of the two, never both)")


class OpenCVTracker:
    """got10k-style wrapper: ``init(image, box)``, ``update(image) -> [x, y, w, h]``; ``lost`` after a failure."""

    def __init__(self, kind: str):
        make, why = factory(kind)
        if make is None:
            raise RuntimeError(why)
        self.kind, self._make = kind, make
        self._tracker = None
        self.box = np.zeros(4)
        self.lost = False

    def init(self, image: np.ndarray, box) -> None:
        b = np.asarray(box, np.float64)
        self._tracker = self._make()
        rect = tuple(int(round(v)) for v in (b[0], b[1], max(b[2], 1), max(b[3], 1)))
        self._tracker.init(image, rect)
        self.box, self.lost = b.copy(), False

    def update(self, image: np.ndarray, elapsed: int = 1) -> np.ndarray:
        """The next box (``elapsed``, camera frames since the last update, is accepted and unused: OpenCV's
        trackers have no motion model to move)."""
        if self._tracker is None:
            raise RuntimeError("tracker.update() before init()")
        ok, rect = self._tracker.update(image)
        self.lost = not ok
        if ok:
            self.box = np.asarray(rect, np.float64)
        return self.box.copy()


def run_anchor(kind: str, sequences: Sequence, log: Callable[[str], None] = print, real: Sequence = ()) -> dict:
    """One anchor over ``sequences`` (``edge.bench.tasks.TrackSequence``): a report row (row format of
    ``edge.bench.runner``: name, backend, task metrics with curves and per-attribute AUC, end-to-end FPS); the
    ``real`` footage sequences scored apart (``edge.bench.tasks.real_metrics``), as for the engine rows."""
    from edge.bench.stats import latency_stats
    from edge.bench.tasks import real_metrics, summarize_sequences
    from edge.eval import otb
    evals, times = {}, []
    for seq in sequences:
        boxes, t = otb.run_sequence(OpenCVTracker(kind), seq.frames, seq.gt[0], getattr(seq, "index", None))
        ev = otb.evaluate(boxes, seq.gt)
        ev["fps"] = (len(t) - 1) / float(np.sum(t[1:])) if len(t) > 1 else None
        evals[seq.name] = ev
        times.extend(float(x) for x in t[1:])
    task = summarize_sequences(evals, {s.name: getattr(s, "attributes", ()) for s in sequences})
    task["fps"] = len(times) / sum(times) if times else None
    task.update(real_metrics({seq.name: (otb.run_sequence(OpenCVTracker(kind), seq.frames, seq.gt[0],
                                                          getattr(seq, "index", None))[0], seq.gt)
                              for seq in real}))
    e2e = latency_stats(times)
    e2e["fps"] = e2e["throughput"]
    log(f"[tracker] anchor OpenCV {kind}: AUC {task['auc']:.3f}, P@20 {task['precision20']:.3f}, "
        f"{e2e['fps']:.1f} FPS")
    return {"name": f"OpenCV {kind}", "backend": "opencv", "precision": "—", "source": None,
            "reference": False, "baseline": False, "anchor": True, "label": LABEL,
            "speed": {"networks": {}, "end_to_end": e2e}, "task": task,
            "verdict": {"status": "anchor", "failures": [], "checked": [], "note": LABEL}}


def anchor_rows(sequences: Sequence, kinds: Sequence[str] = ANCHORS,
                log: Callable[[str], None] = print, real: Sequence = ()) -> tuple[list[dict], list[str]]:
    """(rows of the anchors that exist in this cv2, notes naming the skipped ones and why)."""
    rows, notes = [], []
    for kind in kinds:
        make, why = factory(kind)
        if make is None:
            notes.append(f"anchor OpenCV {kind} skipped: {why}")
            log(f"[tracker] {notes[-1]}")
            continue
        rows.append(run_anchor(kind, sequences, log, real))
    return rows, notes


def add_to_section(section: dict, sequences: Sequence, log: Callable[[str], None] = print,
                   real: Sequence = (), kinds: Sequence[str] = ANCHORS) -> None:
    """Append the anchor rows (and skip notes) to a tracker report section; FPS ratio vs the reference."""
    rows, notes = anchor_rows(sequences, kinds, log=log, real=real)
    ref = next((r for r in section.get("rows", []) if r.get("reference")), None)
    ref_fps = (((ref or {}).get("speed") or {}).get("end_to_end") or {}).get("fps")
    for r in rows:
        r["speedup"] = {"end_to_end": r["speed"]["end_to_end"]["fps"] / ref_fps} if ref_fps else {}
    section["rows"] = section.get("rows", []) + rows
    section["notes"] = section.get("notes", []) + notes + (
        [f"OpenCV rows: {LABEL} (same sequences, same OTB metric code; no pass/fail vs PyTorch)"] if rows else [])
