"""Real footage with hand-drawn boxes (``edge/data/real_tracking.json``) as tracking sequences.

Each entry names a clip of an installed asset package (``edge.data.real_sources.video_path``), a frame range and
boxes drawn by eye on some of its frames (``null``: the target is fully hidden). A sequence holds every frame of
the range; its ground truth is NaN where no box was drawn, so ``edge.eval.otb.evaluate`` scores the drawn frames
only (as got10k scores GOT-10k's visible frames). The first frame of the range must carry a box: it is the
tracker's init box. Evaluation data only: nothing may be tuned on it. Torch-free.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge.bench.tasks import TrackSequence
from edge.data.sequences import read_video

ANNOTATIONS = Path(__file__).resolve().parents[1] / "data" / "real_tracking.json"


class AnnotationError(ValueError):
    """The annotation file is malformed or does not fit its clip."""


def load_annotations(path: str | Path = ANNOTATIONS) -> list[dict]:
    """The entries of the annotation file, checked for shape (frames inside the range, the first one drawn,
    4 positive numbers per box); a bad entry is a one-line :class:`AnnotationError`."""
    try:
        data = json.loads(Path(path).read_text())
        entries = data["sequences"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AnnotationError(f"{path}: not a real-footage annotation file ({e})") from None
    for e in entries:
        name = e.get("name", "?")
        start, end, boxes = e.get("start"), e.get("end"), e.get("boxes")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end and isinstance(boxes, dict)):
            raise AnnotationError(f"{path}: {name}: needs integer start < end and a boxes object")
        for k, b in boxes.items():
            if not (k.isdigit() and start <= int(k) <= end):
                raise AnnotationError(f"{path}: {name}: frame {k} outside {start}..{end}")
            if b is not None and not (isinstance(b, list) and len(b) == 4 and b[2] > 0 and b[3] > 0):
                raise AnnotationError(f"{path}: {name}: frame {k}: a box is [x, y, w, h] with w, h > 0 or null")
        if boxes.get(str(start)) is None:
            raise AnnotationError(f"{path}: {name}: the first frame ({start}) must carry the init box")
        if sum(b is not None for b in boxes.values()) < 2:
            raise AnnotationError(f"{path}: {name}: needs a drawn box after the init frame to score")
    return entries


def real_sequences(path: str | Path = ANNOTATIONS, log=print, max_frames: int | None = None) -> list[TrackSequence]:
    """The annotated real sequences whose clips are installed (others skipped with a message); with
    ``max_frames`` each is cut to its first ``max_frames`` frames, as ``edge bench --max-frames`` cuts the
    generated ones (a shot left with no drawn box after its init frame is skipped)."""
    from edge.assets import AssetMissing
    from edge.data.real_sources import video_path
    out = []
    for e in load_annotations(path):
        try:
            video = video_path(e["source"])
        except (AssetMissing, ValueError) as err:
            log(f"skipping {e['name']}: {err}")
            continue
        end = e["end"] if max_frames is None else min(e["end"], e["start"] + max_frames - 1)
        if not any(b is not None and e["start"] < int(k) <= end for k, b in e["boxes"].items()):
            log(f"skipping {e['name']}: no drawn box in its first {max_frames} frames")
            continue
        frames = read_video(video, e["start"], end + 1)
        if len(frames) != end - e["start"] + 1:
            raise AnnotationError(f"{e['name']}: {video.name} has no frames {e['start']}..{end} "
                                  f"(read {len(frames)})")
        h, w = frames[0].shape[:2]
        gt = np.full((len(frames), 4), np.nan)
        for k, b in e["boxes"].items():
            if b is not None and int(k) <= end:
                if b[0] < 0 or b[1] < 0 or b[0] + b[2] > w or b[1] + b[3] > h:
                    raise AnnotationError(f"{e['name']}: frame {k}: box {b} outside the {w}x{h} frame")
                gt[int(k) - e["start"]] = b
        out.append(TrackSequence(e["name"], frames, gt, tuple(e.get("attributes", ()))))
    return out
