"""Edge-sized SINT (Tao et al., CVPR 2016) on the ImageNet MobileNetV2 (PyTorch reference side).

Candidate features = ROI max pooling (``edge.kernels.roi_pool.torch_op.RoiPool``, so export finds the
custom op) on two feature levels of a search crop (stage 6: 32 ch, stride 8; stage 13: 96 ch, stride 16),
each flattened and L2-normalised, then concatenated. Score = inner product with the template embedding
(= sum of two cosines, at most 2). ImageNet normalisation is inside the network: inputs are float32 RGB
0..255 NCHW crops of ``crop_size`` x ``crop_size``.

Two networks, as deployed trackers split it (all other tracker logic is in ``edge.tracking``):
- ``template``: ``image`` [1,3,S,S], ``box`` [B,5] rois -> ``embedding`` [B,D] (run once at init; B = 1
  for the target, more rows give features for the optional box regression);
- ``search``: ``image`` [1,3,S,S], ``rois`` [R,5], ``template`` [1,D] -> ``scores`` [R] and the candidates'
  ``embeddings`` [R,D] (run per frame; the box regression reads the best row, so no second trunk pass).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge.kernels.roi_pool.torch_op import RoiPool
from edge.models.mobilenet_v2 import IMAGENET_MEAN, IMAGENET_STD, STAGES, MobileNetV2, mobilenet_v2_imagenet

from edge.models.registry import NetworkSpec

MODEL_NAME = "sint"
CROP_SIZE = 160          # search/template crop side (px); multiple of 16
TAPS = (6, 13)           # MobileNetV2 stages: 32 ch stride 8, 96 ch stride 16
POOLED = (4, 4)          # RoiPool output per level
NUM_CANDIDATES = 256     # fixed candidate count of the runtime (the network accepts any R)
UNTRAINED = "imagenet"    # build_tracker(weights=UNTRAINED): frozen ImageNet features, no tracking training
MAX_TEMPLATE_BOXES = 128 # template rows at init: target + box-regression samples (TrackerParams.regression_samples)


class SINT(nn.Module):
    """Frozen MobileNetV2 trunk + two-level RoiPool embedding; ``forward`` is the unsplit tracker step."""

    def __init__(self, backbone: MobileNetV2, crop_size: int = CROP_SIZE, taps: tuple[int, ...] = TAPS,
                 pooled: tuple[int, int] = POOLED):
        super().__init__()
        if crop_size % 16:
            raise ValueError(f"crop_size must be a multiple of 16, got {crop_size}")
        self.crop_size, self.taps, self.pooled = int(crop_size), tuple(taps), tuple(pooled)
        # keep only the stages we run: the trunk up to the deepest tap
        self.trunk = nn.Sequential(*list(backbone.features.children())[: max(taps) + 1])
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        self.pools = nn.ModuleList(RoiPool(pooled, 1.0 / STAGES[t][1]) for t in taps)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0))
        self.eval()

    def train(self, mode: bool = True) -> "SINT":
        super().train(mode)
        self.trunk.eval()  # the backbone is frozen: BatchNorm always in inference mode
        return self

    @property
    def embedding_dim(self) -> int:
        return sum(STAGES[t][0] for t in self.taps) * self.pooled[0] * self.pooled[1]

    def feature_maps(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - self.mean) * self.inv_std
        maps = []
        for i, stage in enumerate(self.trunk):
            x = stage(x)
            if i in self.taps:
                maps.append(x)
        return maps

    def embed(self, image: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """[1,3,S,S] crop, [R,5] rois (batch, x1, y1, x2, y2 in crop px) -> [R, D] concatenated unit parts."""
        parts = [F.normalize(pool(fmap, rois).flatten(1), dim=1, eps=1e-6)
                 for pool, fmap in zip(self.pools, self.feature_maps(image))]
        return torch.cat(parts, 1)

    def score(self, image: torch.Tensor, rois: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        return self.score_embed(image, rois, template)[0]

    def score_embed(self, image: torch.Tensor, rois: torch.Tensor,
                    template: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores [R], embeddings [R, D]). The template is a [D, 1] column: onnxruntime's MatMul by a 1-D
        vector took 0.70 ms at R=256, D=2048 where [D, 1] takes 0.05 ms."""
        emb = self.embed(image, rois)
        return torch.matmul(emb, template.reshape(-1, 1)).reshape(-1), emb

    def forward(self, template_image: torch.Tensor, template_box: torch.Tensor, search_image: torch.Tensor,
                rois: torch.Tensor) -> torch.Tensor:
        """Unsplit: scores [R] of ``rois`` in ``search_image`` against ``template_box`` in ``template_image``."""
        return self.score(search_image, rois, self.embed(template_image, template_box[:1]))


class TemplateNet(nn.Module):
    """``image`` [1,3,S,S], ``box`` [B,5] -> ``embedding`` [B,D]."""

    def __init__(self, sint: SINT):
        super().__init__()
        self.sint = sint

    def forward(self, image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        return self.sint.embed(image, box)


class SearchNet(nn.Module):
    """``image`` [1,3,S,S], ``rois`` [R,5], ``template`` [1,D] -> ``scores`` [R], ``embeddings`` [R,D]."""

    def __init__(self, sint: SINT):
        super().__init__()
        self.sint = sint

    def forward(self, image: torch.Tensor, rois: torch.Tensor,
                template: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sint.score_embed(image, rois, template)


def build_tracker(weights: str | None = None, crop_size: int = CROP_SIZE) -> SINT:
    """SINT on the offline ImageNet MobileNetV2, or a SINT state dict file (``weights_only=True``).
    ``weights="imagenet"``: the untrained tracker (frozen ImageNet features only)."""
    from edge.models.mobilenet_v2 import load_state_dict_file
    if weights is None or weights == UNTRAINED:
        return SINT(mobilenet_v2_imagenet(), crop_size).eval()
    model = SINT(MobileNetV2(), crop_size)
    state = load_state_dict_file(weights)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{weights} is not a SINT state dict: {str(e).splitlines()[0][:200]}") from None
    return model.eval()


def example_rois(count: int, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` random boxes inside a ``size`` crop as [count, 5] rois (batch index 0)."""
    g = generator or torch.Generator().manual_seed(0)
    xy = torch.rand(count, 2, generator=g) * size * 0.6
    wh = 8 + torch.rand(count, 2, generator=g) * size * 0.4
    return torch.cat([torch.zeros(count, 1), xy, (xy + wh).clamp(max=size - 1)], 1)


def networks(model: SINT) -> dict[str, NetworkSpec]:
    """The exportable networks with example inputs (in forward order) and dynamic axes."""
    s = model.crop_size
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, s, s, generator=g) * 255
    rois = example_rois(NUM_CANDIDATES, s, g)
    with torch.no_grad():
        template = model.embed(image, rois[:1])
    return {
        # the template runs once per (re-)init, on the target plus the box-regression samples: the example
        # (what build times and validates) and the TensorRT optimum are that call
        "template": NetworkSpec(TemplateNet(model).eval(),
                                {"image": image, "box": example_rois(MAX_TEMPLATE_BOXES, s, g)},
                                ["embedding"], {"box": {0: "boxes"}, "embedding": {0: "boxes"}},
                                profile={"box": {0: (1, MAX_TEMPLATE_BOXES, MAX_TEMPLATE_BOXES)}}),
        "search": NetworkSpec(SearchNet(model).eval(), {"image": image, "rois": rois, "template": template},
                              ["scores", "embeddings"],
                              {"rois": {0: "rois"}, "scores": {0: "rois"}, "embeddings": {0: "rois"}},
                              profile={"rois": {0: (1, NUM_CANDIDATES, NUM_CANDIDATES)}}),
    }


def config(model: SINT) -> dict:
    """JSON-serialisable constants the runtime needs (goes into the manifest)."""
    return {
        "model": MODEL_NAME,
        "task": "tracking",
        "crop_size": model.crop_size,
        "input_format": "RGB float32 0..255 NCHW (normalisation inside the network)",
        "embedding_dim": model.embedding_dim,
        "num_candidates": NUM_CANDIDATES,
        "feature_taps": [{"stage": t, "channels": STAGES[t][0], "stride": STAGES[t][1]} for t in model.taps],
        "pooled_shape": list(model.pooled),
        "max_score": float(len(model.taps)),
        "networks": {
            "template": {"inputs": ["image", "box"], "outputs": ["embedding"]},
            "search": {"inputs": ["image", "rois", "template"], "outputs": ["scores", "embeddings"]},
        },
    }
