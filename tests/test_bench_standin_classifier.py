"""A tiny two-in-one-shaped classifier (same networks, I/O names and config keys as
``edge.models.two_in_one``) for fast end-to-end ``edge bench`` tests (model module; no tests here)."""
import torch
from torch import nn

from edge.data.actions import CLASSES
from edge.kernels.convlstm.torch_op import ConvLSTMCell
from edge.models.registry import NetworkSpec

SIZE, C, T = 160, 8, 8


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(5, C, 3, padding=1)
        self.att = nn.Conv2d(C, 1, 1)

    def forward(self, rgb, flow):
        x = nn.functional.avg_pool2d(torch.cat([rgb / 255.0 - 0.5, flow], 1), 16)
        f = torch.relu(self.conv(x))
        a = torch.softmax(self.att(f).flatten(1), 1).reshape(f.shape[0], 1, *f.shape[2:])
        return f * a * a.shape[2] * a.shape[3], a


class Step(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell, self.head = ConvLSTMCell(C, C), nn.Linear(C, len(CLASSES))

    def forward(self, features, h, c):
        h2, c2 = self.cell(features, h, c)
        return h2, c2, self.head(c2.mean((2, 3)))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.step = Encoder(), Step()


def build_classifier(weights=None):
    torch.manual_seed(0)
    m = Tiny()
    if weights:
        m.load_state_dict(torch.load(weights, weights_only=True))
    return m.eval()


def networks(m):
    g = torch.Generator().manual_seed(0)
    rgb, flow = torch.rand(1, 3, SIZE, SIZE, generator=g) * 255, torch.rand(1, 2, SIZE, SIZE, generator=g) * 2 - 1
    with torch.no_grad():
        feats, _ = m.encoder(rgb, flow)
    h = torch.zeros(1, C, *feats.shape[2:])
    b = {0: "batch"}
    return {"encoder": NetworkSpec(m.encoder, {"rgb": rgb, "flow": flow}, ["features", "attention"],
                                   {"rgb": b, "flow": b, "features": b, "attention": b}),
            "step": NetworkSpec(m.step, {"features": feats, "h": h, "c": h.clone()}, ["h_next", "c_next", "logits"],
                                {k: b for k in ("features", "h", "c", "h_next", "c_next", "logits")})}


def config(m):
    return {"classes": list(CLASSES), "input_size": SIZE, "clip_len": T}
