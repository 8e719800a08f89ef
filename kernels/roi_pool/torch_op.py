"""The RoiPool op as models call it (PyTorch side).

``roi_pool(x, rois, pooled_shape, spatial_scale)`` and the module ``RoiPool``. The semantics are
``reference.roi_pool_math``; this module makes the call exportable as the custom-domain node
``edge.ops::RoiPool`` (see ``onnx_function.py``).
"""
from __future__ import annotations

import torch
from torch import nn

from .reference import roi_pool_math


def roi_pool(x: torch.Tensor, rois: torch.Tensor, pooled_shape: tuple[int, int],
             spatial_scale: float = 1.0) -> torch.Tensor:
    """ROI max pooling: x [N, C, H, W], rois [R, 5] -> [R, C, PH, PW] (ONNX MaxRoiPool semantics)."""
    return roi_pool_math(x, rois, pooled_shape, spatial_scale)


class RoiPool(nn.Module):
    def __init__(self, pooled_shape: tuple[int, int], spatial_scale: float = 1.0):
        super().__init__()
        self.pooled_shape = (int(pooled_shape[0]), int(pooled_shape[1]))
        self.spatial_scale = float(spatial_scale)

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return roi_pool(x, rois, self.pooled_shape, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"pooled_shape={self.pooled_shape}, spatial_scale={self.spatial_scale}"
