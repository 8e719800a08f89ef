"""Readers for tracking sequences in OTB and GOT-10k folder layouts (torch-free).

- OTB: ``<seq>/img/0001.jpg ...`` + ``<seq>/groundtruth_rect.txt`` (x, y, w, h per line; commas, tabs or
  spaces).
- GOT-10k: ``<seq>/00000001.jpg ...`` + ``<seq>/groundtruth.txt`` (comma-separated; the test split has only
  the first line).

Optional attribute tags (OTB-style codes such as ``SV``, ``OCC``): ``<seq>/attributes.txt`` (comma- or
whitespace-separated), else ``meta.json``'s ``attributes`` list (what ``edge.data.tracking_gen`` writes).

Bad folders raise one-line ``FileNotFoundError`` / ``ValueError``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
GROUNDTRUTH_FILES = {"otb": "groundtruth_rect.txt", "got10k": "groundtruth.txt"}
ATTRIBUTES_FILE = "attributes.txt"


@dataclass
class Sequence:
    name: str
    frames: list[Path]        # image paths in frame order
    boxes: np.ndarray         # [N, 4] x, y, w, h (N = len(frames), or 1 for GOT-10k test sequences)
    format: str
    attributes: tuple[str, ...] = field(default_factory=tuple)   # OTB-style tags, e.g. ("SV", "OCC")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def init_box(self) -> np.ndarray:
        return self.boxes[0]

    def images(self) -> Iterator[np.ndarray]:
        """Frames as HxWx3 uint8 BGR arrays."""
        for p in self.frames:
            yield read_image(p)


def read_image(path: str | Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return img


read_frame = read_image


def read_video(path: str | Path, start: int = 0, stop: int | None = None) -> list[np.ndarray]:
    """Frames ``start`` .. ``stop - 1`` (default: every frame) of a video file, decoded with OpenCV (BGR uint8);
    [] when it cannot be read. Decoding stops at ``stop``; frames before ``start`` are decoded, not kept."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    i = 0
    while stop is None or i < stop:
        ok, frame = cap.read()
        if not ok:
            break
        if i >= start:
            frames.append(frame)
        i += 1
    cap.release()
    return frames


def read_groundtruth(path: str | Path) -> np.ndarray:
    """[N, 4] float boxes from a text file; one-line errors for a missing, empty or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground truth not found: {path}")
    rows = []
    for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = [p for p in re.split(r"[,\s]+", line.strip()) if p]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{path}:{i}: not numbers: {line.strip()[:80]!r}") from None
        if len(vals) != 4:
            raise ValueError(f"{path}:{i}: expected 4 values x,y,w,h, got {len(vals)}")
        rows.append(vals)
    if not rows:
        raise ValueError(f"{path}: empty ground truth")
    return np.asarray(rows, np.float64)


def read_attributes(folder: str | Path) -> tuple[str, ...]:
    """A sequence's attribute tags: ``attributes.txt``, else ``meta.json``'s ``attributes``, else ()."""
    folder = Path(folder)
    path = folder / ATTRIBUTES_FILE
    if path.is_file():
        return tuple(t for t in re.split(r"[,\s]+", path.read_text(errors="replace")) if t)
    meta = folder / "meta.json"
    if meta.is_file():
        try:
            tags = json.loads(meta.read_text()).get("attributes")
        except (ValueError, AttributeError):
            raise ValueError(f"{meta}: not a JSON object") from None
        if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
            return tuple(tags)
    return ()


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS) if folder.is_dir() else []


def detect_format(folder: str | Path) -> str:
    folder = Path(folder)
    if (folder / GROUNDTRUTH_FILES["otb"]).exists() or (folder / "img").is_dir():
        return "otb"
    if (folder / GROUNDTRUTH_FILES["got10k"]).exists():
        return "got10k"
    raise FileNotFoundError(f"{folder}: not an OTB ({GROUNDTRUTH_FILES['otb']} + img/) or GOT-10k "
                            f"({GROUNDTRUTH_FILES['got10k']}) sequence folder")


def read_sequence(folder: str | Path, fmt: str | None = None) -> Sequence:
    """Read one sequence folder (format detected unless given)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"sequence folder not found: {folder}")
    fmt = fmt or detect_format(folder)
    if fmt not in GROUNDTRUTH_FILES:
        raise ValueError(f"unknown sequence format {fmt!r} (otb or got10k)")
    frames = _images(folder / "img" if fmt == "otb" else folder)
    if not frames:
        raise FileNotFoundError(f"{folder}: no images in {'img/' if fmt == 'otb' else 'the folder'}")
    boxes = read_groundtruth(folder / GROUNDTRUTH_FILES[fmt])
    if len(boxes) != len(frames) and not (fmt == "got10k" and len(boxes) == 1):
        raise ValueError(f"{folder}: {len(boxes)} ground-truth boxes for {len(frames)} frames")
    b0 = boxes[0]
    if not (np.isfinite(b0).all() and b0[2] > 0 and b0[3] > 0):
        raise ValueError(f"{folder}: first ground-truth box {b0.tolist()} has no area")
    return Sequence(folder.name, frames, boxes, fmt, read_attributes(folder))


def find_sequences(root: str | Path) -> list[Sequence]:
    """Every OTB/GOT-10k sequence folder at ``root`` (itself a sequence, or its sub-folders), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    try:
        detect_format(root)
        return [read_sequence(root)]
    except FileNotFoundError:
        pass
    seqs = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            detect_format(sub)
        except FileNotFoundError:
            continue
        seqs.append(read_sequence(sub))
    if not seqs:
        raise FileNotFoundError(f"{root}: no OTB or GOT-10k sequence folders found")
    return seqs
