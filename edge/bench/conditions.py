"""Camera conditions a user's footage has and ours may not: the same real frames as a night-time IR camera, a
dim room, a cheap camera's heavy JPEG, a shaking pole, a camera read at a third of its frame rate, a 1080p
camera, a portrait-mounted camera, half resolution, a loop that drops frames behind a live camera. Each
:class:`Condition` maps frames (and, for tracking, their ground-truth boxes) to the frames that camera would give;
noise is drawn from the given generator, so a seed fixes it. Torch-free (numpy + OpenCV). On the real shots it is
evaluation only (``bench/conditions.py``); parameters are judged on the validation splits under the same
conditions (``bench/tracker_tune.py --conditions``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

Frames = list  # list of HxWx3 uint8 BGR arrays


@dataclass(frozen=True)
class Condition:
    """``apply(frames, gt, keep, rng) -> (frames, gt, index)``: ``gt`` [N, 4] boxes (NaN = not drawn) follow the
    frames; ``keep`` [N] bool marks frames a frame-dropping condition must keep (the drawn ones); ``index`` is
    each frame's index in the stream the tracking loop sees (gaps: frames the loop dropped and knows it did)."""
    name: str
    what: str
    apply: Callable[[Frames, np.ndarray, np.ndarray, np.random.Generator], tuple[Frames, np.ndarray, np.ndarray]]


def _same(frames: Frames, gt: np.ndarray, keep: np.ndarray, rng: np.random.Generator):
    return list(frames), gt, np.arange(len(frames))


def _per_frame(fn: Callable[[np.ndarray, np.random.Generator], np.ndarray]):
    return lambda frames, gt, keep, rng: ([fn(f, rng) for f in frames], gt, np.arange(len(frames)))


def _noisy(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img + rng.normal(0.0, sigma, img.shape), 0, 255).astype(np.uint8)


def _night_ir(f: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey (an IR-cut camera at night has no colour), dim with lifted blacks, sensor noise."""
    g = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.float32) * 0.35 + 10.0
    return cv2.cvtColor(_noisy(g, 6.0, rng), cv2.COLOR_GRAY2BGR)


def _low_light(f: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _noisy(f.astype(np.float32) * 0.3, 5.0, rng)


def _jpeg(f: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 10])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else f


def _shake(frames: Frames, gt: np.ndarray, keep: np.ndarray, rng: np.random.Generator):
    """Every frame shifted by a fresh offset, N(0, 1.5 % of the shorter side) per axis (a camera on a pole in the
    wind); the frame's edge is replicated, the boxes move with the image."""
    out, boxes = [], gt.copy()
    for i, f in enumerate(frames):
        h, w = f.shape[:2]
        dx, dy = rng.normal(0.0, 0.015 * min(h, w), 2)
        out.append(cv2.warpAffine(f, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_REPLICATE))
        boxes[i, :2] += (dx, dy)
    return out, boxes, np.arange(len(out))


def _drop(k: int):
    """A camera at 1/k of the rate: the loop sees consecutive frames (index 0, 1, 2, ...)."""
    def fn(frames: Frames, gt: np.ndarray, keep: np.ndarray, rng: np.random.Generator):
        idx = [i for i in range(len(frames)) if i % k == 0 or keep[i]]
        return [frames[i] for i in idx], gt[idx], np.arange(len(idx))
    return fn


def _runtime_drops(frames: Frames, gt: np.ndarray, keep: np.ndarray, rng: np.random.Generator):
    """A loop that falls behind a live camera: each frame is dropped with probability 1/2, and the loop knows the
    source index of every frame it gets (``edge run`` passes the gap to the tracker)."""
    idx = [i for i in range(len(frames)) if keep[i] or rng.random() < 0.5]
    return [frames[i] for i in idx], gt[idx], np.array(idx)


def _resize(width: int | None = None, factor: float | None = None):
    def fn(frames: Frames, gt: np.ndarray, keep: np.ndarray, rng: np.random.Generator):
        h, w = frames[0].shape[:2]
        s = width / w if width else factor
        size = (max(2, round(w * s)), max(2, round(h * s)))
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        return [cv2.resize(f, size, interpolation=interp) for f in frames], \
            gt * np.array([size[0] / w, size[1] / h, size[0] / w, size[1] / h]), np.arange(len(frames))
    return fn


def _rotate(frames: Frames, gt: np.ndarray, keep: np.ndarray, rng: np.random.Generator):
    """90 degrees clockwise (a portrait-mounted camera): (x, y, w, h) in an H-high frame -> (H - y - h, x, h, w)."""
    h = frames[0].shape[0]
    boxes = np.stack([h - gt[:, 1] - gt[:, 3], gt[:, 0], gt[:, 3], gt[:, 2]], 1)
    return [cv2.rotate(f, cv2.ROTATE_90_CLOCKWISE) for f in frames], boxes, np.arange(len(frames))


CONDITIONS: dict[str, Condition] = {c.name: c for c in (
    Condition("original", "the footage as recorded", _same),
    Condition("night_ir", "grey, 0.35x brightness + 10, noise sigma 6 (an IR camera at night)", _per_frame(_night_ir)),
    Condition("low_light", "colour at 0.3x brightness, noise sigma 5 (a dim room)", _per_frame(_low_light)),
    Condition("jpeg_q10", "every frame JPEG-compressed at quality 10 (a cheap camera's stream)", _per_frame(_jpeg)),
    Condition("shake", "every frame shifted by N(0, 1.5 % of the shorter side) (a camera on a pole in wind)",
              _shake),
    Condition("frame_drop_3", "2 of 3 frames dropped (the camera read at a third of its rate; drawn frames kept)",
              _drop(3)),
    Condition("runtime_drops", "half the frames dropped at random by a loop behind a live camera, which knows "
              "the gaps", _runtime_drops),
    Condition("upscale_1080", "resized to 1920 px wide (a high-resolution camera)", _resize(width=1920)),
    Condition("half_res", "half the resolution (a far camera: the target has half the pixels)", _resize(factor=0.5)),
    Condition("portrait", "rotated 90 degrees (a portrait-mounted camera)", _rotate),
)}


def select(names: Sequence[str] | None) -> list[Condition]:
    """The named conditions (all when ``names`` is empty or None); an unknown name is a one-line ValueError."""
    if not names:
        return list(CONDITIONS.values())
    bad = [n for n in names if n not in CONDITIONS]
    if bad:
        raise ValueError(f"unknown condition {', '.join(bad)} (have: {', '.join(CONDITIONS)})")
    return [CONDITIONS[n] for n in names]


def apply(cond: Condition, frames: Frames, gt: np.ndarray | None = None,
          seed: int = 0) -> tuple[Frames, np.ndarray, np.ndarray]:
    """``cond`` applied to ``frames`` (and ``gt``): (frames, boxes, index in the loop's stream). A frame-dropping
    condition never drops the first frame, nor a drawn frame of sparsely drawn footage (boxes on some frames
    only); fully boxed sequences lose frames evenly."""
    n = len(frames)
    gt = np.full((n, 4), np.nan) if gt is None else np.asarray(gt, np.float64)
    keep = np.isfinite(gt[:, 0])
    if keep.all():
        keep[:] = False
    keep[0] = True
    return cond.apply(frames, gt, keep, np.random.default_rng(seed))


def apply_sequence(cond: Condition, seq, seed: int = 0):
    """A ``edge.bench.tasks.TrackSequence`` as ``cond``'s camera gives it (same name and tags)."""
    from edge.bench.tasks import TrackSequence
    frames, gt, index = apply(cond, seq.frames, seq.gt, seed)
    return TrackSequence(seq.name, frames, gt, tuple(seq.attributes), index)


def tracker_section(conds: Sequence[Condition], subjects: Sequence, task, anchor_kinds: Sequence[str],
                    log: Callable[[str], None] = print) -> dict:
    """``edge bench --conditions``: every row (our subjects, then the OpenCV anchors that exist) on the task's
    sequences and real shots as each condition gives them: {condition: {"what", "rows": {row: {auc,
    precision20, real_auc}}}}. Seeds follow the sequence order, so every row sees the same frames."""
    from edge.bench import anchors
    from edge.bench.tasks import TrackerTask
    out = {}
    for c in conds:
        seqs = [apply_sequence(c, s, k) for k, s in enumerate(task.sequences)]
        real = [apply_sequence(c, s, 1000 + k) for k, s in enumerate(task.real)]
        t = TrackerTask(seqs, c.what, real, task.params)
        rows = {}
        for sub in subjects:
            m = t.run(sub.engines).metrics
            rows[sub.name] = {k: m.get(k) for k in ("auc", "precision20", "real_auc")}
        for kind in anchor_kinds:
            if anchors.factory(kind)[0] is not None:
                m = anchors.run_anchor(kind, seqs, lambda msg: None, real)["task"]
                rows[f"OpenCV {kind}"] = {k: m.get(k) for k in ("auc", "precision20", "real_auc")}
        out[c.name] = {"what": c.what, "rows": rows}
        log(f"[tracker] condition {c.name}: " + ", ".join(f"{n} {r['auc']:.3f}" for n, r in rows.items()))
        del seqs, real, t
    return out
