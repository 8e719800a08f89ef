"""Named edge cases of the CUDA kernels, shared by the host-emulation tests (tests/test_cuda_*.py) and the
GPU check script (bench/gpu_kernels.py), so both run the same cases. numpy only (no torch, no onnxruntime):
the GPU machine imports this file from the source tree.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class RoiCase(NamedTuple):
    name: str
    spatial_scale: float
    pooled: tuple[int, int]
    shape: tuple[int, int, int, int]     # features N, C, H, W
    rois: int


#: every kind of box (see ``make_rois``) on maps of several scales, pooled sizes and aspect ratios
ROI_CASES = [
    RoiCase("stride4_pooled7", 0.25, (7, 7), (3, 5, 13, 17), 512),
    RoiCase("stride1_pooled2x3", 1.0, (2, 3), (2, 4, 9, 11), 512),
    RoiCase("stride16_pooled4", 0.0625, (4, 4), (4, 3, 7, 5), 64),
    RoiCase("one_column_map", 0.5, (5, 4), (2, 6, 15, 1), 33),
    RoiCase("single_roi", 0.25, (7, 7), (1, 8, 11, 13), 1),
    RoiCase("sint160_stride8", 1 / 8, (4, 4), (1, 32, 20, 20), 256),      # the tracker's two RoiPool nodes
    RoiCase("sint160_stride16", 1 / 16, (4, 4), (1, 96, 10, 10), 256),
]

#: (x1, y1, x2, y2) at spatial_scale 1, far beyond int range: the kernel clamps corners to +-2^30, so a box
#: clamped at both ends has end - start + 1 = 2^31 + 1 (an int overflow before the fix). Pooled 2x2 by hand
#: (and by the reference, which computes in int64): the bins holding the map cover all of it, the others
#: are empty -- row-major bins: symmetric box [0, 0, 0, max], [0, 0, 3e9, 3e9] [max, 0, 0, 0],
#: [-3e9, 0, 3e9, 3e9] [0, max, 0, 0].
HUGE_BOXES = np.array([[-3e9, -3e9, 3e9, 3e9], [0, 0, 3e9, 3e9], [-3e9, 0, 3e9, 3e9]], np.float64)
HUGE_POOLED = (2, 2)
HUGE_EXPECTED_MAX_BIN = (3, 0, 1)     # the one bin (row-major) holding the map's max; the others are 0


def make_rois(rng: np.random.Generator, r: int, n: int, h: int, w: int, scale: float) -> np.ndarray:
    """``r`` float32 rois [R, 5] in input coordinates mixing every edge case the semantics has: random boxes
    partly outside the map, corners landing exactly on .5 after scaling (positive and negative), zero-area
    boxes, one-pixel boxes, boxes wholly outside the map, inverted boxes (x2 < x1) and integer corners."""
    ih, iw = h / scale, w / scale
    kinds = rng.integers(0, 7, r)
    x1 = rng.uniform(-0.3 * iw, 1.3 * iw, r)
    y1 = rng.uniform(-0.3 * ih, 1.3 * ih, r)
    x2 = x1 + rng.uniform(0, 0.8 * iw, r)
    y2 = y1 + rng.uniform(0, 0.8 * ih, r)
    boxes = np.stack([x1, y1, x2, y2], 1)
    # 1: scaled corners at exact .5 (and negative .5) values -> half-away rounding decides
    half = (rng.integers(-4, 2 * max(h, w) + 4, (r, 4)) + 0.5) / scale
    boxes[kinds == 1] = np.sort(half[kinds == 1].reshape(-1, 2, 2), axis=1).reshape(-1, 4)[:, [0, 2, 1, 3]]
    # 2: zero-area boxes (x1 == x2, y1 == y2), 3: one input pixel wide, 4: wholly outside the map
    boxes[kinds == 2, 2:] = boxes[kinds == 2, :2]
    boxes[kinds == 3, 2] = boxes[kinds == 3, 0] + 1.0
    far = np.where(rng.random((r, 1)) < 0.5, -1.0, 1.0) * (rng.uniform(1.2, 2.0, (r, 1)) * max(ih, iw))
    boxes[kinds == 4] = (boxes[kinds == 4] - boxes[kinds == 4][:, :1]) + far[kinds == 4]
    # 5: inverted boxes (x2 < x1): the roi is still at least one cell
    boxes[kinds == 5] = boxes[kinds == 5][:, [2, 3, 0, 1]]
    # 6: integer corners inside the map
    boxes[kinds == 6] = np.round(boxes[kinds == 6])
    batch = rng.integers(0, n, r).astype(np.float64)
    return np.concatenate([batch[:, None], boxes], 1).astype(np.float32)


def huge_rois(n: int) -> np.ndarray:
    """``HUGE_BOXES`` on every image of a batch of ``n`` (for spatial_scale 1)."""
    rows = [np.concatenate([[b], box]) for b in range(n) for box in HUGE_BOXES]
    return np.array(rows, np.float32)


class CellCase(NamedTuple):
    name: str
    n: int
    cx: int
    ch: int
    h: int
    w: int
    k: int


#: ConvLSTM cells covering the tiled kernel's plan: partial pixel tiles, hidden channels not a multiple of the
#: 4 per thread, several shared-memory stages with a partial last one, input-channel slices, a map smaller
#: than the kernel window, k = 1 / 3 (unrolled) / 5 / 7 (run-time k), batches
CELL_CASES = [
    CellCase("small_3x3", 2, 3, 4, 7, 9, 3),
    CellCase("k1_wide", 3, 5, 2, 5, 11, 1),
    CellCase("k5", 2, 4, 3, 9, 7, 5),
    CellCase("map_smaller_than_window", 1, 2, 2, 1, 3, 5),
    CellCase("egornn_like_small", 2, 16, 8, 7, 7, 3),
    CellCase("classifier_step", 1, 32, 32, 10, 10, 3),
    CellCase("multi_tile_partial", 1, 3, 6, 20, 37, 3),
    CellCase("stages_partial_last", 2, 24, 9, 6, 6, 3),
    CellCase("k7_hidden5", 1, 4, 5, 12, 10, 7),
    CellCase("one_pixel", 3, 7, 3, 1, 1, 3),
    CellCase("wide_hidden_small_map", 2, 8, 20, 6, 6, 3),
]

#: sizes the GPU benchmark times (name, N, Cx, Ch, H = W, k): our classifier's step (batch 1 and 4 streams)
#: and Ego-RNN's ConvLSTM (ResNet-34 conv5 features, 512 hidden, 7x7)
CELL_BENCH_SIZES = [
    ("classifier step 32/32 10x10 N=1", 1, 32, 32, 10, 3),
    ("classifier step 32/32 10x10 N=4", 4, 32, 32, 10, 3),
    ("Ego-RNN 512/512 7x7 N=1", 1, 512, 512, 7, 3),
]


def cell_inputs(rng: np.random.Generator, case: CellCase) -> tuple[np.ndarray, ...]:
    """(x, h, c, W, B) float32 with pre-activations O(1): gates not saturated, so errors show."""
    n, cx, ch, hh, ww, k = case[1:]
    scale = 1.0 / np.sqrt((cx + ch) * k * k)
    return (rng.standard_normal((n, cx, hh, ww)).astype(np.float32),
            rng.standard_normal((n, ch, hh, ww)).astype(np.float32),
            (rng.standard_normal((n, ch, hh, ww)) * 2).astype(np.float32),
            (rng.standard_normal((4 * ch, cx + ch, k, k)) * 2 * scale).astype(np.float32),
            rng.standard_normal(4 * ch).astype(np.float32))
