"""Tracker parameters (pytracking style: one dataclass, every field a documented constant)."""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class TrackerParams:
    # search region (SiamFC geometry): p = context_amount * (w + h), s_z = sqrt((w + p)(h + p)),
    # crop side = search_ratio * s_z, resized to the network's crop size, padded with the frame's mean colour
    context_amount: float = 0.5
    search_ratio: float = 1.2
    # SINT candidates: radial grid (angles x rings + the zero offset) x 3 scales, a FIXED count
    num_candidates: int = 256
    num_angles: int = 12
    max_radius: float = 0.2          # outer ring radius as a fraction of the crop side
    scale_step: float = 1.05         # candidate scales (1/step, 1, step) of the previous box
    scale_lr: float = 0.5            # damping: new size = (1 - lr) * previous + lr * selected
    scale_penalty: float = 0.0       # subtracted from the scores of the rescaled candidates (SiamFC-style)
    min_scale: float = 0.2           # box size limits relative to the initial box
    max_scale: float = 5.0
    # lost-target rule: best score (sum of cosines, <= number of feature levels) below threshold
    lost_threshold: float = 1.0
    lost_search_ratio: float = 2.0   # crop side multiplier while lost (widened search)
    # optional first-frame ridge box regression (SINT): R-CNN targets, IoU > 0.6 samples, alpha 1
    box_regression: bool = True
    regression_samples: int = 128
    regression_min_iou: float = 0.6
    regression_alpha: float = 1.0
    carry_regression: bool = False   # SINT searches from the unregressed box; True carries the regressed size

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not v > 0 and f.name != "scale_penalty":
                raise ValueError(f"tracker parameter {f.name} must be > 0, got {v}")
        if self.num_candidates < 3 or self.num_angles < 1:
            raise ValueError("tracker parameters: need num_candidates >= 3 and num_angles >= 1")
        if self.scale_penalty < 0 or self.scale_step < 1 or self.scale_lr > 1 or self.regression_min_iou >= 1:
            raise ValueError("tracker parameters: need scale_step >= 1, scale_lr <= 1, regression_min_iou < 1")

    @classmethod
    def from_dict(cls, values: dict | None) -> "TrackerParams":
        values = dict(values or {})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown tracker parameters: {', '.join(sorted(unknown))}")
        return cls(**values)
