"""Dense optical flow for the classifier's motion branch: OpenCV DIS (torch-free).

``dis_flow(prev_gray, gray)`` -> [H, W, 2] float32 (u, v) in pixels, ``prev(y, x) ~ cur(y + v, x + u)``.
The network takes ``encode_flow(flow)``: [2, H, W] float32, ``clip(flow, -FLOW_BOUND, FLOW_BOUND) / FLOW_BOUND``
with the flow measured at the classifier's input size, so values lie in [-1, 1].
"""
from __future__ import annotations

import cv2
import numpy as np

FLOW_BOUND = 8.0  # pixels at the classifier input size that map to +-1
PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


class DISFlow:
    """A reusable OpenCV DIS optical-flow estimator (ULTRAFAST preset by default)."""

    def __init__(self, preset: str = "ultrafast"):
        if preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r} (have: {', '.join(PRESETS)})")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])

    def __call__(self, prev_gray: np.ndarray, gray: np.ndarray) -> np.ndarray:
        """Flow from ``prev_gray`` to ``gray`` (both HxW uint8, same shape) -> [H, W, 2] float32."""
        for name, g in (("prev_gray", prev_gray), ("gray", gray)):
            if g.ndim != 2 or g.dtype != np.uint8:
                raise ValueError(f"dis_flow: {name} must be a 2-D uint8 image, got {g.dtype} {g.shape}")
        if prev_gray.shape != gray.shape:
            raise ValueError(f"dis_flow: frame shapes differ: {prev_gray.shape} vs {gray.shape}")
        return self._dis.calc(np.ascontiguousarray(prev_gray), np.ascontiguousarray(gray), None)


def dis_flow(prev_gray: np.ndarray, gray: np.ndarray, preset: str = "ultrafast") -> np.ndarray:
    """One-off DIS flow (builds an estimator; keep a ``DISFlow`` for streams)."""
    return DISFlow(preset)(prev_gray, gray)


def encode_flow(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """[H, W, 2] flow in pixels -> [2, H, W] float32 in [-1, 1] (the network's flow input encoding)."""
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"encode_flow: flow must be [H, W, 2], got {flow.shape}")
    return np.ascontiguousarray((np.clip(flow, -bound, bound) / bound).transpose(2, 0, 1), dtype=np.float32)


def endpoint_error(flow: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean end-point error (pixels) between two [H, W, 2] flows over ``valid`` pixels."""
    err = np.sqrt(((flow - truth) ** 2).sum(-1))
    return float(err[valid].mean() if valid is not None else err.mean())
