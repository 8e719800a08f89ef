"""PyTorch reference of the fused ConvLSTM cell (Ego-RNN form, no peepholes).

``(x, h, c, W, B) -> (h', c')`` with ``z = conv2d(concat(x, h), W, B, padding=k//2)`` and gate order
``i, f, o, g`` along the channel axis of ``z`` (each ``hidden`` channels)::

    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);  g = tanh(z_g)
    c' = f * c + i * g;  h' = o * tanh(c')

One convolution over the concatenation with one bias equals Ego-RNN's input convs with bias plus hidden
convs without. Shapes: x [N, Cx, H, W], h and c [N, Ch, H, W], W [4*Ch, Cx+Ch, k, k] (k odd), B [4*Ch].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

GATE_ORDER = ("i", "f", "o", "g")


def check_convlstm_args(x, h, c, weight, bias) -> tuple[int, int, int]:
    """Validate shapes and dtypes; raise ValueError with a one-line message. Returns (Cx, Ch, k)."""
    for name, t in (("x", x), ("h", h), ("c", c), ("weight", weight)):
        if t.dim() != 4:
            raise ValueError(f"convlstm_cell: {name} must be rank 4, got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"convlstm_cell: {name} must be floating point, got {t.dtype}")
    if bias.dim() != 1:
        raise ValueError(f"convlstm_cell: bias must be rank 1, got shape {tuple(bias.shape)}")
    n, cx, hh, ww = x.shape
    ch = h.shape[1]
    if tuple(h.shape) != (n, ch, hh, ww) or tuple(c.shape) != tuple(h.shape):
        raise ValueError(f"convlstm_cell: h and c must be [{n}, Ch, {hh}, {ww}] and equal, "
                         f"got {tuple(h.shape)} and {tuple(c.shape)}")
    k = weight.shape[-1]
    if tuple(weight.shape) != (4 * ch, cx + ch, k, k) or k % 2 == 0:
        raise ValueError(f"convlstm_cell: weight must be [4*Ch, Cx+Ch, k, k] with odd k = "
                         f"[{4 * ch}, {cx + ch}, k, k], got {tuple(weight.shape)}")
    if bias.shape[0] != 4 * ch:
        raise ValueError(f"convlstm_cell: bias must be [{4 * ch}], got {tuple(bias.shape)}")
    return cx, ch, k


def convlstm_cell_math(x, h, c, weight, bias):
    """One ConvLSTM step in plain tensor ops. Returns (h', c')."""
    _, _, k = check_convlstm_args(x, h, c, weight, bias)
    z = F.conv2d(torch.cat([x, h], 1), weight, bias, padding=k // 2)
    zi, zf, zo, zg = z.chunk(4, 1)
    c_next = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zg)
    h_next = torch.sigmoid(zo) * torch.tanh(c_next)
    return h_next, c_next
