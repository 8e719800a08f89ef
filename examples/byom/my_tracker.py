"""A tracker of your own, the way `edge` takes it: a Siamese tracker with its own small backbone (feature taps at
strides 4 and 8 instead of our MobileNetV2 stages 6 and 13), 7x7 ROI pooling instead of 4x4, and 128
candidates per frame instead of 256. Nothing in `edge` changes for it:

    edge export my_tracker --weights my_tracker.pt -o out/my_tracker      # this folder on PYTHONPATH
    edge build out/my_tracker --target cpu -o engines/my_tracker
    edge run --source clip.mp4 --tracker engines/my_tracker --init-box 60,30,60,70

The model contract (README, "Bring your own model"): a module with ``build_<name>(weights)``,
``networks(model)`` and ``config(model)``. The tracker runtime feeds ``template(image, box)`` and
``search(image, rois, template)``; it reads ``embedding`` from the first and ``scores`` (plus, optionally,
the candidates' ``embeddings`` for the box regression) from the second.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge import ops
from edge.models.checkpoint import load_state_dict
from edge.models.registry import NetworkSpec

CROP = 96                 # search/template crop side in px (the runtime crops and resizes to it)
CANDIDATES = 128          # candidate boxes scored per frame
POOLED = (7, 7)           # RoiPool output per feature level


class MyTracker(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 24, 3, 2, 1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(24, 32, 3, 2, 1), nn.ReLU())
        self.pool4 = ops.RoiPool(POOLED, 1 / 4)         # on the stride-4 map
        self.pool8 = ops.RoiPool(POOLED, 1 / 8)         # on the stride-8 map

    def embed(self, image: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """[1,3,S,S] crop (RGB 0..255), [R,5] rois (batch, x1, y1, x2, y2 in crop px) -> [R, D]."""
        f4 = self.stem(image / 127.5 - 1.0)
        f8 = self.down(f4)
        parts = [F.normalize(p(f, rois).flatten(1), dim=1, eps=1e-6) for p, f in ((self.pool4, f4), (self.pool8, f8))]
        return torch.cat(parts, 1)


class Template(nn.Module):
    def __init__(self, m: MyTracker):
        super().__init__()
        self.m = m

    def forward(self, image, box):
        return self.m.embed(image, box)


class Search(nn.Module):
    def __init__(self, m: MyTracker):
        super().__init__()
        self.m = m

    def forward(self, image, rois, template):
        emb = self.m.embed(image, rois)
        return torch.matmul(emb, template.reshape(-1, 1)).reshape(-1), emb


def build_my_tracker(weights: str | None = None) -> MyTracker:
    torch.manual_seed(0)
    model = MyTracker()
    if weights:
        model.load_state_dict(load_state_dict(weights))   # plain, {"state_dict": ...}, or DataParallel keys
    return model.eval()


def networks(model: MyTracker) -> dict[str, NetworkSpec]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, CROP, CROP, generator=g) * 255
    xy = torch.rand(CANDIDATES, 2, generator=g) * CROP * 0.6
    rois = torch.cat([torch.zeros(CANDIDATES, 1), xy, xy + 8 + torch.rand(CANDIDATES, 2, generator=g) * 30], 1)
    with torch.no_grad():
        template = model.embed(image, rois[:1])
    return {
        "template": NetworkSpec(Template(model).eval(), {"image": image, "box": rois.clone()}, ["embedding"],
                                {"box": {0: "boxes"}, "embedding": {0: "boxes"}},
                                profile={"box": {0: (1, CANDIDATES, CANDIDATES)}}),
        "search": NetworkSpec(Search(model).eval(), {"image": image, "rois": rois, "template": template},
                              ["scores", "embeddings"], {"rois": {0: "rois"}, "scores": {0: "rois"},
                                                         "embeddings": {0: "rois"}},
                              profile={"rois": {0: (1, CANDIDATES, CANDIDATES)}}),
    }


def config(model: MyTracker) -> dict:
    return {"task": "tracking", "crop_size": CROP, "num_candidates": CANDIDATES, "max_score": 2.0,
            "networks": {"template": {"inputs": ["image", "box"], "outputs": ["embedding"]},
                         "search": {"inputs": ["image", "rois", "template"], "outputs": ["scores", "embeddings"]}},
            # TrackerParams defaults for this model (the caller's --lost-threshold etc. still win)
            "tracker_params": {"lost_threshold": 0.5, "regression_samples": CANDIDATES}}
