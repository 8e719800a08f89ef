"""The RoiPool op as models call it (PyTorch side).

``roi_pool(x, rois, pooled_shape, spatial_scale)`` and the module ``RoiPool``. The semantics are
``reference.roi_pool_math``. Three paths, same results:

- eager on CPU, float32: the numba kernel of ``cpu.py`` (exact same numbers), with a backward that sends
  each output's gradient to its argmax (the first maximum of its bin); fast for training and benchmarks;
- anything else (other devices/dtypes, ``torch.jit`` tracing, ``torch.compile``): ``roi_pool_math``;
- inside ``torch.onnx.export(dynamo=False)`` (use ``edge.ops.export_onnx``): one
  custom-domain node ``edge.ops::RoiPool(X, rois) -> Y`` with attributes ``pooled_shape`` (ints) and
  ``spatial_scale`` (float); its function body is ONNX ``MaxRoiPool`` (``onnx_function.py``).

Arguments are validated (one-line ValueError) on every path, so bad input fails at call or export time.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .reference import check_roi_pool_args, roi_pool_math

from edge.kernels import DOMAIN


class _RoiPoolNumba(torch.autograd.Function):
    """Eager CPU float32 path: numba forward, argmax-scatter backward."""

    @staticmethod
    def forward(ctx, x, rois, ph: int, pw: int, spatial_scale: float):
        from . import cpu
        xs, rs = x.detach().numpy(), rois.detach().numpy()
        if ctx.needs_input_grad[0]:
            y, arg = cpu.roi_pool_with_argmax(xs, rs, (ph, pw), spatial_scale)
            ctx.save_for_backward(torch.from_numpy(arg), rois.detach()[:, 0].to(torch.int64))
            ctx.x_shape = tuple(x.shape)
        else:
            y = cpu.roi_pool(xs, rs, (ph, pw), spatial_scale)
        return torch.from_numpy(y)

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        arg, batch = ctx.saved_tensors
        n, c, h, w = ctx.x_shape
        base = (batch.view(-1, 1, 1, 1) * c + torch.arange(c).view(1, -1, 1, 1)) * (h * w)
        valid = arg >= 0
        gx = torch.zeros(n * c * h * w, dtype=gy.dtype)
        gx.index_add_(0, (base + arg)[valid], gy[valid])
        return gx.view(n, c, h, w), None, None, None, None


class _RoiPoolOnnx(torch.autograd.Function):
    """Export path: computes the reference forward, exports as one ``edge.ops::RoiPool`` node."""

    @staticmethod
    def forward(ctx, x, rois, ph: int, pw: int, spatial_scale: float):
        return roi_pool_math(x, rois, (ph, pw), spatial_scale)

    @staticmethod
    def symbolic(g, x, rois, ph: int, pw: int, spatial_scale: float):
        y = g.op(f"{DOMAIN}::RoiPool", x, rois, pooled_shape_i=[ph, pw], spatial_scale_f=spatial_scale)
        try:  # output type for the exporter's shape inference: [R, C, PH, PW]
            r = rois.type().varyingSizes()[0]
            c = x.type().varyingSizes()[1]
            y.setType(x.type().with_sizes([r, c, ph, pw]))
        except Exception:  # unknown input types: leave it to ONNX shape inference
            pass
        return y


def _fast_path_ok(x: torch.Tensor, rois: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and rois.device.type == "cpu" and x.dtype == torch.float32
            and not torch.jit.is_tracing() and not torch.jit.is_scripting()
            and not torch.compiler.is_compiling() and not rois.requires_grad)


def roi_pool(x: torch.Tensor, rois: torch.Tensor, pooled_shape: tuple[int, int],
             spatial_scale: float = 1.0) -> torch.Tensor:
    """ROI max pooling: x [N, C, H, W], rois [R, 5] -> [R, C, PH, PW] (ONNX MaxRoiPool semantics)."""
    ph, pw = check_roi_pool_args(x, rois, pooled_shape, spatial_scale)
    spatial_scale = float(spatial_scale)
    if torch.onnx.is_in_onnx_export():
        if rois.dtype != x.dtype:  # MaxRoiPool takes X and rois of one type
            rois = rois.to(x.dtype)
        return _RoiPoolOnnx.apply(x, rois, ph, pw, spatial_scale)
    if _fast_path_ok(x, rois):
        return _RoiPoolNumba.apply(x, rois, ph, pw, spatial_scale)
    return roi_pool_math(x, rois, (ph, pw), spatial_scale)


class RoiPool(nn.Module):
    def __init__(self, pooled_shape: tuple[int, int], spatial_scale: float = 1.0):
        super().__init__()
        self.pooled_shape = (int(pooled_shape[0]), int(pooled_shape[1]))
        self.spatial_scale = float(spatial_scale)
        if min(self.pooled_shape) <= 0 or not self.spatial_scale > 0:
            raise ValueError(f"RoiPool: pooled_shape must be positive and spatial_scale > 0, "
                             f"got {self.pooled_shape} and {self.spatial_scale}")

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return roi_pool(x, rois, self.pooled_shape, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"pooled_shape={self.pooled_shape}, spatial_scale={self.spatial_scale}"
