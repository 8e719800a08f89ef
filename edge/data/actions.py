"""Labelled action clips where motion, not appearance, decides the class (torch-free, deterministic per seed).

Classes: ``none`` (no person doing anything the model knows: real footage, scene motion, camera shake, lighting,
traffic of small things), ``idle`` (a person stands and sways; sometimes reaches for the shelf and takes nothing),
``pass_by`` (a person walks across), ``take`` (a hand-sized product travels from a shelf-like region to the
shopper's hand), ``put_back`` (exactly the ``take`` clip of the same seed reversed in time), ``sit_down`` (slow
vertical compression, several speeds and leans) and ``fall`` (fast rotation to the floor sideways, or a fast
collapse forward, several speeds and angles).

Closer to deployment than a static frame: backgrounds are real video windows (they move) or real photos moved
by a simulated hand-held camera; every clip may get camera shake / pan / zoom / roll, scale and aspect change
(deployment squashes the whole frame to the square input), a lighting ramp, flicker or switch, and other moving
things (small walkers, objects) behind the actor. People are person-sized textured shapes, products small
textured patches, both cut from scikit-image photos. Which real files a split may use is fixed by
``edge.data.real_sources`` (train -> TRAIN, val -> VAL, test -> VAL + HELD_BACK): training never sees a
held-back file.

A clip is ``frames`` frames (T + 1: the first only provides the optical flow of the second), HxWx3 uint8 BGR at
``size`` x ``size``. Action durations are in frames (about a clip of 9), so a longer clip is a stream with the
action somewhere inside it. The clips' clock is ``CLIP_FPS`` frames per second of real time: a fall takes
1.5-3.5 frames (0.3-0.7 s), sitting down 4.5-9 (1-2 s), a reach to the shelf and back 4-8 (1-1.5 s), a walk
across the view 9-25 frames at 0.07-0.18 body heights per frame (a walker at 0.8 body heights per second:
4-11 frames per second). A model trained on them is fed camera frames at that rate
(``edge.classify.sampling``). Splits are fixed by seed: clip ``i`` of split ``s`` uses
``SeedSequence([SPLIT_IDS[s], i])`` and class ``SCHEDULE[i % len(SCHEDULE)]``. ``train_faults``,
``val_faults`` and ``test_faults`` are the same clips as train / val / test seen through the camera faults of
``edge.data.degrade`` (JPEG, rotation, dark / IR, grey, jitter).
"""
from __future__ import annotations

import csv
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from edge.data import degrade, real_sources

CLASSES = ("none", "idle", "pass_by", "take", "put_back", "sit_down", "fall")
SCHEDULE = CLASSES + ("none",)          # background is what real footage mostly shows: 2 in 8 clips
CLIP_FPS = 5.0                          # frames per second of real time in a generated clip (see above)
# train_faults / val_faults / test_faults: exactly the clips (same seeds) of train / val / test seen through the
# camera faults of edge.data.degrade (a training augmentation, and paired robustness checks)
SPLIT_IDS = {"train": 1, "val": 2, "test": 3, "train_faults": 1, "val_faults": 2, "test_faults": 3}
SPLIT_SIZES = {"train": 480, "val": 120, "test": 180, "train_faults": 480, "val_faults": 120, "test_faults": 180}
SPLIT_POOLS = {"train": "train", "val": "val", "test": "eval", "train_faults": "train", "val_faults": "val",
               "test_faults": "eval"}
DEGRADED_SPLITS = ("train_faults", "val_faults", "test_faults")
# sprite textures come from training photos only (every split uses them: appearance must not decide)
PERSON_TEXTURES = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina",
                   "rocket", "camera")
PRODUCT_TEXTURES = ("colorwheel", "coffee", "rocket", "astronaut", "logo", "chelsea", "retina")
SHELF_TEXTURES = ("brick", "gravel", "grass", "moon", "camera")
OBJECT_TEXTURES = ("colorwheel", "logo", "moon", "gravel", "brick", "hubble_deep_field")
real_sources.check_training(f"photo:{n}" for n in PERSON_TEXTURES + PRODUCT_TEXTURES + SHELF_TEXTURES
                            + OBJECT_TEXTURES)


# ---------------------------------------------------------------------------------------------- assets
@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """A scikit-image photo as HxWx3 uint8 BGR."""
    from skimage import data
    img = getattr(data, name)()
    if isinstance(img, tuple):          # stereo_motorcycle: (left, right, disparity)
        img = img[0]
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, 2)
    img = img[:, :, :3]
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8) if img.max() <= 1 else img.astype(np.uint8)
    return np.ascontiguousarray(img[:, :, ::-1])


@lru_cache(maxsize=None)
def _video_frames(source: str, height: int = 240) -> tuple[np.ndarray, ...]:
    """All frames of a real ``video:`` source (BGR uint8), shrunk to ``height`` rows when taller."""
    cap = cv2.VideoCapture(str(real_sources.video_path(source)))
    frames = []
    try:
        while True:
            ok, f = cap.read()
            if not ok:
                break
            if f.shape[0] > height:
                f = cv2.resize(f, (round(f.shape[1] * height / f.shape[0]), height), interpolation=cv2.INTER_AREA)
            frames.append(f)
    finally:
        cap.release()
    if len(frames) < 2:
        raise ValueError(f"background clip {source} has fewer than 2 readable frames")
    return tuple(frames)


def _crop_to(img: np.ndarray, h: int, w: int, rng: np.random.Generator, lo: float = 0.35, hi: float = 0.8,
             box: tuple | None = None) -> tuple[np.ndarray, tuple]:
    """Random crop of aspect (h, w) from img (or the given ``box`` y, x, ch, cw), resized to (h, w)."""
    ih, iw = img.shape[:2]
    if box is None:
        scale = rng.uniform(lo, hi) * min(ih / h, iw / w)
        ch, cw = max(4, min(ih, int(h * scale))), max(4, min(iw, int(w * scale)))
        box = (int(rng.integers(0, ih - ch + 1)), int(rng.integers(0, iw - cw + 1)), ch, cw)
    y, x, ch, cw = box
    return cv2.resize(img[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA), box


def _pick(names, rng: np.random.Generator):
    return names[int(rng.integers(len(names)))]


# ---------------------------------------------------------------------------------------------- backgrounds
def _background(n: int, h: int, w: int, rng: np.random.Generator, pool: str, kind: str | None = None
                ) -> tuple[list[np.ndarray], bool]:
    """n background frames (float32 HxWx3) from the split's real sources; (frames, is_photo). A video source
    gives a real window (its own motion, every 1st or 2nd frame, a crop or the whole frame squashed); a photo
    a static crop that the camera model moves."""
    vids, phots = real_sources.videos(pool), real_sources.photos(pool)
    if kind is None:
        kind = "video" if (vids and rng.random() < 0.55) or not phots else "photo"
    flip = rng.random() < 0.5
    if kind == "video":
        frames = _video_frames(_pick(vids, rng))
        step = int(rng.choice([1, 1, 2]))
        span = step * (n - 1) + 1
        start = int(rng.integers(0, max(1, len(frames) - span + 1)))
        idx = [min(start + step * k, len(frames) - 1) for k in range(n)]
        fh, fw = frames[0].shape[:2]
        box = (0, 0, fh, fw) if rng.random() < 0.35 else None        # the whole frame, squashed
        if box is None:
            _, box = _crop_to(frames[0], h, w, rng, 0.5, 1.0)
        out = [_crop_to(frames[i], h, w, rng, box=box)[0] for i in idx]
        photo = False
    else:
        img, _ = _crop_to(_photo(_pick(phots, rng)), h, w, rng, 0.4, 1.0)
        out = [img] * n
        photo = True
    out = [(f[:, ::-1] if flip else f).astype(np.float32) for f in out]
    return out, photo


def _camera(n: int, h: int, w: int, rng: np.random.Generator, strength: float) -> list[np.ndarray]:
    """Per-frame 2x3 affine maps of a hand-held camera: smooth shake (random walk), slow pan, zoom and roll."""
    if strength <= 0:
        return [np.array([[1, 0, 0], [0, 1, 0]], np.float64)] * n
    shake = rng.uniform(0.004, 0.02) * h * strength
    walk = np.cumsum(rng.normal(0, shake, (n, 2)), 0)
    pan = rng.uniform(-0.02, 0.02, 2) * h * strength * np.arange(n)[:, None]
    zoom = 1 + rng.uniform(-0.012, 0.012) * strength * np.arange(n)
    roll = rng.uniform(-3, 3) * strength + np.cumsum(rng.normal(0, 0.3 * strength, n))
    mats = []
    for k in range(n):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), float(roll[k]), float(zoom[k] * (1 + 0.05 * strength)))
        m[:, 2] += walk[k] + pan[k]
        mats.append(m)
    return mats


def _lighting(n: int, rng: np.random.Generator, p_switch: float = 0.08) -> np.ndarray:
    """Per-frame gain: a ramp, sometimes flicker or a light switch."""
    g0 = rng.uniform(0.7, 1.2)
    g = g0 + (rng.uniform(-0.25, 0.25) if rng.random() < 0.5 else 0.0) * np.arange(n) / max(1, n - 1)
    if rng.random() < 0.15:
        g = g * (1 + rng.uniform(0.02, 0.08) * np.sin(rng.uniform(1.5, 3.1) * np.arange(n)))
    if rng.random() < p_switch:
        g = np.where(np.arange(n) >= rng.integers(1, max(2, n)), g * rng.uniform(0.6, 1.4), g)
    return g


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
        t = np.asarray(anchor_dst, np.float64) - rot @ np.asarray(anchor_src, np.float64)
        m = np.hstack([rot, t[:, None]]).astype(np.float64)
        size = (canvas.shape[1], canvas.shape[0])
        tex = cv2.warpAffine(self.tex, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        al = cv2.warpAffine(self.alpha, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        canvas *= 1 - al[:, :, None]
        canvas += tex * al[:, :, None]


def _person(height: float, rng: np.random.Generator) -> Sprite:
    """Person-like shape (head + torso + legs) of ``height`` px with a photo texture."""
    h = max(12, int(height))
    w = max(6, int(h * rng.uniform(0.28, 0.38)))
    alpha = np.zeros((h, w), np.float32)
    head_r = w * rng.uniform(0.24, 0.3)
    cv2.circle(alpha, (w // 2, int(head_r) + 1), max(1, int(head_r)), 1.0, -1, cv2.LINE_AA)
    cv2.rectangle(alpha, (int(w * 0.08), int(head_r * 2)), (int(w * 0.92), int(h * 0.6)), 1.0, -1)
    cv2.rectangle(alpha, (int(w * 0.15), int(h * 0.6)), (int(w * 0.45), h - 1), 1.0, -1)
    cv2.rectangle(alpha, (int(w * 0.55), int(h * 0.6)), (int(w * 0.85), h - 1), 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    tex, _ = _crop_to(_photo(_pick(PERSON_TEXTURES, rng)), h, w, rng)
    return Sprite(tex, alpha)


def _patch(h: int, w: int, names: tuple[str, ...], rng: np.random.Generator, round_: bool = False) -> Sprite:
    h, w = max(3, int(h)), max(3, int(w))
    alpha = np.zeros((h, w), np.float32)
    if round_:
        cv2.ellipse(alpha, (w // 2, h // 2), (max(1, w // 2 - 1), max(1, h // 2 - 1)), 0, 0, 360, 1.0, -1)
    else:
        cv2.rectangle(alpha, (1, 1), (w - 2, h - 2), 1.0, -1)
    tex, _ = _crop_to(_photo(_pick(names, rng)), h, w, rng)
    return Sprite(tex, alpha)


def _ease(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, 1)
    return t * t * (3 - 2 * t)


def _interval(n: int, rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float]:
    """An action of lo..hi frames placed at random inside frames 0..n-1 (clamped to the clip)."""
    length = min(rng.uniform(lo, hi), n - 1.0)
    t0 = rng.uniform(0, n - 1 - length)
    return t0, t0 + length


class _Mover:
    """Something drawn at a pose per frame: callable(canvas, k)."""

    def __init__(self, draw):
        self.draw = draw


def _distractors(n: int, h: int, w: int, rng: np.random.Generator, count: int) -> list:
    """Other moving things behind the actor: small walkers far away, objects crossing (ball, cart, car)."""
    out = []
    t = np.arange(n, dtype=np.float64)
    for _ in range(count):
        direction = 1 if rng.random() < 0.5 else -1
        if rng.random() < 0.5:                       # a small walker in the distance
            spr = _person(h * rng.uniform(0.2, 0.4), rng)
            sh, sw = spr.hw
            speed = rng.uniform(0.01, 0.05) * w
            y = h * rng.uniform(0.45, 0.85)
            bob = rng.uniform(0, 0.02) * h
        else:                                         # an object: ball, box, car-like block
            oh = h * rng.uniform(0.05, 0.22)
            spr = _patch(oh, oh * rng.uniform(0.8, 2.5), OBJECT_TEXTURES, rng, round_=rng.random() < 0.4)
            sh, sw = spr.hw
            speed = rng.uniform(0.01, 0.09) * w
            y = h * rng.uniform(0.2, 0.95)
            bob = 0.0
        x0 = rng.uniform(-0.1, 1.1) * w
        xs = x0 + direction * speed * t
        ys = y + bob * np.sin(rng.uniform(1.5, 3) * t)

        def draw(canvas, k, spr=spr, xs=xs, ys=ys, sh=sh, sw=sw):
            spr.draw(canvas, (sw / 2, sh), (xs[k], ys[k]))
        out.append(draw)
    return out


def _arm(canvas: np.ndarray, shoulder, hand, colour, width: int) -> None:
    cv2.line(canvas, tuple(int(round(v)) for v in shoulder), tuple(int(round(v)) for v in hand), colour,
             max(2, width), cv2.LINE_AA)


# ---------------------------------------------------------------------------------------------- scenes
def _retail(kind: str, n: int, h: int, w: int, rng: np.random.Generator, show_shelf: bool = True) -> list:
    """Shelf-like region with hand-sized products; a shopper who takes / idles / passes by. Returns drawers."""
    side = int(rng.integers(2))
    shelf_w, shelf_h = int(w * rng.uniform(0.14, 0.26)), int(h * rng.uniform(0.45, 0.7))
    shelf_x = int(w * rng.uniform(0, 0.08)) if side == 0 else w - shelf_w - int(w * rng.uniform(0, 0.08))
    shelf_y = int(h * rng.uniform(0.08, 0.25))
    shelf = _patch(shelf_h, shelf_w, SHELF_TEXTURES, rng)
    # hand-sized products in slots on the shelf
    ph = h * rng.uniform(0.05, 0.09)
    rows = max(1, int(shelf_h // (ph * 1.8)))
    slots = [(shelf_x + shelf_w * rng.uniform(0.3, 0.7), shelf_y + (r + 0.5) * shelf_h / rows) for r in range(rows)]
    products = [(_patch(ph * rng.uniform(0.8, 1.2), ph * rng.uniform(0.7, 1.3), PRODUCT_TEXTURES, rng), s)
                for s in slots]
    taken = int(rng.integers(len(products)))
    ht = h * rng.uniform(0.5, 0.75)
    person = _person(ht, rng)
    sh_, sw_ = person.hw
    floor = h * rng.uniform(0.85, 0.98)
    gap = sw_ * rng.uniform(0.6, 1.1)
    near_x = shelf_x + shelf_w + gap if side == 0 else shelf_x - gap
    t = np.arange(n, dtype=np.float64)
    sway = rng.uniform(0.2, 1.2) * np.sin(rng.uniform(0.3, 0.9) * t + rng.uniform(0, 6.3))
    xs = near_x + sway
    if kind == "pass_by":
        direction = 1 if rng.random() < 0.5 else -1
        speed = rng.uniform(0.04, 0.11) * w
        x0 = rng.uniform(0.2, 0.8) * w - direction * speed * (n - 1) / 2
        xs = x0 + direction * speed * t
    elif kind == "idle" and rng.random() < 0.35:      # a shopper somewhere else in the aisle
        xs = rng.uniform(0.3, 0.7) * w + sway
    bob = (rng.uniform(0.005, 0.02) * h * np.abs(np.sin(rng.uniform(1.2, 2.2) * t))) if kind == "pass_by" else 0 * t
    shoulder = np.stack([xs, floor - bob - sh_ * 0.72], 1)
    rest = shoulder + np.array([(1 if side == 0 else -1) * -sw_ * 0.1, sh_ * 0.28])
    if kind == "pass_by":                              # arms swing while walking
        rest = rest + np.stack([sw_ * 0.25 * np.sin(rng.uniform(1.2, 2.2) * t), 0 * t], 1)
    hand = rest.copy()
    prod = np.repeat(np.asarray(products[taken][1], np.float64)[None], n, 0)
    target = np.asarray(products[taken][1], np.float64)
    if kind == "take" or (kind == "idle" and rng.random() < 0.3):   # idle: reaches, takes nothing
        t0, t1 = _interval(n, rng, 4.0, 8.0)
        tm = t0 + (t1 - t0) * rng.uniform(0.35, 0.6)
        reach = _ease((t - t0) / max(tm - t0, 1e-3))[:, None]
        back = _ease((t - tm) / max(t1 - tm, 1e-3))[:, None]
        hand = rest + (target - rest) * reach * (1 - back)
        if kind == "take":
            held = t >= tm
            prod = np.where(held[:, None], hand, prod)
        elif rng.random() < 0.5:                       # an idle hand that stops short of the shelf
            hand = rest + (hand - rest) * rng.uniform(0.4, 0.8)
    colour = tuple(float(c) for c in person.tex[sh_ // 2, sw_ // 2])
    arm_w = int(sw_ * 0.18)

    def draw(canvas, k):
        if show_shelf:
            shelf.draw(canvas, (0, 0), (shelf_x, shelf_y))
        for j, (spr, slot) in enumerate(products):
            if j != taken and show_shelf:
                pw, phh = spr.hw[1], spr.hw[0]
                spr.draw(canvas, (pw / 2, phh / 2), slot)
        person.draw(canvas, (sw_ / 2, sh_), (xs[k], floor - bob[k]))
        _arm(canvas, shoulder[k], hand[k], colour, arm_w)
        spr = products[taken][0]
        spr.draw(canvas, (spr.hw[1] / 2, spr.hw[0] / 2), tuple(prod[k]))
    return [draw]


def _home(kind: str, n: int, h: int, w: int, rng: np.random.Generator) -> list:
    """A person who stands (idle) or walks across (pass_by), sits down slowly or falls fast (sideways or
    forward)."""
    person = _person(h * rng.uniform(0.5, 0.75), rng)
    ph, pw = person.hw
    floor = h * rng.uniform(0.85, 0.97)
    x = w * rng.uniform(0.25, 0.75)
    t = np.arange(n, dtype=np.float64)
    angle, sx, sy, drop = np.zeros(n), np.ones(n), np.ones(n), np.zeros(n)
    chair = None
    if kind == "fall":
        t0, t1 = _interval(n, rng, 1.5, 3.5)                  # fast: 1.5-3.5 frames
        s = _ease((t - t0) / (t1 - t0))
        if rng.random() < 0.75:                                # sideways, to 65..95 degrees
            angle = (1 if rng.random() < 0.5 else -1) * rng.uniform(65, 95) * s
            drop = s * pw * 0.5
        else:                                                  # forward / backward: a fast collapse
            sy = 1 - s * rng.uniform(0.6, 0.75)
            sx = 1 + s * rng.uniform(0.2, 0.6)
            angle = s * rng.uniform(-15, 15)
    elif kind == "sit_down":
        t0, t1 = _interval(n, rng, 4.5, 9.0)                  # slow: 4.5-9 frames
        s = _ease((t - t0) / (t1 - t0))
        sy = 1 - s * rng.uniform(0.3, 0.5)
        angle = s * rng.uniform(-12, 12)
        if rng.random() < 0.6:
            chair = _patch(ph * rng.uniform(0.35, 0.5), pw * rng.uniform(1.1, 1.6), SHELF_TEXTURES, rng)
    sway = rng.uniform(0.2, 0.8) * np.sin(rng.uniform(0.3, 0.9) * t + rng.uniform(0, 6.3))
    if kind == "pass_by":
        direction = 1 if rng.random() < 0.5 else -1
        speed = rng.uniform(0.04, 0.11) * w
        sway = rng.uniform(0.2, 0.8) * w - x - direction * speed * (n - 1) / 2 + direction * speed * t

    def draw(canvas, k):
        if chair is not None:
            chair.draw(canvas, (chair.hw[1] / 2, chair.hw[0]), (x, floor))
        y = floor - drop[k] + pw * 0.5 * abs(np.sin(np.deg2rad(angle[k])))
        person.draw(canvas, (pw / 2, ph), (x + sway[k], y), angle=angle[k], sx=sx[k], sy=sy[k])
    return [draw]


def _render(n: int, size: int, rng: np.random.Generator, pool: str, label: str) -> list[np.ndarray]:
    aspect = 1.0 if rng.random() < 0.4 else rng.uniform(1.2, 2.6)     # deployment squashes wide frames
    h, w = size, int(round(size * aspect))
    variant = rng.random()
    if label == "none" and variant < 0.1:                   # a scene cut between two real backgrounds
        a, _ = _background(n, h, w, rng, pool)
        b, _ = _background(n, h, w, rng, pool)
        cut = int(rng.integers(1, n))
        bg, photo = a[:cut] + b[cut:], False
    else:
        bg, photo = _background(n, h, w, rng, pool, "video" if label == "none" and variant < 0.45 else None)
    strength = rng.uniform(0.5, 1.5) if photo else (rng.uniform(0, 1.2) if rng.random() < 0.6 else 0.0)
    cams = _camera(n, h, w, rng, strength)
    light = _lighting(n, rng, 0.2 if label == "none" else 0.05)
    actors = []
    if label == "none":
        if variant >= 0.45:                                  # generated scene: only small/far things move
            actors = _distractors(n, h, w, rng, int(rng.integers(1, 4)))
            if rng.random() < 0.3:                           # an empty shelf scene
                actors = _retail_empty(n, h, w, rng) + actors
    else:
        actors = _distractors(n, h, w, rng, int(rng.choice([0, 0, 1, 1, 2])))
        u = rng.random()
        if label == "take" or (label in ("idle", "pass_by") and u < 0.6):
            actors += _retail(label, n, h, w, rng, show_shelf=label == "take" or u < 0.45)
        else:                                                # the shelf is no cue: home scenes may have one
            actors += (_retail_empty(n, h, w, rng) if rng.random() < 0.25 else []) + _home(label, n, h, w, rng)
    frames = []
    for k in range(n):
        canvas = bg[k].copy()
        for draw in actors:
            draw(canvas, k)
        canvas = cv2.warpAffine(canvas, cams[k], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        if w != size:
            canvas = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
        frames.append(canvas * light[k])
    return frames


def _retail_empty(n: int, h: int, w: int, rng: np.random.Generator) -> list:
    shelf_w, shelf_h = int(w * rng.uniform(0.14, 0.26)), int(h * rng.uniform(0.45, 0.7))
    shelf_x, shelf_y = int(rng.uniform(0, w - shelf_w)), int(h * rng.uniform(0.08, 0.25))
    shelf = _patch(shelf_h, shelf_w, SHELF_TEXTURES, rng)
    return [lambda canvas, k: shelf.draw(canvas, (0, 0), (shelf_x, shelf_y))]


def _finish(frames: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Sensor noise (and sometimes a slight blur), then uint8."""
    sigma = rng.uniform(1.0, 4.0)
    blur = rng.random() < 0.2
    out = []
    for f in frames:
        if blur:
            f = cv2.GaussianBlur(f, (3, 3), 0)
        f = f + rng.normal(0, sigma, f.shape)
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    return np.stack(out)


def make_clip(seed: int | np.random.SeedSequence | tuple, label: str, frames: int = 9, size: int = 160,
              pool: str = "train", degraded: bool = False) -> np.ndarray:
    """One clip [frames, size, size, 3] uint8 BGR of class ``label``, deterministic for (seed, label, pool,
    degraded); backgrounds from the real sources of ``pool`` (``edge.data.real_sources``: train, val or eval).
    ``degraded`` adds the camera faults of ``edge.data.degrade`` on top of the same clip (own random stream:
    without a fault drawn, the clip is exactly the clean one).

    ``put_back`` is exactly ``take`` of the same seed reversed in time.
    """
    if label not in CLASSES:
        raise ValueError(f"unknown action {label!r} (have: {', '.join(CLASSES)})")
    if frames < 2 or size < 32:
        raise ValueError(f"need frames >= 2 and size >= 32, got frames={frames}, size={size}")
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rng = np.random.default_rng(ss)
    if label == "put_back":
        return make_clip(ss, "take", frames, size, pool, degraded)[::-1].copy()
    clip = _finish(_render(frames, size, rng, pool, label), rng)
    if degraded:
        clip, _ = degrade.degrade_clip(clip, np.random.default_rng([*ss.generate_state(4), degrade.VERSION]))
    return clip


def clip_seed(split: str, index: int) -> np.random.SeedSequence:
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r} (have: {', '.join(SPLIT_IDS)})")
    return np.random.SeedSequence([SPLIT_IDS[split], int(index)])


def split_labels(split: str, count: int | None = None) -> list[str]:
    n = SPLIT_SIZES[split] if count is None else count
    return [SCHEDULE[i % len(SCHEDULE)] for i in range(n)]


def split_clip(split: str, index: int, frames: int = 9, size: int = 160) -> tuple[str, np.ndarray]:
    """(label, clip) of clip ``index`` of a fixed split (its backgrounds from ``SPLIT_POOLS[split]``)."""
    label = SCHEDULE[index % len(SCHEDULE)]
    return label, make_clip(clip_seed(split, index), label, frames, size, SPLIT_POOLS[split],
                            split in DEGRADED_SPLITS)


def iter_split(split: str, count: int | None = None, frames: int = 9, size: int = 160, start: int = 0):
    """Yield (index, label, clip) for the fixed split (``count`` clips; default ``SPLIT_SIZES[split]``)."""
    n = SPLIT_SIZES[split] if count is None else count
    for i in range(start, n):
        label, clip = split_clip(split, i, frames, size)
        yield i, label, clip


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
        wr = csv.writer(f)
        wr.writerow(("file", "label", "split", "index"))
        wr.writerows(rows)
    os.replace(tmp, csv_path)
    return csv_path
