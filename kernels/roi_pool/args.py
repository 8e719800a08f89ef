"""Argument checks shared by every face of RoiPool (torch-free; works on numpy arrays and torch tensors)."""
from __future__ import annotations

import math


def check_layout(x_shape, rois_shape) -> None:
    """features [N, C, H, W] and rois [R, 5]; one-line ValueError otherwise."""
    if len(x_shape) != 4:
        raise ValueError(f"roi_pool: features must be [N, C, H, W], got rank {len(x_shape)}")
    if len(rois_shape) != 2 or rois_shape[1] != 5:
        raise ValueError(f"roi_pool: rois must be [R, 5] (batch, x1, y1, x2, y2), got {tuple(rois_shape)}")


def check_attributes(pooled_shape, spatial_scale) -> tuple[int, int]:
    """pooled_shape: two positive integers; spatial_scale: finite > 0. Returns (pooled_h, pooled_w)."""
    try:
        ph, pw = (int(v) for v in pooled_shape)
    except (TypeError, ValueError):
        raise ValueError(f"roi_pool: pooled_shape must be two integers, got {pooled_shape!r}") from None
    if ph <= 0 or pw <= 0:
        raise ValueError(f"roi_pool: pooled_shape must be positive, got {(ph, pw)}")
    if not float(spatial_scale) > 0 or not math.isfinite(float(spatial_scale)):
        raise ValueError(f"roi_pool: spatial_scale must be a finite number > 0, got {spatial_scale}")
    return ph, pw


def check_rois(rois, batch: int) -> None:
    """Finite coordinates and batch indices in [0, batch) (``rois`` numpy array or torch tensor)."""
    if not bool((rois == rois).all()) or not bool((abs(rois) != float("inf")).all()):
        raise ValueError("roi_pool: rois contain NaN or Inf")
    b = rois[:, 0]
    if bool((b < 0).any()) or bool((b >= batch).any()):
        raise ValueError(f"roi_pool: roi batch index outside [0, {batch})")
