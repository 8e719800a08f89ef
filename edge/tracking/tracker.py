"""SINT-style Siamese tracker over any ``Engines`` (PyTorch reference or a built engine), torch-free.

got10k interface: ``init(image, box)`` then ``update(image) -> box``; boxes ``[x, y, w, h]`` in frame
pixels, images HxWx3 uint8 BGR (as OpenCV reads them). After ``update``: ``last_score`` (best candidate's
sum of cosines) and ``lost`` (score below ``lost_threshold``: the box is held and the next search widened).
Non-finite engine outputs are never picked: NaN candidates are skipped, all-NaN scores count as lost, a NaN
regression keeps the unregressed box (``nonfinite_updates`` counts such updates).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from edge.runtime.base import Engines
from edge.tracking.geometry import (Crop, RidgeRegressor, apply_deltas, crop_region, rcnn_targets,
                                    regression_samples, sample_candidates, search_side)
from edge.tracking.params import TrackerParams

def check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        desc = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"tracker expects an HxWx3 uint8 BGR image, got {desc}")
    return image


def check_box(box, image_shape: Sequence[int]) -> np.ndarray:
    """A finite [x, y, w, h] with positive size overlapping the frame, else a one-line ValueError."""
    try:
        b = np.asarray(box, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"init box must be 4 numbers [x, y, w, h], got {box!r}") from None
    if b.shape != (4,) or not np.isfinite(b).all():
        raise ValueError(f"init box must be 4 finite numbers [x, y, w, h], got {box!r}")
    if b[2] <= 0 or b[3] <= 0:
        raise ValueError(f"init box has zero or negative size: {b.tolist()}")
    h, w = image_shape[:2]
    if b[0] >= w or b[1] >= h or b[0] + b[2] <= 0 or b[1] + b[3] <= 0:
        raise ValueError(f"init box {b.tolist()} lies outside the {w}x{h} frame")
    return b


class SiameseTracker:
    """All tracker logic except the two networks, which run through ``engines['template'|'search']``."""

    def __init__(self, engines: Engines, params: TrackerParams | Mapping | None = None):
        self.engines = engines
        # the model's own defaults (its candidate count, manifest ``tracker_params``), then the caller's
        cfg = engines.config                       # edge.contract.TrackerConfig
        own = {"num_candidates": cfg.num_candidates} if cfg.num_candidates else {}
        self.params = params if isinstance(params, TrackerParams) else \
            TrackerParams.from_dict({**own, **cfg.params, **dict(params or {})})
        self._t_in, self._t_out = cfg.template.inputs, cfg.template.outputs[0]
        self._s_in, self._s_out = cfg.search.inputs, cfg.search.outputs[0]
        # engines exported before the search network returned its embeddings: regression re-embeds the box
        self._s_emb = cfg.search_embeddings
        self.size = cfg.crop_size
        per_scale = self.params.num_candidates // 3   # sample_candidates' layout: scale 1, 1/step, step, pad
        self._scale_index = np.zeros(self.params.num_candidates, np.int8)
        self._scale_index[per_scale:2 * per_scale], self._scale_index[2 * per_scale:3 * per_scale] = -1, 1
        self.template: np.ndarray | None = None
        self.last_score = float("nan")
        self.lost = False
        self.nonfinite_updates = 0      # updates where the engine returned NaN/inf (guarded, counted)

    # -- networks -----------------------------------------------------------------------------------
    def _embed(self, image_nchw: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        rois = np.concatenate([np.zeros((len(boxes_xyxy), 1)), boxes_xyxy], 1).astype(np.float32)
        out = self.engines["template"].run({self._t_in[0]: image_nchw, self._t_in[1]: rois})
        return np.asarray(out[self._t_out], np.float32)

    def _search(self, image_nchw: np.ndarray, rois: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(scores [R], embeddings [R, D] or None when the engine does not return them)."""
        out = self.engines["search"].run({self._s_in[0]: image_nchw, self._s_in[1]: rois,
                                          self._s_in[2]: self.template})
        emb = out.get(self._s_emb) if self._s_emb else None
        return np.asarray(out[self._s_out], np.float32).reshape(-1), emb

    # -- got10k interface ---------------------------------------------------------------------------
    def init(self, image: np.ndarray, box) -> None:
        """(Re-)initialise on ``box`` [x, y, w, h] in ``image``; resets every state."""
        image = check_image(image)
        b = check_box(box, image.shape)
        p = self.params
        self.frame_hw = image.shape[:2]
        self.init_wh = b[2:].copy()
        self.box = b.copy()
        self.lost = False
        crop = self._crop(self.box, 1.0)
        patch = crop_region(image, crop)
        target = crop.to_crop(self.box)
        self.regressor = None
        if p.box_regression:
            rng = np.random.default_rng(0)  # deterministic per init
            samples = regression_samples(target, p.regression_samples, p.regression_min_iou, rng)
            feats = self._embed(patch, samples)
            self.template = feats[:1]
            self.regressor = RidgeRegressor(feats, rcnn_targets(samples, target), p.regression_alpha)
        else:
            self.template = self._embed(patch, target[None])
        self.last_score = float(np.sum(self.template * self.template))

    def update(self, image: np.ndarray) -> np.ndarray:
        """Track one frame; returns the new box [x, y, w, h] (the held box while ``lost``)."""
        if self.template is None:
            raise RuntimeError("tracker.update() before init()")
        image = check_image(image)
        p = self.params
        widen = p.lost_search_ratio if self.lost else 1.0
        crop = self._crop(self.box, widen)
        patch = crop_region(image, crop)
        wh = self.box[2:] * crop.scale
        rois = sample_candidates(self.size, wh, p.num_candidates, p.num_angles, p.max_radius * min(widen, 1.5),
                                 p.scale_step)
        scores, embeddings = self._search(patch, rois)
        if p.scale_penalty:
            scores = scores - p.scale_penalty * (self._scale_index != 0)
        finite = np.isfinite(scores)
        if not finite.all():            # a failing engine: never pick a NaN; nothing finite = lost, box held
            self.nonfinite_updates += 1
            if not finite.any():
                self.last_score, self.lost = float("nan"), True
                return self.box.copy()
            scores = np.where(finite, scores, -np.inf)
        best = int(np.argmax(scores))
        self.last_score = float(scores[best])
        self.lost = self.last_score < p.lost_threshold
        if self.lost:
            return self.box.copy()
        cand = crop.to_frame(rois[best, 1:])
        size = (1 - p.scale_lr) * self.box[2:] + p.scale_lr * cand[2:]
        size = np.clip(size, self.init_wh * p.min_scale, self.init_wh * p.max_scale)
        size = np.maximum(size, 4.0)
        centre = cand[:2] + cand[2:] / 2
        h, w = self.frame_hw
        centre = np.clip(centre, 0, [w, h])
        self.box = np.concatenate([centre - size / 2, size])
        if self.regressor is None:
            return self.box.copy()
        # SINT: regress the selected candidate, report the regressed box, search the next frame from the
        # unregressed one. Its features come with the search (one trunk pass per frame).
        sel = rois[best, 1:].astype(np.float64)
        feat = embeddings[best:best + 1] if embeddings is not None else self._embed(patch, sel[None])
        delta = self.regressor(np.asarray(feat, np.float64))[0]
        if not np.isfinite(delta).all():
            self.nonfinite_updates += 1
            return self.box.copy()
        refined = crop.to_frame(apply_deltas(sel, np.clip(delta, -0.5, 0.5)))
        if p.carry_regression:
            c = refined[:2] + refined[2:] / 2
            size = np.clip((1 - p.scale_lr) * self.box[2:] + p.scale_lr * refined[2:],
                           self.init_wh * p.min_scale, self.init_wh * p.max_scale)
            self.box = np.concatenate([c - size / 2, size])
        return refined

    def score_boxes(self, image: np.ndarray, boxes, around=None) -> np.ndarray:
        """Scores [N] of frame boxes ``boxes`` [N, 4] (x, y, w, h) against the template, in the search crop
        the tracker takes around ``around`` (default: its current box). For measurements (e.g. the
        score-vs-scale profile of a target of known size); the tracking state is not changed."""
        if self.template is None:
            raise RuntimeError("tracker.score_boxes() before init()")
        image = check_image(image)
        around = self.box if around is None else np.asarray(around, np.float64)
        crop = self._crop(around, 1.0)
        patch = crop_region(image, crop)
        xyxy = crop.to_crop(np.asarray(boxes, np.float64).reshape(-1, 4))
        n, r = len(xyxy), self.params.num_candidates           # engines are built for R <= num_candidates
        out = []
        for i in range(0, n, r):
            part = xyxy[i:i + r]
            pad = np.concatenate([part, np.repeat(part[:1], r - len(part), 0)])
            rois = np.concatenate([np.zeros((r, 1)), pad], 1).astype(np.float32)
            out.append(self._search(patch, rois)[0][:len(part)])
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _crop(self, box: np.ndarray, widen: float) -> Crop:
        p = self.params
        side = search_side(box[2], box[3], p.context_amount, p.search_ratio) * widen
        return Crop(float(box[0] + box[2] / 2), float(box[1] + box[3] / 2), float(side), self.size)
