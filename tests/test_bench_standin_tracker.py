"""A tiny SINT-shaped tracker (same network names, I/O names and config keys as ``edge.models.sint``) so
``edge export`` / ``edge build`` / ``edge bench`` run end to end in seconds (model module; no tests here)."""
import torch
from torch import nn

from edge.kernels.roi_pool.torch_op import RoiPool
from edge.models.registry import NetworkSpec

CROP = 64


class TinySint(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.pool = RoiPool((2, 2), 0.25)

    def embed(self, image, rois):
        f = self.trunk(image / 255.0 - 0.5)
        return nn.functional.normalize(self.pool(f, rois).flatten(1), dim=1, eps=1e-6)


class Template(nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, image, box): return self.m.embed(image, box)


class Search(nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, image, rois, template): return torch.matmul(self.m.embed(image, rois), template.reshape(-1))


def build_tracker(weights=None):
    torch.manual_seed(0)
    m = TinySint()
    if weights:
        m.load_state_dict(torch.load(weights, weights_only=True))
    return m.eval()


def networks(m):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, CROP, CROP, generator=g) * 255
    xy = torch.rand(16, 2, generator=g) * 30
    rois = torch.cat([torch.zeros(16, 1), xy, xy + 8 + torch.rand(16, 2, generator=g) * 20], 1)
    with torch.no_grad():
        template = m.embed(image, rois[:1])
    return {"template": NetworkSpec(Template(m).eval(), {"image": image, "box": rois[:1].clone()}, ["embedding"],
                                    {"box": {0: "boxes"}, "embedding": {0: "boxes"}}),
            "search": NetworkSpec(Search(m).eval(), {"image": image, "rois": rois, "template": template}, ["scores"],
                                  {"rois": {0: "rois"}, "scores": {0: "rois"}})}


def config(m):
    return {"task": "tracking", "crop_size": CROP, "max_score": 1.0,
            "networks": {"template": {"inputs": ["image", "box"], "outputs": ["embedding"]},
                         "search": {"inputs": ["image", "rois", "template"], "outputs": ["scores"]}}}
