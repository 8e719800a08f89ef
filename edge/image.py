"""Frame layout conversions shared by the tracker's crop and the classifier's preprocessing (torch-free)."""
from __future__ import annotations

import cv2
import numpy as np


def bgr_to_nchw_rgb(image_bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """HxWx3 uint8 BGR -> [1, 3, H, W] float32 RGB 0..255 (the networks' image layout), into ``out`` when
    given. One plane per channel, converted as it is written: about half the time of a transposed copy,
    identical values."""
    if out is None:
        out = np.empty((1, 3) + image_bgr.shape[:2], np.float32)
    b, g, r = cv2.split(image_bgr)
    out[0, 0], out[0, 1], out[0, 2] = r, g, b
    return out
