"""The ConvLSTMCell op as models call it (PyTorch side).

``convlstm_cell(x, h, c, weight, bias) -> (h', c')`` and the module ``ConvLSTMCell``. The semantics are
``reference.convlstm_cell_math``; this module makes the call exportable as the custom-domain node
``edge.ops::ConvLSTMCell`` (see ``onnx_function.py``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .reference import convlstm_cell_math


def convlstm_cell(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One fused ConvLSTM step; gate order i, f, o, g. Returns (h', c')."""
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
