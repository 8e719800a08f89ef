"""A tiny stand-in model (tracker-like + classifier-like networks) with the real edge ops, for the export,
build and runtime tests (no tests here; imported by test_export.py and test_build_tensorrt.py)."""
import torch
from torch import nn
from edge.kernels.roi_pool.torch_op import RoiPool
from edge.kernels.convlstm.torch_op import ConvLSTMCell
from edge.models.registry import NetworkSpec


class Standin(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.pool = RoiPool((3, 3), 0.5)
        self.fc = nn.Linear(16 * 9, 12)
        self.cell = ConvLSTMCell(16, 8)
        self.head = nn.Linear(8, 5)


class Embed(nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, image, rois):
        f = self.m.backbone(image)
        e = self.m.fc(self.m.pool(f, rois).flatten(1))
        return nn.functional.normalize(e, dim=1)


class Encoder(nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, frames): return self.m.backbone(frames)


class Step(nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, features, h, c):
        h2, c2 = self.m.cell(features, h, c)
        return h2, c2, self.m.head(c2.mean((2, 3)))


def build_standin(weights=None):
    torch.manual_seed(0)
    m = Standin()
    if weights:
        m.load_state_dict(torch.load(weights, weights_only=True))
    return m.eval()


def networks(m):
    g = torch.Generator().manual_seed(1)
    rois = torch.tensor([[0, 2, 3, 20, 25], [0, 0, 0, 31, 31], [0, 10, 5, 12, 30], [0, 5, 5, 5, 5]] * 3, dtype=torch.float32)
    img = torch.randn(1, 3, 32, 32, generator=g)
    feats = torch.relu(torch.randn(2, 16, 8, 8, generator=g))
    h = torch.randn(2, 8, 8, 8, generator=g) * 0.1
    return {
        "template": NetworkSpec(Embed(m), {"image": img, "rois": rois[:1].clone()}, ["embedding"], {}),
        "search": NetworkSpec(Embed(m), {"image": img, "rois": rois}, ["embeddings"], {"rois": {0: "candidates"}, "embeddings": {0: "candidates"}}),
        "encoder": NetworkSpec(Encoder(m), {"frames": torch.randn(2, 3, 16, 16, generator=g)}, ["features"], {"frames": {0: "batch"}, "features": {0: "batch"}}),
        "step": NetworkSpec(Step(m), {"features": feats, "h": h, "c": h.clone()}, ["h_next", "c_next", "logits"],
                            {k: {0: "batch"} for k in ("features", "h", "c", "h_next", "c_next", "logits")}),
    }


def config(m):
    return {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "candidates": 12}
