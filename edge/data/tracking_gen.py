"""Tracking sequences with exact ground truth: real photo textures moving over a real video (reference side).

A target (a textured patch cut from a scikit-image photo) moves over consecutive frames of the real street
clip ``bikes.mp4`` along a smooth random path with scale change; the sequence also has a partial occlusion
(a patch of another photo crossing the target), a look-alike distractor (the same texture, mirrored and
colour-shifted, passing close by), an illumination dip and a fast segment with motion blur. Everything is
drawn at sub-pixel positions with ``cv2.warpAffine``, so the box is exact: ``[x, y, w, h]`` with pixel
``i`` covering ``[i, i + 1)``. Deterministic per seed. Written in OTB folder format (``img/0001.jpg``,
``groundtruth_rect.txt``) or GOT-10k format (``00000001.jpg``, ``groundtruth.txt``).

    python -m edge.data.tracking_gen OUT_DIR [--count 3] [--length 100] [--seed 0] [--format otb]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

TARGET_PHOTOS = ("chelsea", "astronaut", "coffee", "stereo_motorcycle")
OCCLUDER_PHOTOS = TARGET_PHOTOS + ("rocket", "immunohistochemistry")


@dataclass
class GeneratedSequence:
    name: str
    frames: list[np.ndarray]               # HxWx3 uint8 BGR
    boxes: np.ndarray                      # [N, 4] float x, y, w, h
    events: dict = field(default_factory=dict)


def _photo(name: str) -> np.ndarray:
    import skimage.data
    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
        img = img[0]
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2BGR)


def _texture(rng: np.random.Generator, photos: tuple[str, ...], exclude: str | None = None,
             aspect: float = 1.0) -> tuple[str, np.ndarray]:
    """A detailed crop (highest gradient energy of a few random ones) of a random photo, ~aspect w/h."""
    names = [n for n in photos if n != exclude]
    name = names[rng.integers(len(names))]
    img = _photo(name)
    h, w = img.shape[:2]
    th = int(min(h, w) * rng.uniform(0.3, 0.5))
    tw = int(min(w - 1, th * aspect))
    best, best_e = None, -1.0
    for _ in range(12):
        y, x = rng.integers(0, h - th), rng.integers(0, w - tw)
        c = img[y:y + th, x:x + tw]
        g = cv2.cvtColor(c, cv2.COLOR_BGR2GRAY).astype(np.float32)
        e = float(np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)).mean() + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1)).mean())
        if e > best_e:
            best, best_e = c, e
    return name, np.ascontiguousarray(best)


def _background_frames(start: int, count: int, scale: float) -> list[np.ndarray]:
    """``count`` consecutive frames of bikes.mp4 from ``start`` (ping-pong past the end), resized by scale."""
    from edge.assets import video_clip
    cap = cv2.VideoCapture(str(video_clip("bikes.mp4")))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 250
    period = max(2 * total - 2, 1)                       # ping-pong: 0 .. total-1 .. 1
    idx = [(start + i) % period for i in range(count)]
    idx = [i if i < total else period - i for i in idx]
    frames = []
    while len(frames) <= max(idx):                       # decode only as far as needed
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    if not frames:
        raise ValueError("cannot decode bikes.mp4 with OpenCV")
    out = [frames[min(i, len(frames) - 1)] for i in idx]
    if scale != 1.0:
        size = (int(round(out[0].shape[1] * scale)), int(round(out[0].shape[0] * scale)))
        out = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in out]
    return out


def _alpha(x: float, y: float, w: float, h: float, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Coverage of frame pixels [y0:y1, x0:x1] by a rounded rectangle whose bounding box is exactly
    (x, y, w, h): 0.5 - signed distance (px) at pixel centres, clipped, so the edge sits on the box at any
    scale (no resampled mask)."""
    r = 0.2 * min(w, h)
    qx = np.abs(np.arange(x0, x1) + 0.5 - (x + w / 2)) - (w / 2 - r)
    qy = np.abs(np.arange(y0, y1) + 0.5 - (y + h / 2)) - (h / 2 - r)
    qx, qy = np.broadcast_arrays(qx[None], qy[:, None])
    sdf = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - r
    return np.clip(0.5 - sdf, 0, 1).astype(np.float32)


def _paste(frame: np.ndarray, tex: np.ndarray, box, blur: np.ndarray | None = None) -> None:
    """Draw ``tex`` into ``frame`` (float32, in place) as a rounded patch whose bounding box is ``box``."""
    x, y, w, h = box
    th, tw = tex.shape[:2]
    sx, sy = w / tw, h / th
    m = np.array([[sx, 0, x - 0.5 + 0.5 * sx], [0, sy, y - 0.5 + 0.5 * sy]])
    pad = 2 + (0 if blur is None else blur.shape[0])
    x0, y0 = max(int(np.floor(x)) - pad, 0), max(int(np.floor(y)) - pad, 0)
    x1, y1 = min(int(np.ceil(x + w)) + pad, frame.shape[1]), min(int(np.ceil(y + h)) + pad, frame.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    m[:, 2] -= (x0, y0)
    spr = cv2.warpAffine(tex.astype(np.float32), m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    a = _alpha(x, y, w, h, x0, y0, x1, y1)
    if blur is not None:
        spr = cv2.filter2D(spr * a[..., None], -1, blur)
        a = cv2.filter2D(a, -1, blur)
        spr = spr / np.maximum(a[..., None], 1e-6)
    region = frame[y0:y1, x0:x1]
    region *= 1 - a[..., None]
    region += spr * a[..., None]


def _blur_kernel(vx: float, vy: float, length: float) -> np.ndarray | None:
    n = int(round(length))
    if n < 2:
        return None
    k = np.zeros((2 * n + 1, 2 * n + 1), np.float32)
    d = np.array([vx, vy]) / (np.hypot(vx, vy) + 1e-9)
    for t in np.linspace(-n / 2, n / 2, 2 * n + 1):
        k[int(round(n + t * d[1])), int(round(n + t * d[0]))] = 1
    return k / k.sum()


def render_sequence(seed: int, length: int = 100, scale: float = 1.0, name: str | None = None) -> GeneratedSequence:
    """Render one sequence (deterministic per seed) in memory."""
    if length < 2:
        raise ValueError(f"sequence length must be >= 2, got {length}")
    rng = np.random.default_rng(seed)
    bg = _background_frames(int(rng.integers(0, 250)), length, scale)
    fh, fw = bg[0].shape[:2]
    aspect = float(np.exp(rng.uniform(-0.4, 0.4)))
    tex_name, tex = _texture(rng, TARGET_PHOTOS, aspect=aspect)
    base_h = rng.uniform(0.2, 0.3) * fh
    base = np.array([base_h * tex.shape[1] / tex.shape[0], base_h])
    t = np.arange(length, dtype=np.float64)

    # smooth path: sum of sinusoids, a fast segment, kept inside the frame
    fast = (int(0.12 * length), int(0.22 * length))
    speed = np.ones(length)
    speed[fast[0]:fast[1]] = 2.0
    phase_t = np.cumsum(speed) - speed[0]
    cx = np.zeros(length)
    cy = np.zeros(length)
    for amp, axis in ((0.30, cx), (0.10, cx), (0.22, cy), (0.08, cy)):
        period = rng.uniform(120, 240) * (0.5 if amp < 0.2 else 1.0)   # frames: speed independent of length
        axis += amp * np.sin(2 * np.pi * phase_t / period + rng.uniform(0, 2 * np.pi))
    scale_t = np.exp(0.3 * np.sin(2 * np.pi * t / rng.uniform(80, 160) + rng.uniform(0, 2 * np.pi)))
    wh = base[None] * scale_t[:, None]
    cx = fw / 2 + cx * (fw - wh[:, 0] * 1.2)
    cy = fh / 2 + cy * (fh - wh[:, 1] * 1.2)
    boxes = np.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, wh[:, 0], wh[:, 1]], 1)

    # occluder: a patch of another photo sliding across part of the target
    occ = (int(0.30 * length), int(0.42 * length))
    _, occ_tex = _texture(rng, OCCLUDER_PHOTOS, exclude=tex_name, aspect=0.6)
    occ_side = rng.choice([-1.0, 1.0])
    # look-alike distractor: mirrored, colour-shifted copy passing close by around frame 0.6 * length
    dis_tex = np.clip(tex[:, ::-1].astype(np.float32) * rng.uniform(0.85, 1.15, 3), 0, 255)
    t_close = 0.6 * length
    ang_off = rng.uniform(-0.8, 0.8) + 0.02 * (t - t_close)
    # illumination dip (whole frame) and a target-only shadow
    light = 1.0 - 0.4 * np.exp(-0.5 * ((t - 0.8 * length) / (0.06 * length)) ** 2)

    frames = []
    for i in range(length):
        f = bg[i].astype(np.float32)
        w, h = boxes[i, 2:]
        dist = (1.25 + 2.5 * abs(i - t_close) / length) * np.hypot(w, h)
        c = boxes[i, :2] + boxes[i, 2:] / 2
        a = np.arctan2(fh / 2 - c[1], fw / 2 - c[0]) + ang_off[i]  # towards the frame centre: stays visible
        dc = c + dist * np.array([np.cos(a), np.sin(a)])
        _paste(f, dis_tex, (dc[0] - w / 2, dc[1] - h / 2, w, h))
        v = boxes[min(i + 1, length - 1), :2] - boxes[max(i - 1, 0), :2]
        blur = _blur_kernel(v[0], v[1], 0.8 * np.hypot(*v) / 2) if fast[0] <= i < fast[1] else None
        _paste(f, tex, boxes[i], blur)
        if occ[0] <= i < occ[1]:
            k = (i - occ[0]) / max(occ[1] - occ[0] - 1, 1)
            ow, oh = 0.45 * w, 1.3 * h
            ox = boxes[i, 0] + w / 2 + occ_side * (1.2 - 1.6 * k) * w - ow / 2
            _paste(f, occ_tex, (ox, boxes[i, 1] - 0.15 * h, ow, oh))
        f *= light[i]
        frames.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
    events = {"texture": tex_name, "fast_motion_blur": list(fast), "occlusion": list(occ),
              "distractor_closest": int(t_close), "illumination_dip": int(0.8 * length), "seed": int(seed)}
    return GeneratedSequence(name or f"gen{seed:04d}", frames, boxes, events)


def write_sequence(seq: GeneratedSequence, root: str | Path, fmt: str = "otb") -> Path:
    """Write ``seq`` under ``root/<name>`` (OTB or GOT-10k layout), atomically (tmp folder + rename)."""
    if fmt not in ("otb", "got10k"):
        raise ValueError(f"unknown sequence format {fmt!r} (otb or got10k)")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / seq.name
    tmp = root / f".{seq.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    img_dir = tmp / "img" if fmt == "otb" else tmp
    img_dir.mkdir(parents=True)
    for i, f in enumerate(seq.frames, 1):
        path = img_dir / (f"{i:04d}.jpg" if fmt == "otb" else f"{i:08d}.jpg")
        if not cv2.imwrite(str(path), f, [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise OSError(f"cannot write {path}")
    gt = "groundtruth_rect.txt" if fmt == "otb" else "groundtruth.txt"
    np.savetxt(tmp / gt, seq.boxes, fmt="%.3f", delimiter=",")
    (tmp / "meta.json").write_text(json.dumps(seq.events, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def generate_dataset(root: str | Path, count: int = 3, length: int = 100, seed: int = 0, scale: float = 1.0,
                     fmt: str = "otb") -> list[Path]:
    """``count`` sequences ``gen<seed+i>`` under ``root``; returns their folders."""
    return [write_sequence(render_sequence(seed + i, length, scale), root, fmt) for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate tracking sequences with exact ground truth.")
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--length", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0, help="background resize factor")
    ap.add_argument("--format", choices=("otb", "got10k"), default="otb")
    a = ap.parse_args(argv)
    for p in generate_dataset(a.out, a.count, a.length, a.seed, a.scale, a.format):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
