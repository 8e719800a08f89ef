"""The ConvLSTMCell op as models call it (PyTorch side).

``convlstm_cell(x, h, c, weight, bias) -> (h', c')`` and the module ``ConvLSTMCell``. The semantics are
``reference.convlstm_cell_math`` (eager: plain conv + gates, differentiable). Inside
``torch.onnx.export(dynamo=False)`` (use ``edge.ops.export_onnx``) the call becomes one
custom-domain node ``edge.ops::ConvLSTMCell(X, H, C, W, B) -> (H_next, C_next)`` whose function body is
Concat, Conv (``auto_pad=SAME_UPPER``: odd k, stride 1, so pads = k // 2 from W's shape), Split into 4,
Sigmoid/Tanh, Mul/Add (``onnx_function.py``). Arguments are validated (one-line ValueError) on every path.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .reference import check_convlstm_args, convlstm_cell_math

from edge.kernels import DOMAIN


class _ConvLSTMOnnx(torch.autograd.Function):
    """Export path: computes the reference forward, exports as one ``edge.ops::ConvLSTMCell`` node."""

    @staticmethod
    def forward(ctx, x, h, c, weight, bias):
        return convlstm_cell_math(x, h, c, weight, bias)

    @staticmethod
    def symbolic(g, x, h, c, weight, bias):
        h_next, c_next = g.op(f"{DOMAIN}::ConvLSTMCell", x, h, c, weight, bias, outputs=2)
        for out in (h_next, c_next):
            try:  # same type and shape as the state inputs
                out.setType(c.type())
            except Exception:
                pass
        return h_next, c_next


def convlstm_cell(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One fused ConvLSTM step; gate order i, f, o, g. Returns (h', c')."""
    check_convlstm_args(x, h, c, weight, bias)
    if torch.onnx.is_in_onnx_export():
        # Conv takes one element type: export everything in x's dtype
        h, c, weight, bias = (t if t.dtype == x.dtype else t.to(x.dtype) for t in (h, c, weight, bias))
        return _ConvLSTMOnnx.apply(x, h, c, weight, bias)
    return convlstm_cell_math(x, h, c, weight, bias)


class ConvLSTMCell(nn.Module):
    """ConvLSTM cell with one [4*hidden, in+hidden, k, k] weight and a [4*hidden] bias."""

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"ConvLSTMCell: kernel_size must be odd, got {kernel_size}")
        self.input_channels, self.hidden_channels, self.kernel_size = input_channels, hidden_channels, kernel_size
        self.weight = nn.Parameter(torch.empty(4 * hidden_channels, input_channels + hidden_channels,
                                               kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(4 * hidden_channels))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (h, c) for input x [N, Cin, H, W]."""
        z = x.new_zeros((x.shape[0], self.hidden_channels, x.shape[2], x.shape[3]))
        return z, z.clone()

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return convlstm_cell(x, h, c, self.weight, self.bias)
