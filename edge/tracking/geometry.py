"""Search-region crop, SINT candidate sampling, box conversions and ridge box regression (torch-free).

Boxes in the frame are ``[x, y, w, h]``; boxes in the crop are ``(x1, y1, x2, y2)`` crop pixels, as the
networks' rois ``(batch, x1, y1, x2, y2)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from edge.image import bgr_to_nchw_rgb


@dataclass(frozen=True)
class Crop:
    """A square search region: frame centre (cx, cy), side in frame px, output size in crop px."""
    cx: float
    cy: float
    side: float
    size: int

    @property
    def scale(self) -> float:
        """Crop px per frame px."""
        return self.size / self.side

    def to_crop(self, box_xywh: np.ndarray) -> np.ndarray:
        """Frame [..., 4] xywh -> crop [..., 4] x1y1x2y2."""
        b = np.asarray(box_xywh, np.float64)
        x1 = (b[..., 0] - self.cx) * self.scale + self.size / 2
        y1 = (b[..., 1] - self.cy) * self.scale + self.size / 2
        return np.stack([x1, y1, x1 + b[..., 2] * self.scale, y1 + b[..., 3] * self.scale], -1)

    def to_frame(self, box_xyxy: np.ndarray) -> np.ndarray:
        """Crop [..., 4] x1y1x2y2 -> frame [..., 4] xywh."""
        b = np.asarray(box_xyxy, np.float64)
        x = (b[..., 0] - self.size / 2) / self.scale + self.cx
        y = (b[..., 1] - self.size / 2) / self.scale + self.cy
        return np.stack([x, y, (b[..., 2] - b[..., 0]) / self.scale, (b[..., 3] - b[..., 1]) / self.scale], -1)


def search_side(w: float, h: float, context_amount: float, ratio: float) -> float:
    """SiamFC: p = context * (w + h); s_z = sqrt((w + p)(h + p)); search side = ratio * s_z."""
    p = context_amount * (w + h)
    return ratio * float(np.sqrt((w + p) * (h + p)))


def crop_region(image: np.ndarray, crop: Crop, pad_colour=None) -> np.ndarray:
    """Resample the square region to ``crop.size``^2 (bilinear), outside pixels = frame mean colour.

    Returns the network input: float32 RGB 0..255, NCHW [1, 3, S, S] (image is HxWx3 uint8 BGR)."""
    s = crop.scale
    m = np.array([[s, 0, crop.size / 2 - crop.cx * s], [0, s, crop.size / 2 - crop.cy * s]], np.float64)
    if pad_colour is None:
        pad_colour = cv2.mean(image)[:3]
    patch = cv2.warpAffine(image, m, (crop.size, crop.size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(c) for c in pad_colour))
    return bgr_to_nchw_rgb(patch)


def radial_offsets(count: int, num_angles: int, max_radius: float) -> np.ndarray:
    """The zero offset + rings of ``num_angles`` points (alternate rings rotated half a step): [count, 2]
    (read-only: one array per argument set, computed once)."""
    return _radial_offsets(int(count), int(num_angles), float(max_radius))


@lru_cache(maxsize=64)
def _radial_offsets(count: int, num_angles: int, max_radius: float) -> np.ndarray:
    rings = max(1, int(np.ceil((count - 1) / num_angles)))
    pts = [np.zeros((1, 2))]
    for k in range(1, rings + 1):
        a = 2 * np.pi * (np.arange(num_angles) + 0.5 * (k % 2)) / num_angles
        pts.append(max_radius * k / rings * np.stack([np.cos(a), np.sin(a)], 1))
    out = np.concatenate(pts)[:count]
    out.flags.writeable = False
    return out


def scale_exponents(num_scales: int) -> np.ndarray:
    """Candidate scale exponents k (scale = step**k) in block order: 0, -1, +1, -2, +2, ..."""
    ks = [0]
    for k in range(1, num_scales // 2 + 1):
        ks += [-k, k]
    return np.array(ks, np.int64)


def sample_candidates(size: int, box_wh: tuple[float, float], count: int, num_angles: int, max_radius: float,
                      scale_step: float, num_scales: int = 3) -> np.ndarray:
    """SINT candidates around the crop centre: radial offsets x ``num_scales`` scales (1, 1/step, step,
    1/step^2, ...), exactly ``count`` rois [count, 5] (batch 0, x1, y1, x2, y2) in crop px; leftover slots
    repeat the centre box."""
    per_scale = count // num_scales
    offs = radial_offsets(per_scale, num_angles, max_radius * size)
    c = size / 2 + offs                                               # [P, 2] centres
    p = len(offs)
    out = np.zeros((count, 5))
    for i, k in enumerate(scale_exponents(num_scales)):
        half = np.array(box_wh, np.float64) * float(scale_step) ** int(k) / 2
        out[i * p:(i + 1) * p, 1:3] = c - half
        out[i * p:(i + 1) * p, 3:5] = c + half
    out[num_scales * p:, 1:] = out[0, 1:]
    return out.astype(np.float32)


def grid_candidates(size: int, box_wh: tuple[float, float], count: int) -> np.ndarray:
    """Boxes of one size ``box_wh`` (crop px) centred on a uniform g x g grid (g = floor(sqrt(count))) spanning
    the crop (centres from half a box inside each edge): exactly ``count`` rois [count, 5] (batch 0, x1, y1,
    x2, y2); leftover slots repeat the crop's centre box. A search over the whole crop, not around its centre."""
    g = max(1, int(np.sqrt(count)))
    half = np.minimum(np.asarray(box_wh, np.float64), size) / 2
    xs = np.linspace(half[0], size - half[0], g) if g > 1 else np.array([size / 2])
    ys = np.linspace(half[1], size - half[1], g) if g > 1 else np.array([size / 2])
    c = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    c = np.concatenate([c, np.full((count - len(c), 2), size / 2)])
    out = np.zeros((count, 5))
    out[:, 1:3], out[:, 3:5] = c - half, c + half
    return out.astype(np.float32)


def candidate_exponents(count: int, num_scales: int) -> np.ndarray:
    """The scale exponent of each of ``sample_candidates``' rows [count] (padding rows: 0)."""
    per_scale = count // num_scales
    k = np.zeros(count, np.int64)
    k[:per_scale * num_scales] = np.repeat(scale_exponents(num_scales), per_scale)
    return k


def iou_xyxy(boxes: np.ndarray, ref: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(boxes[:, 2], ref[2]) - np.maximum(boxes[:, 0], ref[0]), 0, None)
    iy = np.clip(np.minimum(boxes[:, 3], ref[3]) - np.maximum(boxes[:, 1], ref[1]), 0, None)
    inter = ix * iy
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(boxes) + area(ref) - inter)


def regression_samples(ref: np.ndarray, count: int, min_iou: float, rng: np.random.Generator) -> np.ndarray:
    """Up to ``count`` jittered copies of the xyxy box ``ref`` with IoU > min_iou (first row = ref)."""
    w, h = ref[2] - ref[0], ref[3] - ref[1]
    cx, cy = (ref[0] + ref[2]) / 2, (ref[1] + ref[3]) / 2
    n = count * 4
    dx, dy = rng.uniform(-0.25, 0.25, (2, n))
    sw, sh = np.exp(rng.uniform(-0.3, 0.3, (2, n)))
    ncx, ncy, nw, nh = cx + dx * w, cy + dy * h, w * sw, h * sh
    cand = np.stack([ncx - nw / 2, ncy - nh / 2, ncx + nw / 2, ncy + nh / 2], 1)
    cand = cand[iou_xyxy(cand, ref) > min_iou][: count - 1]
    return np.concatenate([ref[None], cand])


def rcnn_targets(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """R-CNN regression targets (dx/w, dy/h, log w, log h) of xyxy boxes towards xyxy gt."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    gw, gh = gt[2] - gt[0], gt[3] - gt[1]
    return np.stack([((gt[0] + gt[2]) - (boxes[:, 0] + boxes[:, 2])) / 2 / w,
                     ((gt[1] + gt[3]) - (boxes[:, 1] + boxes[:, 3])) / 2 / h,
                     np.log(gw / w), np.log(gh / h)], 1)


def apply_deltas(box: np.ndarray, d: np.ndarray) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2 + d[0] * w, (box[1] + box[3]) / 2 + d[1] * h
    nw, nh = w * np.exp(d[2]), h * np.exp(d[3])
    return np.array([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2])


class RidgeRegressor:
    """Ridge regression with a bias column, solved in the dual (samples << feature dimension)."""

    def __init__(self, features: np.ndarray, targets: np.ndarray, alpha: float = 1.0):
        x = np.concatenate([features, np.ones((len(features), 1))], 1).astype(np.float64)
        k = x @ x.T + alpha * np.eye(len(x))
        self.w = x.T @ np.linalg.solve(k, targets.astype(np.float64))    # [D+1, 4]

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = np.concatenate([features, np.ones((len(features), 1))], 1)
        return x @ self.w
