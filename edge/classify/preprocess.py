"""Frames and optical flow -> the classifier's network inputs (torch-free).

One definition used by training, the PyTorch reference and the device runtime:

* ``rgb_input(frame_bgr, size)`` -> [1, 3, S, S] float32 RGB in 0..255 (ImageNet normalisation happens
  inside the network);
* ``flow_input(flow)`` -> [1, 2, S, S] float32 in [-1, 1] (``edge.flow.encode_flow``);
* ``FrameStream`` turns consecutive frames of one stream into ``(rgb, flow)`` pairs, flow from the previous
  frame to this one computed with DIS on the resized grayscale frames (zero flow on the first frame after
  ``reset()``).
"""
from __future__ import annotations

import cv2
import numpy as np

from edge.flow import FLOW_BOUND, DISFlow, encode_flow
from edge.image import bgr_to_nchw_rgb


def resize_frame(frame_bgr: np.ndarray, size: int) -> np.ndarray:
    """HxWx3 uint8 BGR -> size x size x 3 uint8 BGR (INTER_AREA when shrinking, identity if already there)."""
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
        raise ValueError(f"frame must be HxWx3 uint8 BGR, got {frame_bgr.dtype} {frame_bgr.shape}")
    h, w = frame_bgr.shape[:2]
    if (h, w) == (size, size):
        return frame_bgr
    interp = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
    return cv2.resize(frame_bgr, (size, size), interpolation=interp)


def rgb_input(frame_bgr: np.ndarray, size: int) -> np.ndarray:
    """Frame (HxWx3 uint8 BGR) -> [1, 3, size, size] float32 RGB 0..255."""
    return bgr_to_nchw_rgb(resize_frame(frame_bgr, size))


def gray(frame_bgr_small: np.ndarray) -> np.ndarray:
    """Resized BGR frame -> uint8 grayscale for the optical flow."""
    return cv2.cvtColor(frame_bgr_small, cv2.COLOR_BGR2GRAY)


def flow_input(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """[S, S, 2] flow in pixels at the input size -> [1, 2, S, S] float32 network input."""
    return encode_flow(flow, bound)[None]


class FrameStream:
    """Per-stream preprocessing state: the previous grayscale frame for the optical flow."""

    def __init__(self, size: int, preset: str = "ultrafast", bound: float = FLOW_BOUND):
        self.size, self.bound = int(size), float(bound)
        self.dis = DISFlow(preset)
        self.prev: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous frame: the next frame gets zero flow."""
        self.prev = None

    def __call__(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame -> (rgb [1,3,S,S], flow [1,2,S,S]) network inputs."""
        small = resize_frame(frame_bgr, self.size)
        g = gray(small)
        if self.prev is None:
            flow = np.zeros((self.size, self.size, 2), np.float32)
        else:
            flow = self.dis(self.prev, g)
        self.prev = g
        return bgr_to_nchw_rgb(small), flow_input(flow, self.bound)


def clip_inputs(frames_bgr: np.ndarray | list, size: int, preset: str = "ultrafast",
                bound: float = FLOW_BOUND) -> tuple[np.ndarray, np.ndarray]:
    """A clip of T+1 frames -> (rgb [T,3,S,S], flow [T,2,S,S]) for frames 1..T (flow from frame t-1 to t).

    The first frame only provides the flow of the second, exactly as a continuous stream does.
    """
    if len(frames_bgr) < 2:
        raise ValueError(f"a clip needs at least 2 frames (T+1), got {len(frames_bgr)}")
    stream = FrameStream(size, preset, bound)
    pairs = [stream(f) for f in frames_bgr]
    rgb = np.concatenate([p[0] for p in pairs[1:]])
    flow = np.concatenate([p[1] for p in pairs[1:]])
    return rgb, flow
