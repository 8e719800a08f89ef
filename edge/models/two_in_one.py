"""Two-in-one stream action classifier (Zhao & Snoek 2019) with an Ego-RNN temporal model (reference, torch).

Per frame (**encoder**, inputs ``rgb`` [B,3,S,S] float32 RGB 0..255 and ``flow`` [B,2,S,S] encoded DIS flow,
outputs ``features`` [B,C,S/16,S/16] and ``attention`` [B,1,S/16,S/16]):

1. frozen ImageNet MobileNetV2 stages 0..3 -> low-level features L (24 ch, stride 4);
2. RGB stream: frozen stages 4..18 on L -> CAM of the top-1 ImageNet class from the ImageNet classifier
   weights (Ego-RNN) -> upsampled to the feature grid -> softmax over spatial positions (with a learnt
   temperature, initialised at CAM_SCALE; Ego-RNN uses 1) = ``attention``;
3. motion-condition branch on the flow -> (gamma, beta); motion modulation ``L' = (1 + gamma) * L + beta``
   (zero-initialised = identity); frozen stages 4..6 on L' -> 32 ch, stride 8. ``mod_stage=6`` moves the
   modulation onto the stage-6 features themselves (32 ch, stride 8; no frozen stage after it, so training
   needs no gradients through the backbone and the encoder runs stages 4..6 once). ``use_flow=False`` is the
   ablation (gamma = beta = 0: stage 6 of the RGB stream is used directly);
4. reduction (3x3 stride-2 conv + BN + ReLU) -> C channels, times ``attention * h*w`` = ``features``.

Per time step (**step**, inputs ``features``, ``h``, ``c`` -> ``h_next``, ``c_next``, ``logits``): the
``edge.ops`` ConvLSTMCell, then dropout + linear on the spatially averaged cell state.
A clip = encoder on each frame + T steps from an explicit zero state (``forward``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edge.classify.decision import Calibration, load_alarm_rules, rules_to_config
from edge.data.actions import CLIP_FPS
from edge.flow import FLOW_BOUND
from edge.kernels.convlstm.torch_op import ConvLSTMCell
from edge.models.mobilenet_v2 import IMAGENET_MEAN, IMAGENET_STD, STAGES, MobileNetV2, mobilenet_v2_imagenet

try:  # H5's registry; same dataclass shape defined locally until it exists
    from edge.models.registry import NetworkSpec
except ImportError:  # pragma: no cover
    from dataclasses import field

    @dataclass
    class NetworkSpec:  # type: ignore[no-redef]
        module: nn.Module
        inputs: dict
        outputs: list
        dynamic_axes: dict = field(default_factory=dict)
        profile: dict | None = None

CLASSES = ("none", "idle", "pass_by", "take", "put_back", "sit_down", "fall")   # = edge.data.actions.CLASSES
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "classifier.pt"
CAM_SCALE = 0.05               # initial CAM softmax temperature factor
MOD_STAGE, TAP_STAGE = 3, 6   # modulate after stage 3 (24 ch, stride 4); features from stage 6 (32 ch, /8)
MOD_STAGES = (MOD_STAGE, TAP_STAGE)   # where the motion modulation may sit (ClassifierConfig.mod_stage)


@dataclass(frozen=True)
class ClassifierConfig:
    classes: tuple = CLASSES
    size: int = 160          # input S x S
    clip_len: int = 8        # T steps per window
    reduce: int = 32         # C, channels into the ConvLSTM
    hidden: int = 32         # ConvLSTM hidden channels
    cond: int = 16           # motion-condition map channels
    use_flow: bool = True
    dropout: float = 0.5
    feature_dropout: float = 0.2
    flow_bound: float = FLOW_BOUND
    mod_stage: int = MOD_STAGE   # backbone stage whose output the motion modulation scales and shifts (3 or 6)
    sample_fps: float = CLIP_FPS  # the training clips' clock: the runtime feeds camera frames at this rate
    # subtract each frame's mean flow before the motion-condition branch: the camera's own motion (shake, pan)
    # moves every pixel alike and says nothing about the action (camera-motion compensation, as in improved
    # dense trajectories; the mean, not the median, so it exports as one ReduceMean)
    flow_centre: bool = False

    def __post_init__(self):
        if self.mod_stage not in MOD_STAGES:
            raise ValueError(f"mod_stage must be one of {MOD_STAGES}, got {self.mod_stage}")


class MotionCondition(nn.Module):
    """Optical flow [B,2,S,S] -> (gamma, beta) [B,out_ch,S/stride,S/stride] for the motion modulation
    (stride 4: stage 3, 24 ch; stride 8: stage 6, 32 ch)."""

    def __init__(self, cond: int, out_ch: int, stride: int = 4, centre: bool = False):
        super().__init__()
        self.centre = centre
        layers = [nn.Conv2d(2, cond // 2, 3, 2, 1), nn.ReLU(inplace=True),
                  nn.Conv2d(cond // 2, cond, 3, 2, 1), nn.ReLU(inplace=True)]
        if stride == 8:
            layers += [nn.Conv2d(cond, cond, 3, 2, 1), nn.ReLU(inplace=True)]
        elif stride != 4:
            raise ValueError(f"motion condition stride must be 4 or 8, got {stride}")
        self.body = nn.Sequential(*layers, nn.Conv2d(cond, cond, 3, 1, 1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(cond, out_ch, 1)
        self.beta = nn.Conv2d(cond, out_ch, 1)
        for m in (self.gamma, self.beta):  # start as the identity modulation
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.centre:                     # the camera's motion out: each frame's mean flow subtracted
            flow = flow - flow.mean((2, 3), keepdim=True)
        z = self.body(flow)
        return self.gamma(z), self.beta(z)


class Encoder(nn.Module):
    """(rgb, flow) -> (features [B,C,S/16,S/16], attention [B,1,S/16,S/16])."""

    def __init__(self, backbone: MobileNetV2, cfg: ClassifierConfig):
        super().__init__()
        self.use_flow = cfg.use_flow
        self.mod_stage = cfg.mod_stage
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0)
        feats = backbone.features
        self.low = feats[:MOD_STAGE + 1]                       # frozen stages 0..3   (24 ch, /4)
        self.mid = feats[MOD_STAGE + 1:TAP_STAGE + 1]          # frozen stages 4..6   (32 ch, /8)
        self.high = feats[TAP_STAGE + 1:]                      # frozen stages 7..18  (1280 ch, /32)
        self.cam_fc = backbone.classifier[1]                   # frozen ImageNet classifier (CAM weights)
        for m in (self.low, self.mid, self.high, self.cam_fc):
            m.requires_grad_(False)
        self.mc = MotionCondition(cfg.cond, STAGES[cfg.mod_stage][0], 4 if cfg.mod_stage == MOD_STAGE else 8,
                                  cfg.flow_centre)
        # CAM softmax temperature, learnt; ImageNet CAMs span ~30 logits on our frames, so a factor 1 (Ego-RNN)
        # makes the softmax near one-hot on whatever ImageNet object is salient: start at CAM_SCALE instead
        self.log_temp = nn.Parameter(torch.tensor(math.log(CAM_SCALE)))
        self.reduce = nn.Sequential(nn.Conv2d(STAGES[TAP_STAGE][0], cfg.reduce, 3, 2, 1, bias=False),
                                    nn.BatchNorm2d(cfg.reduce), nn.ReLU(inplace=True))

    def train(self, mode: bool = True):
        super().train(mode)
        for m in (self.low, self.mid, self.high):  # the frozen backbone keeps its BN statistics
            m.eval()
        return self

    def low_features(self, rgb: torch.Tensor) -> torch.Tensor:
        """Frozen stages 0..3 on the ImageNet-normalised frame."""
        return self.low((rgb - self.mean) / self.std)

    def cam(self, tap: torch.Tensor) -> torch.Tensor:
        """Unmodulated stage-6 features -> CAM [B,1,S/32,S/32] of the top-1 ImageNet class."""
        top = self.high(tap)
        logits = self.cam_fc(top.mean((2, 3)))                      # [B, 1000]
        wk = self.cam_fc.weight[logits.argmax(1)]                   # top-1 class weights [B, 1280]
        return (top * wk[:, :, None, None]).sum(1, keepdim=True)

    def modulate(self, low: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.mc(flow)
        return (1 + gamma) * low + beta

    def head(self, tap: torch.Tensor, cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Ego-RNN spatial attention: CAM -> softmax over positions -> multiply into the reduced features."""
        r = self.reduce(tap)
        b, _, h, w = r.shape
        cam = F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)
        att = torch.softmax((cam * torch.exp(self.log_temp)).reshape(b, 1, h * w), -1).reshape(b, 1, h, w)
        return r * (att * float(h * w)), att

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.low_features(rgb)
        tap = self.mid(low)                     # the RGB stream (appearance) ...
        cam = self.cam(tap)                     # ... gives the CAM attention, as in Ego-RNN
        if self.use_flow:                       # the motion-modulated stream gives the features
            tap = self.mid(self.modulate(low, flow)) if self.mod_stage == MOD_STAGE else self.modulate(tap, flow)
        return self.head(tap, cam)


class Step(nn.Module):
    """(features, h, c) -> (h_next, c_next, logits): one ConvLSTM step + head on the pooled cell state."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.feature_dropout = nn.Dropout2d(cfg.feature_dropout)  # training only
        self.cell = ConvLSTMCell(cfg.reduce, cfg.hidden, 3)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(cfg.hidden, len(cfg.classes))

    def forward(self, features: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        h_next, c_next = self.cell(self.feature_dropout(features), h, c)
        logits = self.fc(self.dropout(c_next.mean((2, 3))))
        return h_next, c_next, logits


class TwoInOne(nn.Module):
    """The whole classifier: ``forward(rgb [B,T,3,S,S], flow [B,T,2,S,S]) -> logits [B,K]``."""

    def __init__(self, cfg: ClassifierConfig = ClassifierConfig(), backbone: MobileNetV2 | None = None):
        super().__init__()
        self.cfg = cfg
        self.meta: dict = {}
        self.encoder = Encoder(backbone if backbone is not None else mobilenet_v2_imagenet(), cfg)
        self.step = Step(cfg)

    def init_state(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The explicit zero state (h, c) for a batch of features [B,C,h,w]."""
        return self.step.cell.init_state(features)

    def run_steps(self, feats: torch.Tensor) -> torch.Tensor:
        """features [B,T,C,h,w] -> logits after the last of T steps from the zero state."""
        h, c = self.init_state(feats[:, 0])
        logits = None
        for t in range(feats.shape[1]):
            h, c, logits = self.step(feats[:, t], h, c)
        return logits

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        b, t = rgb.shape[:2]
        feats, _ = self.encoder(rgb.flatten(0, 1), flow.flatten(0, 1))
        return self.run_steps(feats.unflatten(0, (b, t)))

    def trained_state(self) -> dict[str, torch.Tensor]:
        """Only the trained parts (no frozen backbone tensors)."""
        frozen = ("encoder.low.", "encoder.mid.", "encoder.high.", "encoder.cam_fc.", "encoder.mean",
                  "encoder.std")
        return {k: v.detach().clone() for k, v in self.state_dict().items() if not k.startswith(frozen)}


def save_checkpoint(model: TwoInOne, path: str | Path, meta: dict) -> None:
    """Trained parts + metadata (config, accuracies, how made) to ``path`` atomically."""
    from edge.models.checkpoint import save_payload
    save_payload(path, model.trained_state(),
                 {**meta, "config": {**asdict(model.cfg), "classes": list(model.cfg.classes)}})


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """(state_dict, meta) with ``weights_only=True``; one-line errors for missing/corrupt files."""
    from edge.models.checkpoint import load_payload
    state, meta = load_payload(path, "classifier checkpoint", "two-in-one")
    if not isinstance(meta.get("config"), dict):
        raise ValueError(f"classifier checkpoint {path} is not a two-in-one checkpoint "
                         "(expected keys state_dict and meta.config)")
    return state, meta


def build_classifier(weights: str | Path | None = None, *, use_flow: bool | None = None) -> TwoInOne:
    """The classifier in eval mode. ``weights=None`` -> the committed sample ``edge/weights/classifier.pt``
    (untrained new parts if that file is absent); the backbone always comes from the offline ImageNet file."""
    path = Path(weights) if weights is not None else (DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_file() else None)
    if path is None:
        torch.manual_seed(0)
        return TwoInOne(ClassifierConfig(use_flow=True if use_flow is None else use_flow)).eval()
    state, meta = load_checkpoint(path)
    cfgd = dict(meta["config"])
    cfgd["classes"] = tuple(cfgd["classes"])
    if use_flow is not None and use_flow != cfgd.get("use_flow", True):
        raise ValueError(f"checkpoint {path} was trained with use_flow={cfgd.get('use_flow')}")
    try:
        cfg = ClassifierConfig(**cfgd)
    except (TypeError, ValueError) as e:
        raise ValueError(f"classifier checkpoint {path}: bad config ({e})") from None
    model = TwoInOne(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    own = set(model.trained_state())
    bad = [k for k in missing if k in own] + list(unexpected)
    if bad:
        raise ValueError(f"classifier checkpoint {path} does not match the model: {', '.join(bad[:5])}")
    model.meta = meta
    return model.eval()


def networks(model: TwoInOne, batch: int = 1) -> dict[str, NetworkSpec]:
    """The two exportable networks: ``encoder`` and ``step`` (batch axis dynamic)."""
    cfg = model.cfg
    s = cfg.size
    rgb = torch.rand(batch, 3, s, s) * 255.0
    flow = torch.rand(batch, 2, s, s) * 2 - 1
    with torch.no_grad():
        feats, _ = model.encoder.eval()(rgb, flow)
    h = torch.zeros(batch, cfg.hidden, *feats.shape[2:])
    b = {0: "batch"}
    return {
        "encoder": NetworkSpec(model.encoder, {"rgb": rgb, "flow": flow}, ["features", "attention"],
                               {"rgb": b, "flow": b, "features": b, "attention": b}),
        "step": NetworkSpec(model.step, {"features": feats, "h": h, "c": h.clone()}, ["h_next", "c_next", "logits"],
                            {"features": b, "h": b, "c": b, "h_next": b, "c_next": b, "logits": b}),
    }


def config(model: TwoInOne) -> dict:
    """JSON-serialisable preprocessing and model constants for the manifest."""
    cfg = model.cfg
    grid = cfg.size // 16
    return {
        "classes": list(cfg.classes),
        "input_size": cfg.size,
        "rgb": {"layout": "NCHW", "channel_order": "RGB", "range": [0, 255], "normalisation": "inside network"},
        "clip_len": cfg.clip_len,
        "clip_frames": cfg.clip_len + 1,
        "sample_fps": cfg.sample_fps,
        "feature_shape": [cfg.reduce, grid, grid],
        "state_shape": [cfg.hidden, grid, grid],
        "flow": {"method": "opencv_dis", "preset": "ultrafast", "computed_at": "input_size gray",
                 "encoding": "clip(flow, -bound, bound) / bound, [u, v] channels", "bound": cfg.flow_bound,
                 "first_frame": "zero flow", "centred_in_network": cfg.flow_centre},
        "use_flow": cfg.use_flow,
        "state_reset": "zero h and c at the start of every window of clip_len steps",
        "logits": "of the last step of the window",
        # torch-free decision constants (edge.classify.decision): temperature + open-set rule fitted on the
        # validation split (absent in an uncalibrated checkpoint: T = 1, no rule), per-class alarm rules
        "calibration": Calibration.from_config(model.meta.get("calibration")).to_config(),
        "alarms": rules_to_config(load_alarm_rules(None, cfg.classes, strict=False)),
        "meta": {k: v for k, v in model.meta.items() if k not in ("config", "calibration", "evaluation")},
    }
