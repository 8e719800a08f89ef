"""An action classifier of your own, the way `edge` takes it: its own small encoder on RGB + optical flow at
64 px, our ``edge.ops.ConvLSTMCell`` with 16 hidden channels, windows of 4 frames (ours: 32 channels, 8).

    edge export my_classifier -o out/my_classifier                        # this folder on PYTHONPATH
    edge build out/my_classifier --target cpu -o engines/my_classifier
    edge run --source clip.mp4 --classifier engines/my_classifier --events events.jsonl

The classifier runtime feeds ``encoder(rgb, flow)`` (rgb [B,3,S,S] RGB 0..255; flow [B,2,S,S] OpenCV DIS flow
clipped to +-bound px and divided by it) and reads ``features`` (+ optional ``attention``); it loops
``step(features, h, c) -> h_next, c_next, logits`` over each window from zero state.
"""
from __future__ import annotations

import torch
from torch import nn

from edge import ops
from edge.data.actions import CLASSES          # the labelled clips `edge bench` generates use these names
from edge.models.checkpoint import load_state_dict
from edge.models.registry import NetworkSpec

SIZE, WINDOW, HIDDEN, C = 64, 4, 16, 12


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.rgb = nn.Sequential(nn.Conv2d(3, C, 3, 2, 1), nn.ReLU(), nn.Conv2d(C, C, 3, 2, 1), nn.ReLU())
        self.flow = nn.Sequential(nn.Conv2d(2, C, 3, 2, 1), nn.ReLU(), nn.Conv2d(C, C, 3, 2, 1), nn.ReLU())
        self.mix = nn.Conv2d(2 * C, C, 3, 2, 1)

    def forward(self, rgb, flow):
        f = torch.relu(self.mix(torch.cat([self.rgb(rgb / 255.0), self.flow(flow)], 1)))   # [B, C, 8, 8]
        return f


class Step(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = ops.ConvLSTMCell(C, HIDDEN)
        self.head = nn.Linear(HIDDEN, len(CLASSES))

    def forward(self, features, h, c):
        h2, c2 = self.cell(features, h, c)
        return h2, c2, self.head(c2.mean((2, 3)))


class MyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.step = Encoder(), Step()


def build_my_classifier(weights: str | None = None) -> MyClassifier:
    torch.manual_seed(0)
    model = MyClassifier()
    if weights:
        model.load_state_dict(load_state_dict(weights))
    return model.eval()


def networks(model: MyClassifier) -> dict[str, NetworkSpec]:
    g = torch.Generator().manual_seed(0)
    rgb, flow = torch.rand(1, 3, SIZE, SIZE, generator=g) * 255, torch.rand(1, 2, SIZE, SIZE, generator=g) * 2 - 1
    with torch.no_grad():
        feats = model.encoder(rgb, flow)
    h = torch.zeros(1, HIDDEN, *feats.shape[2:])
    b = {0: "batch"}
    return {"encoder": NetworkSpec(model.encoder, {"rgb": rgb, "flow": flow}, ["features"],
                                   {"rgb": b, "flow": b, "features": b}),
            "step": NetworkSpec(model.step, {"features": feats, "h": h, "c": h.clone()}, ["h_next", "c_next", "logits"],
                                {k: b for k in ("features", "h", "c", "h_next", "c_next", "logits")})}


def config(model: MyClassifier) -> dict:
    return {"classes": list(CLASSES), "input_size": SIZE, "clip_len": WINDOW, "stride": 2,
            "flow": {"preset": "ultrafast", "bound": 8.0}}
