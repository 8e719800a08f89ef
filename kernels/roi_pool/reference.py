"""PyTorch reference of ROI max pooling, with exactly the semantics of ONNX ``MaxRoiPool``.

rois are ``[R, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` in input-image coordinates. For each roi:
corners are scaled by ``spatial_scale`` and rounded half away from zero (C ``round``), the roi is at
least 1x1 (``end - start + 1``), bin ``(ph, pw)`` covers rows
``[floor(ph * bin_h), ceil((ph + 1) * bin_h))`` offset by the roi start and clipped to the map, and an
empty bin is 0. Output ``[R, C, pooled_h, pooled_w]``. This is the oracle for every other face.
"""
from __future__ import annotations

import torch

from .args import check_attributes, check_layout, check_rois


def check_roi_pool_args(x: torch.Tensor, rois: torch.Tensor, pooled_shape, spatial_scale) -> tuple[int, int]:
    """Validate arguments; raise ValueError with a one-line message. Returns (pooled_h, pooled_w)."""
    check_layout(x.shape, rois.shape)
    if not x.is_floating_point() or not rois.is_floating_point():
        raise ValueError(f"roi_pool: features and rois must be floating point, got {x.dtype} and {rois.dtype}")
    ph, pw = check_attributes(pooled_shape, spatial_scale)
    if rois.numel() and not torch.compiler.is_compiling():
        check_rois(rois, x.shape[0])
    return ph, pw


def _round_half_away(v: torch.Tensor) -> torch.Tensor:
    """C ``round`` of float32 values. In float64 so ``|v| + 0.5`` cannot round up (one ulp below .5)."""
    d = v.to(torch.float64)
    return torch.sign(d) * torch.floor(d.abs() + 0.5)


def roi_bins(rois: torch.Tensor, pooled_shape, spatial_scale: float, height: int, width: int):
    """Integer bin limits: (hstart, hend) [R, PH] and (wstart, wend) [R, PW], clipped to the map."""
    ph, pw = pooled_shape
    scaled = rois[:, 1:].to(torch.float32) * torch.tensor(spatial_scale, dtype=torch.float32)
    x1, y1, x2, y2 = _round_half_away(scaled).to(torch.int64).unbind(1)
    roi_h = (y2 - y1 + 1).clamp(min=1).to(torch.float32)
    roi_w = (x2 - x1 + 1).clamp(min=1).to(torch.float32)
    bin_h = roi_h / float(ph)
    bin_w = roi_w / float(pw)
    p_h = torch.arange(ph, dtype=torch.float32)
    p_w = torch.arange(pw, dtype=torch.float32)
    hstart = torch.floor(p_h[None] * bin_h[:, None]).to(torch.int64) + y1[:, None]
    hend = torch.ceil((p_h[None] + 1) * bin_h[:, None]).to(torch.int64) + y1[:, None]
    wstart = torch.floor(p_w[None] * bin_w[:, None]).to(torch.int64) + x1[:, None]
    wend = torch.ceil((p_w[None] + 1) * bin_w[:, None]).to(torch.int64) + x1[:, None]
    return (hstart.clamp(0, height), hend.clamp(0, height),
            wstart.clamp(0, width), wend.clamp(0, width))


def roi_pool_math(x: torch.Tensor, rois: torch.Tensor, pooled_shape, spatial_scale: float = 1.0) -> torch.Tensor:
    """ROI max pooling in plain tensor ops (differentiable through the max)."""
    ph, pw = check_roi_pool_args(x, rois, pooled_shape, spatial_scale)
    n, c, h, w = x.shape
    r = rois.shape[0]
    if r == 0:
        return x.new_zeros((0, c, ph, pw))
    hs, he, ws, we = roi_bins(rois, (ph, pw), float(spatial_scale), h, w)
    feats = x[rois[:, 0].to(torch.int64)]                                   # [R, C, H, W]
    hh = torch.arange(h)
    ww = torch.arange(w)
    mask_h = (hh[None, None] >= hs[..., None]) & (hh[None, None] < he[..., None])   # [R, PH, H]
    mask_w = (ww[None, None] >= ws[..., None]) & (ww[None, None] < we[..., None])   # [R, PW, W]
    neg = torch.tensor(float("-inf"), dtype=x.dtype)
    # separable max: over w for each pw, then over h for each ph
    cols = torch.stack([torch.where(mask_w[:, None, None, j], feats, neg).amax(-1) for j in range(pw)], -1)
    out = torch.stack([torch.where(mask_h[:, None, i, :, None], cols, neg).amax(2) for i in range(ph)], 2)
    empty = (he <= hs)[:, None, :, None] | (we <= ws)[:, None, None, :]
    return torch.where(empty, torch.zeros((), dtype=x.dtype), out)
