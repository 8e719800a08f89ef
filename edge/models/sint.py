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

from pathlib import Path

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
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "tracker.pt"   # the default, when shipped
# the SINT-trained adapters (edge.models.train_tracker; edge/weights/tracker.md): NOT the default, because on the
# hard benchmark they track worse than the untrained tracker (AUC 0.526 vs 0.578; unseen textures 0.630 vs
# 0.662). Renaming this file to tracker.pt makes it the default of build_tracker() and `edge export tracker`.
TRAINED_WEIGHTS = DEFAULT_WEIGHTS.with_name("tracker_adapters.pt")
UNTRAINED = "imagenet"    # build_tracker(weights=UNTRAINED): frozen ImageNet features, no tracking training
NAMED_WEIGHTS = (UNTRAINED,)   # `edge export tracker --weights imagenet` takes the name, not a file
MAX_TEMPLATE_BOXES = 128 # template rows at init: target + box-regression samples (TrackerParams.regression_samples)


class Adapter(nn.Module):
    """Light trained head on a tapped map, before RoiPool: a residual per-position MLP
    ``x + project(relu(expand(x)))`` (1x1 convolutions; a 3x3 depthwise layer made training steps ~5x slower
    on CPU). ``project`` starts at zero, so an untrained adapter is the identity (the ImageNet tracker)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.project = nn.Conv2d(hidden, channels, 1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(F.relu(self.expand(x)))


class SINT(nn.Module):
    """Frozen MobileNetV2 trunk + optional trained adapters + two-level RoiPool embedding; ``forward`` is the
    unsplit tracker step."""

    def __init__(self, backbone: MobileNetV2, crop_size: int = CROP_SIZE, taps: tuple[int, ...] = TAPS,
                 pooled: tuple[int, int] = POOLED, adapter_hidden: tuple[int, ...] | None = None):
        super().__init__()
        if crop_size % 16:
            raise ValueError(f"crop_size must be a multiple of 16, got {crop_size}")
        self.crop_size, self.taps, self.pooled = int(crop_size), tuple(taps), tuple(pooled)
        # keep only the stages we run: the trunk up to the deepest tap
        self.trunk = nn.Sequential(*list(backbone.features.children())[: max(taps) + 1])
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        self.pools = nn.ModuleList(RoiPool(pooled, 1.0 / STAGES[t][1]) for t in taps)
        self.adapter_hidden = tuple(adapter_hidden) if adapter_hidden else None
        if self.adapter_hidden is not None:
            if len(self.adapter_hidden) != len(taps):
                raise ValueError(f"one adapter width per tap: {len(taps)} taps, got {self.adapter_hidden}")
            self.adapters = nn.ModuleList(Adapter(STAGES[t][0], h) for t, h in zip(taps, self.adapter_hidden))
        else:
            self.adapters = None
        self.tracker_params: dict = {}       # per-model TrackerParams defaults (checkpoint meta -> manifest)
        self.meta: dict = {}
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

    def trunk_maps(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The frozen trunk's tapped maps (what training caches)."""
        x = (image - self.mean) * self.inv_std
        maps = []
        for i, stage in enumerate(self.trunk):
            x = stage(x)
            if i in self.taps:
                maps.append(x)
        return maps

    def adapt(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        return maps if self.adapters is None else [a(m) for a, m in zip(self.adapters, maps)]

    def feature_maps(self, image: torch.Tensor) -> list[torch.Tensor]:
        return self.adapt(self.trunk_maps(image))

    def pool_embed(self, maps: list[torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        """Feature maps, [R,5] rois -> [R, D] concatenated unit parts (one L2-normalised part per level)."""
        parts = [F.normalize(pool(fmap, rois).flatten(1), dim=1, eps=1e-6) for pool, fmap in zip(self.pools, maps)]
        return torch.cat(parts, 1)

    def embed(self, image: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """[1,3,S,S] crop, [R,5] rois (batch, x1, y1, x2, y2 in crop px) -> [R, D] concatenated unit parts."""
        return self.pool_embed(self.feature_maps(image), rois)

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The trained parts only (the trunk always comes from the offline ImageNet file)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith("adapters.")}

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


def save_checkpoint(model: SINT, path: str | Path, meta: dict) -> None:
    """Trained parts + metadata (architecture, tracker parameter defaults, how it was made), atomically."""
    import json

    from edge.models.checkpoint import save_payload
    meta = json.loads(json.dumps(meta, default=str))      # plain types only: loadable with weights_only=True
    save_payload(path, model.trained_state(),
                 {**meta, "config": {"crop_size": model.crop_size, "taps": list(model.taps),
                                     "pooled": list(model.pooled), "adapter_hidden": list(model.adapter_hidden or ())},
                  "tracker_params": dict(model.tracker_params)})


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """(state_dict, meta) with ``weights_only=True``; one-line errors for missing/corrupt files."""
    from edge.models.checkpoint import load_payload
    return load_payload(path, "tracker checkpoint", "SINT tracker")


def build_tracker(weights: str | Path | None = None, crop_size: int = CROP_SIZE) -> SINT:
    """The tracker in eval mode. ``weights=None``: the shipped checkpoint ``edge/weights/tracker.pt`` (the
    untrained tracker if that file is absent, as now: see ``TRAINED_WEIGHTS``); ``"imagenet"``: the untrained tracker (frozen ImageNet
    features, no adapters: the tracker before issue 10); a path: a tracker checkpoint (trained adapters +
    meta, ``weights_only=True``) or a full SINT state dict. The trunk always comes from the offline ImageNet
    file."""
    if weights is None:
        weights = DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_file() else UNTRAINED
    if str(weights) == UNTRAINED:
        return SINT(mobilenet_v2_imagenet(), crop_size).eval()
    state, meta = load_checkpoint(weights)
    cfg = meta.get("config") or {}
    full = any(k.startswith("trunk.") for k in state)
    try:
        model = SINT(MobileNetV2() if full else mobilenet_v2_imagenet(), int(cfg.get("crop_size", crop_size)),
                     tuple(cfg.get("taps", TAPS)), tuple(cfg.get("pooled", POOLED)),
                     tuple(cfg.get("adapter_hidden") or ()) or None)
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ValueError(f"{weights} is not a SINT checkpoint: {str(e).splitlines()[0][:200]}") from None
    own = set(model.state_dict()) if full else set(model.trained_state())
    bad = [k for k in missing if k in own] + list(unexpected)
    if bad:
        raise ValueError(f"{weights} does not match the SINT model: {', '.join(bad[:5])}")
    model.tracker_params = dict(meta.get("tracker_params") or {})
    model.meta = meta
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
        "trained": model.adapters is not None,
        # per-model TrackerParams defaults (SiameseTracker reads them; explicit params override)
        "tracker_params": dict(model.tracker_params),
        "networks": {
            "template": {"inputs": ["image", "box"], "outputs": ["embedding"]},
            "search": {"inputs": ["image", "rois", "template"], "outputs": ["scores", "embeddings"]},
        },
    }
