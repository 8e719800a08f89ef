"""Calibration data: video sources, frame plans spread over the videos, and the saved calibration set.

A source is a video file, an image-sequence folder (OTB ``img/`` + ``groundtruth_rect.txt``, GOT-10k
``*.jpg`` + ``groundtruth.txt``) or a folder holding those. Frames are drawn as short consecutive segments
(trackers and flow need consecutive frames) whose starts are spread uniformly over all frames of all sources,
with a seeded jitter: the plan is a function of (sources, frames, segment length, seed) only.

The calibration set (``CalibSet``: per network a list of input dicts) is saved as one ``.npz`` written
atomically, tagged with a format string and a key (data + seed + N + networks); a file that is not one of
ours, is truncated, or has another key is refused with a one-line error.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from edge.data.sequences import GROUNDTRUTH_FILES, IMAGE_EXTS, read_groundtruth, read_image
from edge.fileio import atomic_write_bytes

FORMAT = "edge-calibset/1"
VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


@dataclass
class Source:
    """One video or image sequence; ``boxes`` [F,4] x,y,w,h when the folder has ground truth."""
    path: Path
    kind: str                      # "video" | "images"
    frames: list[Path] = field(default_factory=list)   # image files (kind == "images")
    count: int = 0
    boxes: np.ndarray | None = None

    def read(self, indices: Sequence[int]) -> dict[int, np.ndarray]:
        """Frames (HxWx3 uint8 BGR) at ``indices``."""
        want = set(int(i) for i in indices)
        out: dict[int, np.ndarray] = {}
        if self.kind == "images":
            return {i: read_image(self.frames[i]) for i in sorted(want)}
        cap = cv2.VideoCapture(str(self.path))
        try:
            i, last = 0, max(want) if want else -1
            while i <= last:
                ok = cap.grab()
                if not ok:
                    break
                if i in want:
                    ok, img = cap.retrieve()
                    if ok:
                        out[i] = img
                i += 1
        finally:
            cap.release()
        return out


def _gt(folder: Path) -> np.ndarray | None:
    """The folder's OTB / GOT-10k ground truth, if it has a readable one (``edge.data.sequences``)."""
    for name in GROUNDTRUTH_FILES.values():
        if (folder / name).is_file():
            try:
                return read_groundtruth(folder / name)
            except ValueError:
                return None
    return None


def _video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise ValueError(f"video {path} has no readable frames")
    return n


def find_sources(paths: Sequence[str | Path]) -> list[Source]:
    """Expand ``--data`` arguments into sources (sorted, so the plan does not depend on listing order)."""
    found: list[Source] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"calibration data not found: {p}")
        if p.is_file():
            if p.suffix.lower() not in VIDEO_EXT:
                raise ValueError(f"{p} is not a video ({', '.join(sorted(VIDEO_EXT))}) or a folder")
            found.append(Source(p.resolve(), "video", count=_video_frames(p)))
            continue
        found.extend(_folder_sources(p))
    if not found:
        raise ValueError(f"no videos or image sequences in {', '.join(map(str, paths))}")
    return found


def _folder_sources(folder: Path) -> list[Source]:
    img_dir = folder / "img" if (folder / "img").is_dir() else folder
    images = sorted(f for f in img_dir.iterdir() if f.suffix.lower() in IMAGE_EXTS)
    if images:
        return [Source(folder.resolve(), "images", images, len(images), _gt(folder))]
    out = []
    for sub in sorted(folder.iterdir()):
        if sub.is_file() and sub.suffix.lower() in VIDEO_EXT:
            out.append(Source(sub.resolve(), "video", count=_video_frames(sub)))
        elif sub.is_dir():
            out.extend(_folder_sources(sub))
    return out


@dataclass(frozen=True)
class Segment:
    source: int      # index into the sources
    start: int
    length: int


def plan(sources: Sequence[Source], frames: int, length: int, seed: int) -> list[Segment]:
    """ceil(frames / length) segments of ``length`` consecutive frames, starts spread uniformly (seeded
    jitter within each stratum) over the concatenated frames of all sources."""
    if frames < 1 or length < 1:
        raise ValueError(f"--frames must be >= 1 (got {frames})")
    usable = [max(s.count - length + 1, 1) for s in sources]   # valid starts per source
    total = sum(usable)
    n = max(1, math.ceil(frames / length))
    rng = np.random.default_rng(seed)
    offsets = np.cumsum([0] + usable)
    segs = []
    for k in range(n):
        pos = int(min((k + rng.random()) * total / n, total - 1))
        si = int(np.searchsorted(offsets, pos, side="right") - 1)
        start = pos - int(offsets[si])
        segs.append(Segment(si, start, min(length, sources[si].count - start)))
    return segs


def iter_segments(sources: Sequence[Source], segs: Sequence[Segment]) -> Iterator[tuple[Segment, list[np.ndarray]]]:
    """Decode each source once and yield (segment, its frames) in plan order."""
    by_src: dict[int, list[Segment]] = {}
    for s in segs:
        by_src.setdefault(s.source, []).append(s)
    frames: dict[tuple[int, int], np.ndarray] = {}
    for si, ss in by_src.items():
        idx = sorted({i for s in ss for i in range(s.start, s.start + s.length)})
        for i, img in sources[si].read(idx).items():
            frames[(si, i)] = img
    for s in segs:
        got = [frames[(s.source, i)] for i in range(s.start, s.start + s.length) if (s.source, i) in frames]
        if got:
            yield s, got


def data_key(sources: Sequence[Source], frames: int, seed: int, extra: dict) -> str:
    """Key of a calibration set: which data (path, size, mtime), N, seed, and the networks it feeds."""
    h = hashlib.sha256()
    for s in sources:
        st = s.path.stat()
        h.update(f"{s.path}|{s.kind}|{s.count}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update(json.dumps({"frames": frames, "seed": seed, **extra}, sort_keys=True).encode())
    return h.hexdigest()[:20]


# --------------------------------------------------------------------------------------------------------
CalibSet = dict


class CalibSetError(ValueError):
    """A calibration set file that cannot be used (one-line message with the fix)."""
  # {network: [ {input: array} ... ]}


def save_set(path: str | Path, calib: CalibSet, key: str, meta: dict | None = None) -> Path:
    arrays = {}
    for net, samples in calib.items():
        for i, s in enumerate(samples):
            for name, a in s.items():
                arrays[f"{net}/{i:05d}/{name}"] = np.asarray(a)
    head = {"format": FORMAT, "key": key, "networks": {n: len(v) for n, v in calib.items()}, **(meta or {})}
    arrays["__meta__"] = np.frombuffer(json.dumps(head).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def load_set(path: str | Path, key: str | None = None) -> tuple[CalibSet, dict]:
    """Read a calibration set; any problem is a one-line ValueError naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration set not found: {path}")
    fix = "delete it and run edge calibrate again"
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__meta__" not in z.files:
                raise CalibSetError(f"{path} is not an edge calibration set (no metadata); {fix}")
            head = json.loads(bytes(z["__meta__"]).decode())
            if head.get("format") != FORMAT:
                raise CalibSetError(f"{path} is not an edge calibration set (format {head.get('format')!r}, "
                                 f"expected {FORMAT!r}); {fix}")
            if key is not None and head.get("key") != key:
                raise CalibSetError(f"{path} was made from other data/seed/frames (key {head.get('key')} != {key}); "
                                 f"{fix}")
            calib: CalibSet = {n: [dict() for _ in range(int(c))] for n, c in head["networks"].items()}
            for k in z.files:
                if k == "__meta__":
                    continue
                net, i, name = k.split("/", 2)
                calib[net][int(i)][name] = z[k]
    except CalibSetError:
        raise
    except Exception as e:  # zip/npz/JSON damage of any kind
        raise CalibSetError(f"calibration set {path} is broken ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                         f"{fix}") from None
    if any(not s for v in calib.values() for s in v):
        raise CalibSetError(f"calibration set {path} is incomplete (missing samples); {fix}")
    return calib, head


def split(samples: Sequence[dict], every: int = 4) -> tuple[list[dict], list[dict]]:
    """(calibration, held-out): every ``every``-th sample is held out for the accuracy check."""
    samples = list(samples)
    if len(samples) < 2:
        return samples, samples
    held = samples[every - 1::every] or samples[-1:]
    ids = {id(s) for s in held}
    return [s for s in samples if id(s) not in ids], held
