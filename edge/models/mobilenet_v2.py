"""MobileNetV2 in torchvision's module layout, so torchvision's ImageNet state dict loads key for key.

No torchvision needed. ``features[i]`` are torchvision's 19 stages; ``forward_taps`` returns the outputs
of chosen stages (strides: after stage 1 -> 2, 3 -> 4, 6 -> 8, 13 -> 16, 18 -> 32).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# (expand ratio t, channels c, repeats n, first stride s), as in the paper and torchvision
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# stage index -> (channels, stride)
STAGES = {1: (16, 2), 3: (24, 4), 6: (32, 8), 10: (64, 16), 13: (96, 16), 16: (160, 32), 17: (320, 32),
          18: (1280, 32)}


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = [] if expand == 1 else [conv_bn_relu(cin, hidden, 1)]
        layers += [conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn_relu(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward_taps(self, x: torch.Tensor, taps: tuple[int, ...], start: int = 0) -> list[torch.Tensor]:
        """Run stages ``start..max(taps)`` on x; return the outputs of the stages in ``taps``."""
        out = []
        for i in range(start, max(taps) + 1):
            x = self.features[i](x)
            if i in taps:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean((2, 3))
        return self.classifier(x)


def load_state_dict_file(path: str | Path) -> dict:
    """A state dict from a checkpoint file (``weights_only=True``; ``edge.models.checkpoint``)."""
    from edge.models.checkpoint import load_state_dict
    return load_state_dict(path)


def mobilenet_v2_imagenet(path: str | Path | None = None) -> MobileNetV2:
    """MobileNetV2 with torchvision's ImageNet weights (offline file by default); every key must match."""
    from edge.assets import mobilenet_v2_weights
    model = MobileNetV2()
    model.load_state_dict(load_state_dict_file(path or mobilenet_v2_weights()), strict=True)
    return model.eval()
