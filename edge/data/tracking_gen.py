"""Tracking sequences with exact ground truth: real photo textures moving over a real video (reference side).

A target (a textured patch cut from a scikit-image photo) moves over consecutive frames of a real clip along
a smooth random path. Each sequence carries three OTB-style attributes (``ATTRIBUTES``, cycled by seed so 24
sequences tag each attribute 9 times): scale variation up to 3x (SV), a small target (LR), occlusion with a
short full cover (OCC), a look-alike distractor crossing close by (BC), motion blur (MB), fast motion (FM),
illumination change of frame and target (IV), camera shake (CS). Everything is drawn at sub-pixel positions
with ``cv2.warpAffine``, so the box is exact: ``[x, y, w, h]`` with pixel ``i`` covering ``[i, i + 1)``.
Deterministic per seed. ``split`` picks photos and background videos from ``edge.data.splits`` (train and
test never share one). Written in OTB folder format (``img/0001.jpg``, ``groundtruth_rect.txt``,
``attributes.txt``, ``meta.json``) or GOT-10k format (``00000001.jpg``, ``groundtruth.txt``).

    python -m edge.data.tracking_gen OUT_DIR [--count 24] [--length 100] [--seed 0] [--format otb] [--split test]
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

from edge.data.splits import PHOTOS as _SPLIT_PHOTOS

TARGET_PHOTOS = _SPLIT_PHOTOS["test"]   # the benchmark's textures (edge.data.splits)
DEFAULT_COUNT = 24                       # sequences: every attribute in 9 of them (sequence_attributes)
ATTRIBUTES_FILE = "attributes.txt"       # OTB-style tags, comma-separated codes (edge.data.sequences)


@dataclass
class GeneratedSequence:
    name: str
    frames: list[np.ndarray]               # HxWx3 uint8 BGR
    boxes: np.ndarray                      # [N, 4] float x, y, w, h
    events: dict = field(default_factory=dict)
    distractors: np.ndarray | None = None  # [N, 4] the look-alike's box per frame (NaN: none); not written


def _photo(name: str) -> np.ndarray:
    """A scikit-image photo by name, or ``mpl:<file>`` from matplotlib's sample data (BGR uint8)."""
    if name.startswith("mpl:"):
        import matplotlib
        path = Path(matplotlib.get_data_path()) / "sample_data" / name[4:]
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"matplotlib sample image {name[4:]} not found")
        return img
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


def _background_frames(start: int, count: int, scale: float, video: str = "bikes.mp4") -> list[np.ndarray]:
    """``count`` consecutive frames of ``video`` from ``start`` (ping-pong past the end), resized by scale."""
    from edge.assets import video_clip
    cap = cv2.VideoCapture(str(video_clip(video)))
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
        raise ValueError(f"cannot decode {video} with OpenCV")
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


# OTB-style attribute codes of the generated sequences (OTB's names where OTB has the attribute; CS is ours)
ATTRIBUTES = {
    "SV": "scale variation (the target grows or shrinks 2-3x)",
    "LR": "small target (low resolution: 12-24 px tall)",
    "OCC": "occlusion (partial, with a short full occlusion)",
    "BC": "look-alike distractor (the same texture, colour-shifted, crossing close by)",
    "MB": "motion blur",
    "FM": "fast motion (up to ~0.5 target sizes per frame)",
    "IV": "illumination variation (frame and target)",
    "CS": "camera shake (whole-frame jitter)",
}
_CODES = tuple(ATTRIBUTES)


def sequence_attributes(seed: int) -> tuple[str, ...]:
    """The attributes of sequence ``seed``: three codes from a fixed cycle, so any 24 consecutive seeds tag
    every attribute in 9 sequences (deterministic; combinations vary with the seed)."""
    picks = {_CODES[seed % 8], _CODES[(3 * seed + 1) % 8], _CODES[(5 * seed + 2) % 8]}
    return tuple(c for c in _CODES if c in picks)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def _fit_background(frames: list[np.ndarray], min_h: int = 272, max_w: int = 640) -> list[np.ndarray]:
    """Resize clip frames to a working size (height >= min_h unless that makes them wider than 2x max_w)."""
    h, w = frames[0].shape[:2]
    s = min(max(min_h / h, 1.0) if h < min_h else max_w / w, 2 * max_w / w)
    if abs(s - 1) < 1e-6:
        return frames
    size = (int(round(w * s)), int(round(h * s)))
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR) for f in frames]


def render_sequence(seed: int, length: int = 100, scale: float = 1.0, name: str | None = None,
                    split: str = "test", attributes: tuple[str, ...] | None = None) -> GeneratedSequence:
    """Render one sequence (deterministic per seed) in memory. ``split`` picks the photo textures and the
    background video (``edge.data.splits``: train and test never share them); ``attributes`` (codes of
    ``ATTRIBUTES``, default ``sequence_attributes(seed)``) say which difficulties it has."""
    from edge.data.splits import photos, videos
    if length < 2:
        raise ValueError(f"sequence length must be >= 2, got {length}")
    attrs = tuple(sequence_attributes(seed) if attributes is None else attributes)
    unknown = set(attrs) - set(ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown sequence attributes {sorted(unknown)} (have {', '.join(ATTRIBUTES)})")
    rng = np.random.default_rng(seed)
    pool, clips = photos(split), videos(split)
    video = clips[int(rng.integers(len(clips)))]
    bg = _background_frames(int(rng.integers(0, 250)), length, 1.0, video)
    bg = _fit_background(bg)
    if scale != 1.0:
        size = (int(round(bg[0].shape[1] * scale)), int(round(bg[0].shape[0] * scale)))
        bg = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in bg]
    fh, fw = bg[0].shape[:2]
    aspect = float(np.exp(rng.uniform(-0.4, 0.4)))
    tex_name, tex = _texture(rng, pool, aspect=aspect)
    t = np.arange(length, dtype=np.float64)
    u = t / max(length - 1, 1)

    # size over time: a mild wobble; SV: a 2-3x ramp (grow or shrink); LR: small
    if "LR" in attrs:
        base_h = rng.uniform(12, 24) * scale
    else:
        base_h = rng.uniform(0.15, 0.28) * fh
    scale_t = np.exp(0.15 * np.sin(2 * np.pi * t / rng.uniform(60, 140) + rng.uniform(0, 2 * np.pi)))
    if "SV" in attrs:
        factor = rng.uniform(2.0, 3.0)
        t0, t1 = sorted(rng.uniform(0.1, 0.9, 2))
        t1 = max(t1, t0 + 0.3)
        ramp = _smoothstep((u - t0) / (t1 - t0))
        if rng.random() < 0.5 or "LR" in attrs:                 # grow: start small enough to fit
            scale_t *= factor ** ramp
            base_h = min(base_h, 0.55 * fh / factor)
        else:
            scale_t *= factor ** -ramp
            base_h = max(base_h, min(0.5 * fh, 12 * factor * scale))
    base = np.array([base_h * tex.shape[1] / tex.shape[0], base_h])
    wh = base[None] * scale_t[:, None]
    wh = np.minimum(wh, np.array([0.8 * fw, 0.8 * fh]))

    # smooth path (sum of sinusoids); FM / MB: fast segments (speed independent of length)
    speed = np.ones(length)
    fast_segments = []
    if "FM" in attrs or "MB" in attrs:
        for _ in range(2):
            a = int(rng.uniform(0.1, 0.8) * length)
            fast_segments.append((a, min(length, a + max(int(0.12 * length), 3))))
        for a, b in fast_segments:
            speed[a:b] = rng.uniform(3.0, 4.5) if "FM" in attrs else 2.5
    phase_t = np.cumsum(speed) - speed[0]
    cx = np.zeros(length)
    cy = np.zeros(length)
    for amp, axis in ((0.30, cx), (0.10, cx), (0.22, cy), (0.08, cy)):
        period = rng.uniform(120, 240) * (0.5 if amp < 0.2 else 1.0)
        axis += amp * np.sin(2 * np.pi * phase_t / period + rng.uniform(0, 2 * np.pi))
    cx = fw / 2 + cx * (fw - wh[:, 0] * 1.2)
    cy = fh / 2 + cy * (fh - wh[:, 1] * 1.2)
    # CS: the whole frame jitters (background and target together), box shifted with it, kept inside
    shake = np.zeros((length, 2))
    if "CS" in attrs:
        amp = rng.uniform(4, 9) * scale
        walk = np.cumsum(rng.normal(0, amp, (length, 2)), 0) * 0.5
        win = min(9, length)
        smooth = np.stack([np.convolve(walk[:, k], np.ones(win) / win, "same") for k in (0, 1)], 1)
        shake = walk - smooth                                     # high-pass: jitter, no drift
        shake = np.clip(shake, -3 * amp, 3 * amp)
    cx = np.clip(cx + shake[:, 0], wh[:, 0] / 2 + 1, fw - wh[:, 0] / 2 - 1)
    cy = np.clip(cy + shake[:, 1], wh[:, 1] / 2 + 1, fh - wh[:, 1] / 2 - 1)
    boxes = np.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, wh[:, 0], wh[:, 1]], 1)

    events: dict = {"texture": tex_name, "background": video, "split": split, "attributes": list(attrs),
                    "seed": int(seed)}
    # OCC: a patch of another photo sliding across the target (up to ~80 %), plus a short full cover
    occ = None
    if "OCC" in attrs:
        a = int(rng.uniform(0.2, 0.6) * length)
        occ = (a, min(length, a + max(int(0.25 * length), 4)))
        _, occ_tex = _texture(rng, pool, exclude=tex_name, aspect=0.8)
        occ_side = rng.choice([-1.0, 1.0])
        events["occlusion"] = list(occ)
    # BC: a look-alike (same texture, colour-shifted, sometimes mirrored) crossing close by
    dis = None
    if "BC" in attrs:
        dis_tex = tex[:, ::-1] if rng.random() < 0.5 else tex
        dis_tex = np.clip(dis_tex.astype(np.float32) * rng.uniform(0.85, 1.15, 3), 0, 255)
        t_close = rng.uniform(0.3, 0.7) * length
        ang = rng.uniform(0, 2 * np.pi)
        dis = (dis_tex, t_close, ang)
        events["distractor_closest"] = int(t_close)
    # IV: frame-wide light ramp / dip and a target-only colour cast
    light = np.ones((length, 3))
    tex_gain = np.ones((length, 3))
    if "IV" in attrs:
        centre, width = rng.uniform(0.3, 0.8) * length, rng.uniform(0.08, 0.2) * length
        light *= (1.0 - rng.uniform(0.45, 0.65) * np.exp(-0.5 * ((t - centre) / width) ** 2))[:, None]
        cast = rng.uniform(0.55, 1.0, 3)
        tex_gain = 1 - (1 - cast[None]) * _smoothstep((u[:, None] - rng.uniform(0.2, 0.6)) / 0.2)
        events["illumination_dip"] = int(centre)
    if fast_segments:
        events["fast_segments"] = [list(s) for s in fast_segments]

    frames = []
    dis_boxes = np.full((length, 4), np.nan)
    for i in range(length):
        f = bg[i].astype(np.float32)
        if "CS" in attrs:                                        # background shakes with the camera
            m = np.float32([[1, 0, shake[i, 0]], [0, 1, shake[i, 1]]])
            f = cv2.warpAffine(f, m, (fw, fh), borderMode=cv2.BORDER_REFLECT)
        w, h = boxes[i, 2:]
        c = boxes[i, :2] + boxes[i, 2:] / 2
        if dis is not None:
            dis_tex, t_close, ang = dis
            dist = (0.7 + 3.0 * abs(i - t_close) / length) * np.hypot(w, h)
            a = ang + 0.03 * (i - t_close)
            dc = c + dist * np.array([np.cos(a), np.sin(a)])
            _paste(f, dis_tex, (dc[0] - w / 2, dc[1] - h / 2, w, h))
            dis_boxes[i] = (dc[0] - w / 2, dc[1] - h / 2, w, h)
        v = boxes[min(i + 1, length - 1), :2] - boxes[max(i - 1, 0), :2]
        in_fast = any(a <= i < b for a, b in fast_segments)
        blur = _blur_kernel(v[0], v[1], 1.2 * np.hypot(*v) / 2) if "MB" in attrs and in_fast else None
        _paste(f, np.clip(tex.astype(np.float32) * tex_gain[i], 0, 255), boxes[i], blur)
        if occ is not None and occ[0] <= i < occ[1]:
            k = (i - occ[0]) / max(occ[1] - occ[0] - 1, 1)
            full = abs(k - 0.5) < 0.1                            # the middle of the pass covers it all
            ow, oh = (1.3 * w, 1.3 * h) if full else (0.8 * w, 1.3 * h)
            ox = c[0] + occ_side * (1.4 - 2.8 * k) * w - ow / 2
            _paste(f, occ_tex, (ox, boxes[i, 1] - 0.15 * h, ow, oh))
        f *= light[i][None, None]
        frames.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
    return GeneratedSequence(name or f"gen{seed:04d}", frames, boxes, events, dis_boxes)


def known_size_pair(seed: int, ratio: float, height: float = 48.0, photos: tuple[str, ...] | None = None,
                    video: str = "bikes.mp4") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A target of known size in two frames of a real video: (frame_a, box_a, frame_b, box_b) with the
    target ``height`` px tall in frame a and ``ratio`` x that in frame b (another frame, another place).
    For measuring how candidate scores depend on the candidate's scale (``bench/tracker_scale_bias.py``)."""
    from edge.data.splits import photos as split_photos
    rng = np.random.default_rng(seed)
    start = int(rng.integers(0, 200))
    bg = _background_frames(start, 9, 1.0, video)
    fh, fw = bg[0].shape[:2]
    _, tex = _texture(rng, photos or split_photos("test"), aspect=float(np.exp(rng.uniform(-0.4, 0.4))))
    out = []
    for k, (f, r) in enumerate(((bg[0], 1.0), (bg[8], ratio))):
        h = height * r
        w = h * tex.shape[1] / tex.shape[0]
        if w > fw * 0.8 or h > fh * 0.8:
            raise ValueError(f"target {w:.0f}x{h:.0f} does not fit the {fw}x{fh} frame")
        x, y = rng.uniform(0.1 * fw, fw - w - 0.1 * fw), rng.uniform(0.05 * fh, max(fh - h - 0.05 * fh, 0.05 * fh + 1))
        img = f.astype(np.float32)
        _paste(img, tex, (x, y, w, h))
        out += [np.clip(img + 0.5, 0, 255).astype(np.uint8), np.array([x, y, w, h])]
    return out[0], out[1], out[2], out[3]


def leaving_sequence(seed: int, length: int = 40, exit_frame: int = 20, split: str = "test",
                     video: str | None = None) -> GeneratedSequence:
    """A target that leaves the frame (OTB's out-of-view): it moves at constant speed towards the left or
    right edge, is half outside at ``exit_frame`` and entirely outside a few frames later, and stays out.
    ``boxes`` are the true, unclipped boxes (partly or wholly outside the frame)."""
    from edge.data.splits import photos, videos
    if not 2 <= exit_frame < length:
        raise ValueError(f"need 2 <= exit_frame < length, got {exit_frame}, {length}")
    rng = np.random.default_rng(seed)
    video = video or videos(split)[0]
    bg = _fit_background(_background_frames(int(rng.integers(0, 200)), length, 1.0, video))
    fh, fw = bg[0].shape[:2]
    _, tex = _texture(rng, photos(split), aspect=float(np.exp(rng.uniform(-0.3, 0.3))))
    h = rng.uniform(0.18, 0.3) * fh
    w = h * tex.shape[1] / tex.shape[0]
    left = rng.random() < 0.5
    x_exit = -w / 2 if left else fw - w / 2                        # half outside at exit_frame
    x_start = rng.uniform(0.45, 0.55) * fw - w / 2
    vx = (x_exit - x_start) / exit_frame
    y = rng.uniform(0.2, 0.8) * (fh - h)
    boxes = np.array([[x_start + vx * i, y + 3 * np.sin(i / 5), w, h] for i in range(length)])
    frames = []
    for i in range(length):
        f = bg[i].astype(np.float32)
        _paste(f, tex, boxes[i])
        frames.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
    return GeneratedSequence(f"leave{seed:04d}", frames, boxes,
                             {"seed": int(seed), "exit_frame": int(exit_frame), "side": "left" if left else "right"})


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
    attrs = seq.events.get("attributes")
    if attrs is not None:      # OTB-style tag list (edge.data.sequences reads it back)
        (tmp / ATTRIBUTES_FILE).write_text(",".join(attrs) + "\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def generate_dataset(root: str | Path, count: int = DEFAULT_COUNT, length: int = 100, seed: int = 0,
                     scale: float = 1.0, fmt: str = "otb", split: str = "test") -> list[Path]:
    """``count`` sequences ``gen<seed+i>`` under ``root``; returns their folders."""
    return [write_sequence(render_sequence(seed + i, length, scale, split=split), root, fmt) for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate tracking sequences with exact ground truth.")
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=DEFAULT_COUNT)
    ap.add_argument("--length", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0, help="background resize factor")
    ap.add_argument("--format", choices=("otb", "got10k"), default="otb")
    ap.add_argument("--split", choices=("test", "train"), default="test",
                    help="photo/video pool (edge.data.splits); the benchmark is test")
    a = ap.parse_args(argv)
    for p in generate_dataset(a.out, a.count, a.length, a.seed, a.scale, a.format, a.split):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
