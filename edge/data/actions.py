"""Labelled action clips where motion, not appearance, decides the class (torch-free, deterministic per seed).

Retail: ``take`` (a product travels from the shelf to the shopper), ``put_back`` (exactly the ``take`` clip
of the same seed reversed in time), ``pass_by`` (a shopper walks across), ``idle`` (a shopper stands and
sways). In-home: ``fall`` (fast rotation to horizontal + drop to the floor) vs ``sit_down`` (slow vertical
compression). People are person-sized textured shapes, products small textured patches, both cut from
scikit-image photos; backgrounds are crops of real video frames (``edge.assets`` clips, read with OpenCV).

A clip is ``T + 1`` frames (the first only provides the optical flow of the second), HxWx3 uint8 BGR at
``size`` x ``size``. Splits are fixed by seed: clip ``i`` of split ``s`` uses ``SeedSequence([SPLIT_IDS[s], i])``
and class ``CLASSES[i % len(CLASSES)]``.
"""
from __future__ import annotations

import csv
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("idle", "pass_by", "take", "put_back", "sit_down", "fall")
SPLIT_IDS = {"train": 1, "val": 2, "test": 3}
SPLIT_SIZES = {"train": 480, "val": 120, "test": 180}
# photos bundled with scikit-image (no download): person textures and product textures
PERSON_TEXTURES = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina",
                   "rocket", "cat")
PRODUCT_TEXTURES = ("colorwheel", "coffee", "rocket", "astronaut", "logo", "chelsea")
SHELF_TEXTURES = ("brick", "gravel", "grass", "moon", "camera")
BACKGROUND_CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")


# ---------------------------------------------------------------------------------------------- assets
@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """A scikit-image photo as HxWx3 uint8 BGR."""
    from skimage import data
    img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, 2)
    img = img[:, :, :3]
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8) if img.max() <= 1 else img.astype(np.uint8)
    return np.ascontiguousarray(img[:, :, ::-1])


@lru_cache(maxsize=None)
def _background_frames(name: str, every: int = 8, height: int = 240) -> tuple[np.ndarray, ...]:
    """Every ``every``-th frame of a real clip, resized to ``height`` rows (BGR uint8)."""
    from edge.assets import video_clip
    cap = cv2.VideoCapture(str(video_clip(name)))
    frames, k = [], 0
    try:
        while True:
            ok, f = cap.read()
            if not ok:
                break
            if k % every == 0:
                w = round(f.shape[1] * height / f.shape[0])
                frames.append(cv2.resize(f, (w, height), interpolation=cv2.INTER_AREA))
            k += 1
    finally:
        cap.release()
    if not frames:
        raise ValueError(f"background clip {name} has no readable frames")
    return tuple(frames)


def _crop(img: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Random crop of a (h, w)-shaped aspect from img, resized to (h, w)."""
    ih, iw = img.shape[:2]
    scale = rng.uniform(0.35, 0.8) * min(ih / h, iw / w)
    ch, cw = max(8, int(h * scale)), max(8, int(w * scale))
    y, x = rng.integers(0, ih - ch + 1), rng.integers(0, iw - cw + 1)
    return cv2.resize(img[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA)


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    frames = _background_frames(BACKGROUND_CLIPS[rng.integers(len(BACKGROUND_CLIPS))])
    f = frames[rng.integers(len(frames))]
    fh, fw = f.shape[:2]
    side = int(rng.uniform(0.6, 1.0) * min(fh, fw))
    y, x = rng.integers(0, fh - side + 1), rng.integers(0, fw - side + 1)
    bg = cv2.resize(f[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
    return bg[:, ::-1].copy() if rng.random() < 0.5 else bg


# ---------------------------------------------------------------------------------------------- sprites
class Sprite:
    """A textured shape: texture HxWx3 float32 and alpha HxW float32, drawn with an affine pose."""

    def __init__(self, texture: np.ndarray, alpha: np.ndarray):
        self.tex, self.alpha = texture.astype(np.float32), alpha.astype(np.float32)

    @property
    def hw(self) -> tuple[int, int]:
        return self.alpha.shape[:2]

    def draw(self, canvas: np.ndarray, anchor_src: tuple[float, float], anchor_dst: tuple[float, float],
             angle: float = 0.0, sx: float = 1.0, sy: float = 1.0) -> None:
        """Alpha-blend onto ``canvas`` (float32, in place): the sprite point ``anchor_src`` (x, y) lands at
        ``anchor_dst``, after scaling (sx, sy) and rotating by ``angle`` degrees (counter-clockwise)."""
        a = np.deg2rad(angle)
        rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) @ np.diag([sx, sy])
        t = np.asarray(anchor_dst) - rot @ np.asarray(anchor_src)
        m = np.hstack([rot, t[:, None]]).astype(np.float64)
        size = (canvas.shape[1], canvas.shape[0])
        tex = cv2.warpAffine(self.tex, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        al = cv2.warpAffine(self.alpha, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        canvas *= 1 - al[:, :, None]
        canvas += tex * al[:, :, None]


def _person(size: int, rng: np.random.Generator) -> Sprite:
    """Person-sized shape (head + torso + legs) with a photo texture; height ~0.55-0.7 of the frame."""
    h = int(size * rng.uniform(0.55, 0.7))
    w = max(8, int(h * rng.uniform(0.3, 0.38)))
    alpha = np.zeros((h, w), np.float32)
    head_r = w * 0.28
    cv2.circle(alpha, (w // 2, int(head_r) + 1), int(head_r), 1.0, -1, cv2.LINE_AA)
    cv2.rectangle(alpha, (int(w * 0.08), int(head_r * 2)), (int(w * 0.92), int(h * 0.6)), 1.0, -1)
    cv2.rectangle(alpha, (int(w * 0.15), int(h * 0.6)), (int(w * 0.45), h - 1), 1.0, -1)
    cv2.rectangle(alpha, (int(w * 0.55), int(h * 0.6)), (int(w * 0.85), h - 1), 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    tex = _crop(_photo(PERSON_TEXTURES[rng.integers(len(PERSON_TEXTURES))]), h, w, rng)
    return Sprite(tex, alpha)


def _patch(h: int, w: int, names: tuple[str, ...], rng: np.random.Generator) -> Sprite:
    alpha = np.zeros((h, w), np.float32)
    cv2.rectangle(alpha, (1, 1), (w - 2, h - 2), 1.0, -1)
    return Sprite(_crop(_photo(names[rng.integers(len(names))]), h, w, rng), alpha)


def _ease(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, 1)
    return t * t * (3 - 2 * t)


def _window(n: int, rng: np.random.Generator, min_frac: float, max_frac: float) -> tuple[float, float]:
    """A random [t0, t1] sub-interval of frame indices 0..n-1 with length in [min_frac, max_frac] * (n-1)."""
    length = rng.uniform(min_frac, max_frac) * (n - 1)
    t0 = rng.uniform(0, n - 1 - length)
    return t0, t0 + length


# ---------------------------------------------------------------------------------------------- scenes
def _retail(kind: str, n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    bg = _background(size, rng).astype(np.float32)
    side = rng.integers(2)                                  # shelf on the left (0) or right (1)
    shelf_w, shelf_h = int(size * rng.uniform(0.2, 0.28)), int(size * rng.uniform(0.5, 0.7))
    shelf_x = 0 if side == 0 else size - shelf_w
    shelf_y = int(size * rng.uniform(0.1, 0.25))
    shelf = _patch(shelf_h, shelf_w, SHELF_TEXTURES, rng)
    shelf.draw(bg, (0, 0), (shelf_x, shelf_y))
    person = _person(size, rng)
    ph, pw = person.hw
    floor = size * rng.uniform(0.88, 0.98)
    near_x = shelf_x + shelf_w + pw * rng.uniform(0.7, 1.1) if side == 0 else shelf_x - pw * rng.uniform(0.7, 1.1)
    prod_h, prod_w = int(size * rng.uniform(0.09, 0.13)), int(size * rng.uniform(0.08, 0.12))
    product = _patch(prod_h, prod_w, PRODUCT_TEXTURES, rng)
    on_shelf = np.array([shelf_x + shelf_w / 2, shelf_y + shelf_h * rng.uniform(0.3, 0.7)])
    sway = rng.uniform(0.3, 1.2) * np.sin(rng.uniform(0.3, 0.9) * np.arange(n) + rng.uniform(0, 6.3))
    t = np.arange(n, dtype=np.float64)
    if kind == "pass_by":
        direction = 1 if rng.random() < 0.5 else -1
        span = size * rng.uniform(0.45, 0.9)
        x0 = size / 2 - direction * span / 2 + rng.uniform(-0.1, 0.1) * size
        xs = x0 + direction * span * t / (n - 1)
    else:
        xs = near_x + sway
    prod = np.repeat(on_shelf[None], n, 0)
    if kind == "take":
        t0, t1 = _window(n, rng, 0.5, 0.85)
        s = _ease((t - t0) / (t1 - t0))[:, None]
        in_hand = np.array([near_x, floor - ph * rng.uniform(0.45, 0.6)])
        prod = (1 - s) * on_shelf + s * in_hand
        prod[:, 0] += sway * s[:, 0]
    frames = []
    for k in range(n):
        canvas = bg.copy()
        shoulder = (xs[k], floor - ph * 0.72)
        person.draw(canvas, (pw / 2, ph), (xs[k], floor))
        if kind == "take":  # the arm reaches from the shoulder to the product
            cv2.line(canvas, tuple(int(v) for v in shoulder), tuple(int(v) for v in prod[k]),
                     tuple(float(c) for c in person.tex[ph // 2, pw // 2]), max(2, int(pw * 0.18)), cv2.LINE_AA)
        product.draw(canvas, (prod_w / 2, prod_h / 2), tuple(prod[k]))
        frames.append(canvas)
    return frames


def _home(kind: str, n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    bg = _background(size, rng).astype(np.float32)
    person = _person(size, rng)
    ph, pw = person.hw
    floor = size * rng.uniform(0.85, 0.97)
    x = size * rng.uniform(0.3, 0.7)
    t = np.arange(n, dtype=np.float64)
    angle = np.zeros(n)
    sy = np.ones(n)
    drop = np.zeros(n)
    if kind == "fall":
        t0, t1 = _window(n, rng, 0.2, 0.4)                   # fast: 20-40% of the clip
        s = _ease((t - t0) / (t1 - t0))
        direction = 1 if rng.random() < 0.5 else -1
        angle = direction * 90 * s
        drop = s * pw * 0.5                                  # the body ends lying on the floor
    else:  # sit_down: slow compression over 60-95% of the clip
        t0, t1 = _window(n, rng, 0.6, 0.95)
        s = _ease((t - t0) / (t1 - t0))
        sy = 1 - s * rng.uniform(0.35, 0.5)
        angle = s * rng.uniform(-6, 6)
    sway = rng.uniform(0.2, 0.8) * np.sin(rng.uniform(0.3, 0.9) * t + rng.uniform(0, 6.3))
    frames = []
    for k in range(n):
        canvas = bg.copy()
        person.draw(canvas, (pw / 2, ph), (x + sway[k], floor - drop[k] + pw * 0.5 * abs(np.sin(np.deg2rad(angle[k])))),
                    angle=angle[k], sy=sy[k])
        frames.append(canvas)
    return frames


def _finish(frames: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Illumination gain + sensor noise, then uint8."""
    gain = rng.uniform(0.75, 1.2)
    out = []
    for f in frames:
        f = f * gain + rng.normal(0, 2.0, f.shape)
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    return np.stack(out)


def make_clip(seed: int | np.random.SeedSequence | tuple, label: str, frames: int = 9, size: int = 160) -> np.ndarray:
    """One clip [frames, size, size, 3] uint8 BGR of class ``label``, deterministic for (seed, label).

    ``put_back`` is exactly ``take`` of the same seed reversed in time.
    """
    if label not in CLASSES:
        raise ValueError(f"unknown action {label!r} (have: {', '.join(CLASSES)})")
    if frames < 2 or size < 32:
        raise ValueError(f"need frames >= 2 and size >= 32, got frames={frames}, size={size}")
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rng = np.random.default_rng(ss)
    if label == "put_back":
        return make_clip(ss, "take", frames, size)[::-1].copy()
    if label in ("take", "pass_by", "idle"):
        raw = _retail(label, frames, size, rng)
    else:
        raw = _home(label, frames, size, rng)
    return _finish(raw, rng)


def clip_seed(split: str, index: int) -> np.random.SeedSequence:
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r} (have: {', '.join(SPLIT_IDS)})")
    return np.random.SeedSequence([SPLIT_IDS[split], int(index)])


def split_labels(split: str, count: int | None = None) -> list[str]:
    n = SPLIT_SIZES[split] if count is None else count
    return [CLASSES[i % len(CLASSES)] for i in range(n)]


def iter_split(split: str, count: int | None = None, frames: int = 9, size: int = 160):
    """Yield (index, label, clip) for the fixed split (``count`` clips; default ``SPLIT_SIZES[split]``)."""
    for i, label in enumerate(split_labels(split, count)):
        yield i, label, make_clip(clip_seed(split, i), label, frames, size)


def write_clips(out_dir: str | Path, split: str = "test", count: int | None = None, frames: int = 9,
                size: int = 160, fps: float = 25.0) -> Path:
    """Write the split as MJPG ``.avi`` files + ``labels.csv`` (file, label, split, index); returns the CSV.

    Note: MJPG is lossy, so decoded pixels differ slightly from ``make_clip``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, label, clip in iter_split(split, count, frames, size):
        name = f"{split}_{i:04d}_{label}.avi"
        fd, tmp = tempfile.mkstemp(dir=out, prefix="." + name, suffix=".avi")
        os.close(fd)
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
        try:
            if not writer.isOpened():
                raise OSError(f"cannot open a video writer for {tmp}")
            for f in clip:
                writer.write(f)
        finally:
            writer.release()
        os.replace(tmp, out / name)
        rows.append((name, label, split, i))
    csv_path = out / "labels.csv"
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".labels", suffix=".csv")
    with os.fdopen(fd, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("file", "label", "split", "index"))
        w.writerows(rows)
    os.replace(tmp, csv_path)
    return csv_path
