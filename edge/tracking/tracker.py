"""SINT-style Siamese tracker over any ``Engines`` (PyTorch reference or a built engine), torch-free.

got10k interface: ``init(image, box)`` then ``update(image) -> box``; boxes ``[x, y, w, h]`` in frame
pixels, images HxWx3 uint8 BGR (as OpenCV reads them). After ``update``: ``last_score`` (best candidate's
sum of cosines) and ``lost`` (score below ``lost_threshold`` or the pick mostly outside the frame: the box is
held and the next search widened; or, with the IoU head, a target at the frame's border that the head no longer
recognises: it left the frame, the box keeps following). Reported boxes always lie inside the frame. Each
search crop is centred on the box moved by its smoothed velocity (``motion_lr``; reset while lost).
Re-detection (``redetect_frames``): while the pick is unsure (the head's predicted IoU below ``lost_confidence``)
the crop around the last confidently tracked box is searched as well and taken when the head is confident there:
an occluder passing in front takes the best candidate with it, the target reappears where it was
(``redetections`` counts them).
Non-finite engine outputs are never picked: NaN candidates are skipped, all-NaN scores count as lost, a NaN
regression keeps the unregressed box (``nonfinite_updates`` counts such updates).
When the engines offer ``search_probed`` (a served tracker, or a CPU build that kept its probed form:
``edge.runtime.probes``) the search returns the
products of the candidates' embeddings with the IoU head's and the box regression's weights instead of the
embeddings themselves: the same read-outs, R x 5 numbers per frame instead of R x D.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np

from edge.runtime.base import Engines
from edge.runtime.probes import PROBED, PROBES, PRODUCTS
from edge.tracking.geometry import (Crop, RidgeRegressor, apply_deltas, candidate_exponents, crop_region,
                                    grid_candidates, rcnn_targets, regression_samples, sample_candidates,
                                    search_side)
from edge.tracking.head import IoUHead, head_samples, iou_labels
from edge.tracking.params import TrackerParams


def latch(on: bool, conf: float, low: float, high: float) -> bool:
    """A flag with hysteresis on a confidence: set when ``conf`` falls below ``low``, cleared only once it reaches
    ``high`` (a NaN changes nothing)."""
    return not conf >= high if on else conf < low


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


class _Look(NamedTuple):
    crop: Crop
    patch: np.ndarray
    rois: np.ndarray
    scores: np.ndarray
    embeddings: np.ndarray | None
    products: np.ndarray | None
    sel: np.ndarray
    iou: np.ndarray | None
    best: int


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
        self._probed = engines.composites.get(PROBED) if self._s_emb else None
        self._probes: np.ndarray | None = None       # [K, D]: the head's weight, then the regression's 4
        self.size = cfg.crop_size
        self._scale_index = candidate_exponents(self.params.num_candidates, self.params.num_scales)
        self._levels = float(cfg.max_score or 2.0)     # best possible cosine sum (number of feature levels)
        self.template: np.ndarray | None = None
        self.last_score = float("nan")
        self.lost = False
        self._searching = False         # lost by score: box held, next search widened
        self._left = False              # left the frame (border + low head confidence): lost, box follows
        self._unsure = False            # a pick fell below lost_confidence and none has reached lost_recover since
        self.nonfinite_updates = 0      # updates where the engine returned NaN/inf (guarded, counted)
        self.redetections = 0           # updates that took the target back at its last confident box
        self.redetect_searches = 0      # extra searches at the last confident box (the cost of re-detection)
        self.chase_searches = 0         # extra searches around a pick on the grid's outer ring
        self.wide_searches = 0          # searches of wide re-detection's tiles (``wide_redetect``)
        self.wide_redetections = 0      # updates that took the target back from a wide search
        self._anchor: tuple[np.ndarray, int] | None = None    # (last confident box, its frame number)
        self._frame = self._next_redetect = self._next_wide = 0
        self._wide_tries = 0            # wide searches since the pick was last out of doubt

    # -- networks -----------------------------------------------------------------------------------
    def _embed(self, image_nchw: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        rois = np.concatenate([np.zeros((len(boxes_xyxy), 1)), boxes_xyxy], 1).astype(np.float32)
        out = self.engines["template"].run({self._t_in[0]: image_nchw, self._t_in[1]: rois})
        return np.asarray(out[self._t_out], np.float32)

    def _search(self, image_nchw: np.ndarray, rois: np.ndarray) -> tuple[np.ndarray, np.ndarray | None,
                                                                         np.ndarray | None]:
        """(scores [R], embeddings [R, D] or None when the engine does not return them, products [R, K] with
        ``_probes`` instead of the embeddings when the search runs probed)."""
        feeds = {self._s_in[0]: image_nchw, self._s_in[1]: rois, self._s_in[2]: self.template}
        if self._probes is not None:
            out = self._probed.run({**feeds, PROBES: self._probes})
            return np.asarray(out[self._s_out], np.float32).reshape(-1), None, out[PRODUCTS]
        out = self.engines["search"].run(feeds)
        emb = out.get(self._s_emb) if self._s_emb else None
        return np.asarray(out[self._s_out], np.float32).reshape(-1), emb, None

    # -- got10k interface ---------------------------------------------------------------------------
    def init(self, image: np.ndarray, box) -> None:
        """(Re-)initialise on ``box`` [x, y, w, h] in ``image``; resets every state."""
        image = check_image(image)
        b = check_box(box, image.shape)
        p = self.params
        self.frame_hw = image.shape[:2]
        self.init_wh = b[2:].copy()
        self.box = b.copy()
        self._velocity = np.zeros(2)
        self._anchor, self._frame, self._next_redetect = (self.box.copy(), 0), 0, 0
        self._next_wide = self._wide_tries = 0
        self.lost = self._searching = self._left = self._unsure = False
        crop = self._crop(self.box, 1.0)
        patch = crop_region(image, crop)
        target = crop.to_crop(self.box)
        self.regressor = None
        self._probes = None
        rng = np.random.default_rng(0)      # deterministic per init
        if p.box_regression:
            samples = regression_samples(target, p.regression_samples, p.regression_min_iou, rng)
            feats = self._embed(patch, samples)
            self.template = feats[:1]
            self.regressor = RidgeRegressor(feats, rcnn_targets(samples, target), p.regression_alpha)
        else:
            self.template = self._embed(patch, target[None])
        self.head = self._fit_head(image, rng) if p.head_weight > 0 and self._s_emb else None
        rows = ([self.head.w[None]] if self.head is not None else []) + \
            ([self.regressor.w[:-1].T] if self.regressor is not None else [])
        if self._probed is not None and rows:
            self._probes = np.ascontiguousarray(np.concatenate(rows), np.float32)
        self.last_score = float(np.sum(self.template * self.template))

    def _fit_head(self, image: np.ndarray, rng: np.random.Generator) -> IoUHead:
        """The IoU head from first-frame samples: in search crops taken around the target scaled by each of
        ``head_crops`` (where a tracker whose box is too small / too large would search), boxes at
        ``head_scale_range`` x the target's size and shifted, labelled by their IoU with the target."""
        p = self.params
        feats, labels = [], []
        c = self.box[:2] + self.box[2:] / 2
        for s in p.head_crops:
            around = np.concatenate([c - self.box[2:] * s / 2, self.box[2:] * s])
            crop = self._crop(around, 1.0)
            target = crop.to_crop(self.box)
            boxes = head_samples(target, p.head_samples, rng, p.head_scale_range, p.head_max_shift)
            feats.append(self._embed(crop_region(image, crop), boxes))
            labels.append(iou_labels(boxes, target, p.head_label_power))
        return IoUHead(np.concatenate(feats), np.concatenate(labels), p.head_alpha)

    def _blend(self, scores: np.ndarray, embeddings, products=None) -> tuple[np.ndarray, np.ndarray | None]:
        """(score, predicted IoU): the template cosine sum blended with the IoU head's prediction (``scores``
        and None without a head or embeddings)."""
        if self.head is None or (embeddings is None and products is None):
            return scores, None
        iou = products[:, 0] + self.head.b if products is not None else self.head(embeddings)
        return (1 - self.params.head_weight) * scores / self._levels + self.params.head_weight * iou, iou

    def _selection(self, scores: np.ndarray, embeddings, products, rois: np.ndarray,
                   wh: np.ndarray, grid: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(the score candidates are picked by: template cosine (+ IoU head) - scale / displacement penalties,
        the head's predicted IoU or None); ``grid``: rois of one size spread over the crop (no penalties)."""
        p = self.params
        sel, iou = self._blend(scores.astype(np.float64), embeddings, products)
        if grid:
            return sel, iou
        if p.scale_penalty:
            sel = sel - p.scale_penalty * np.abs(self._scale_index)
        if p.displacement_penalty:
            d = (rois[:, 1:3] + rois[:, 3:5]) / 2 - self.size / 2
            sel = sel - p.displacement_penalty * np.sum(d * d, 1) / float(wh[0] * wh[1])
        return sel, iou

    def update(self, image: np.ndarray, elapsed: int = 1) -> np.ndarray:
        """Track one frame; returns the new box [x, y, w, h] clipped to the frame: the held box while lost by
        score, the followed box when the target left the frame (``lost`` either way). ``elapsed``: camera frames
        since the previous update (more than 1 after frames were dropped): the motion prior moves the search
        that many frames' worth, and re-detection's frame counts count camera frames."""
        if not (isinstance(elapsed, (int, np.integer)) and elapsed >= 1):
            raise ValueError(f"tracker.update(): elapsed must be an integer >= 1 (camera frames), got {elapsed!r}")
        box = self._update(image, int(elapsed))
        self.lost = self.lost or self._left
        return box

    def _update(self, image: np.ndarray, elapsed: int) -> np.ndarray:
        if self.template is None:
            raise RuntimeError("tracker.update() before init()")
        image = check_image(image)
        p = self.params
        widen = p.lost_search_ratio if self._searching else 1.0
        if self._searching:
            self._velocity[:] = 0.0
        self._frame += elapsed
        centre0 = self.box[:2] + self.box[2:] / 2
        ahead = self._velocity * min(elapsed, p.motion_horizon)
        look = self._look(image, np.concatenate([self.box[:2] + ahead, self.box[2:]]), widen)
        if look is None:                # a failing engine: nothing finite = lost, box held
            self.last_score, self.lost = float("nan"), True
            return self._report(self.box)
        if p.chase_edge and (p.chase_lost or not self._searching) and self._at_edge(look, widen):
            # the best candidate is on the grid's outer ring: the target may be further than the grid reaches
            # (a fast target, dropped frames); search again around that pick and keep the better of the two
            pick = look.crop.to_frame(look.rois[look.best, 1:].astype(np.float64))
            again = self._look(image, np.concatenate([pick[:2] + pick[2:] / 2 - self.box[2:] / 2, self.box[2:]]),
                               widen)
            self.chase_searches += 1
            if again is not None and again.sel[again.best] > look.sel[look.best]:
                look = again
        redetected = False
        if look.iou is not None and self._doubt(float(look.iou[look.best])) and self._anchor_recent() \
                and self._frame >= self._next_redetect and not self._near(self._anchor[0]):
            # a pick in doubt: is the target back where it last was with confidence? (an occluder that
            # passed in front takes the best candidate with it; the target reappears behind it)
            alt = self._look(image, self._anchor[0], 1.0)
            self.redetect_searches += 1
            if alt is not None and alt.iou[alt.best] >= max(p.lost_recover, look.iou[look.best]):
                look, redetected = alt, True
                self.redetections += 1
                self.box = self._anchor[0].copy()   # the size damping starts from the target's, not the occluder's
            else:                               # not there yet: look again in redetect_interval frames
                self._next_redetect = self._frame + p.redetect_interval
        in_doubt = look.iou is not None and self._doubt(float(look.iou[look.best]))
        if not in_doubt:
            self._wide_tries = 0
        elif p.wide_redetect and not redetected and self._anchor_recent() and self._frame >= self._next_wide \
                and self._wide_tries < p.wide_attempts:
            # still in doubt: search tiles around the box at the usual scale, nearest ring first (the target
            # may be further than the candidate grid reaches: a slow camera, dropped frames, a sudden move)
            enough = max(p.lost_recover, float(look.iou[look.best]))
            alt = self._wide_look(image, p.wide_redetect, enough)
            self._wide_tries += 1
            if alt is not None and alt.iou[alt.best] >= enough:
                look, redetected = alt, True
                self.wide_redetections += 1
            else:
                self._next_wide = self._frame + p.redetect_interval
        crop, patch, rois, scores, embeddings, products, sel, iou, best = look
        self.last_score = float(scores[best])
        self.lost = self.last_score < p.lost_threshold
        # a target at the frame's border whose best candidate the head does not believe in has left the frame:
        # reported lost, but the box keeps following the best candidate (holding it cost AUC on validation
        # when a blurred target at the border came back); inside the frame a low confidence is a hard frame
        # (hysteresis: it counts as back once the head's confidence reaches lost_recover, anywhere)
        if iou is not None:
            conf = float(iou[best])
            self._unsure = latch(self._unsure, conf, p.lost_confidence, p.lost_recover)
            if p.lost_confidence > 0:
                self._left = (self._left or self._at_border()) and \
                    latch(self._left, conf, p.lost_confidence, p.lost_recover)
        self._searching = self.lost
        if self.lost:
            return self._report(self.box)
        if p.top_k > 1:
            top = np.argsort(-sel)[:p.top_k]
            top = top[np.isfinite(sel[top])]
            pick = rois[top, 1:].astype(np.float64).mean(0)
        else:
            pick = rois[best, 1:].astype(np.float64)
        cand = crop.to_frame(pick)
        if self._inside(cand) < p.min_inside:           # mostly outside the frame: lost, box held
            self.lost = self._searching = True
            return self._report(self.box)
        size = (1 - p.scale_lr) * self.box[2:] + p.scale_lr * cand[2:]
        size = np.clip(size, self.init_wh * p.min_scale, self.init_wh * p.max_scale)
        h, w = self.frame_hw
        size = np.clip(size, 4.0, [w, h])
        centre = cand[:2] + cand[2:] / 2
        centre = np.clip(centre, 0, [w, h])
        self.box = np.concatenate([centre - size / 2, size])
        if redetected:
            self._velocity[:] = 0.0
        elif p.motion_lr:
            self._velocity = (1 - p.motion_lr) * self._velocity + p.motion_lr * (centre - centre0) / elapsed
        if iou is not None and float(iou[best]) >= p.lost_recover and not self._left:
            self._anchor = (self.box.copy(), self._frame)
        if self.regressor is None:
            return self._report(self.box)
        # SINT: regress the selected candidate, report the regressed box, search the next frame from the
        # unregressed one. Its features come with the search (one trunk pass per frame).
        if products is not None:        # the regression's rows follow the head's in _probes
            delta = products[best, len(self._probes) - 4:].astype(np.float64) + self.regressor.w[-1]
        else:
            sel_box = rois[best, 1:].astype(np.float64)
            feat = embeddings[best:best + 1] if embeddings is not None else self._embed(patch, sel_box[None])
            delta = self.regressor(np.asarray(feat, np.float64))[0]
        if not np.isfinite(delta).all():
            self.nonfinite_updates += 1
            return self._report(self.box)
        refined = crop.to_frame(apply_deltas(pick, np.clip(delta, -0.5, 0.5)))
        if p.carry_regression:
            c = refined[:2] + refined[2:] / 2
            size = np.clip((1 - p.scale_lr) * self.box[2:] + p.scale_lr * refined[2:],
                           self.init_wh * p.min_scale, self.init_wh * p.max_scale)
            self.box = np.concatenate([c - size / 2, size])
        return self._report(refined)

    def _look(self, image: np.ndarray, around: np.ndarray, widen: float, grid: bool = False) -> _Look | None:
        """One search in the crop around ``around`` [x, y, w, h] (``widen`` x the usual side): the crop, its
        candidates (``grid``: boxes of ``around``'s size on a grid over the whole crop), the network's outputs,
        the selection score, the head's IoU and the best finite candidate; None when no candidate is finite
        (counted in ``nonfinite_updates``, as is any NaN)."""
        p = self.params
        crop = self._crop(around, widen)
        patch = crop_region(image, crop)
        wh = around[2:] * crop.scale
        rois = grid_candidates(self.size, wh, p.num_candidates) if grid else \
            sample_candidates(self.size, wh, p.num_candidates, p.num_angles, p.max_radius * min(widen, 1.5),
                              p.scale_step, p.num_scales)
        scores, embeddings, products = self._search(patch, rois)
        sel, iou = self._selection(scores, embeddings, products, rois, wh, grid)
        finite = np.isfinite(sel) & np.isfinite(scores)
        if not finite.all():            # never pick a NaN
            self.nonfinite_updates += 1
            if not finite.any():
                return None
            sel = np.where(finite, sel, -np.inf)
        return _Look(crop, patch, rois, scores, embeddings, products, sel, iou, int(np.argmax(sel)))

    def _wide_look(self, image: np.ndarray, rings: int, enough: float) -> _Look | None:
        """Searches at the usual scale in tiles around the box: ``rings`` rings of crops (8, 16, ... per ring)
        spaced so their grids of candidates (boxes of the box's size over each whole crop) touch, nearest ring
        first; the first look whose pick the head rates ``enough``, else the look with the best selection score."""
        crop = self._crop(self.box, 1.0)
        step = max(crop.side - max(self.box[2], self.box[3]), 1.0)
        best = None
        for r in range(1, rings + 1):
            ring = [(ix, iy) for ix in range(-r, r + 1) for iy in range(-r, r + 1) if max(abs(ix), abs(iy)) == r]
            for ix, iy in ring:
                lk = self._look(image, self.box + np.array([ix * step, iy * step, 0.0, 0.0]), 1.0, grid=True)
                self.wide_searches += 1
                if lk is not None and (best is None or lk.sel[lk.best] > best.sel[best.best]):
                    best = lk
            if best is not None and best.iou[best.best] >= enough:
                return best
        return best

    def _at_edge(self, look: _Look, widen: float) -> bool:
        """The best candidate's centre is at least ``chase_edge`` x the grid's radius from the crop's centre."""
        c = (look.rois[look.best, 1:3] + look.rois[look.best, 3:5]) / 2 - self.size / 2
        radius = self.params.max_radius * min(widen, 1.5) * self.size
        return bool(np.hypot(*c) >= self.params.chase_edge * radius - 1e-6)

    def _doubt(self, conf: float) -> bool:
        """The pick (head confidence ``conf``) is in doubt: below ``lost_confidence``, or (``redetect_hysteresis``)
        below ``lost_recover`` while no pick has reached it since one fell below ``lost_confidence``."""
        p = self.params
        return conf < p.lost_confidence or (p.redetect_hysteresis and self._unsure and conf < p.lost_recover)

    def _anchor_recent(self) -> bool:
        """A confident box within the last ``redetect_frames`` frames exists (0 = re-detection off)."""
        return self._anchor is not None and self._frame - self._anchor[1] <= self.params.redetect_frames

    def _near(self, box: np.ndarray) -> bool:
        """``box`` is about where the current box is (within a quarter of its size): a search there says
        nothing new."""
        d = (box[:2] + box[2:] / 2) - (self.box[:2] + self.box[2:] / 2)
        return bool(np.hypot(*d) < 0.25 * np.sqrt(self.box[2] * self.box[3]))

    def _at_border(self) -> bool:
        """The current box is within ``lost_border`` x its own size of a frame edge."""
        h, w = self.frame_hw
        x, y, bw, bh = self.box
        m = self.params.lost_border
        return bool(x < m * bw or y < m * bh or x + bw > w - m * bw or y + bh > h - m * bh)

    def _inside(self, box: np.ndarray) -> float:
        """Fraction of the box's area inside the frame."""
        h, w = self.frame_hw
        iw = max(0.0, min(box[0] + box[2], w) - max(box[0], 0.0))
        ih = max(0.0, min(box[1] + box[3], h) - max(box[1], 0.0))
        return iw * ih / max(box[2] * box[3], 1e-12)

    def _report(self, box: np.ndarray) -> np.ndarray:
        """The reported box: ``box`` clipped to the frame (at least 1 px inside)."""
        h, w = self.frame_hw
        x0 = min(max(box[0], 0.0), w - 1.0)
        y0 = min(max(box[1], 0.0), h - 1.0)
        x1 = max(min(box[0] + box[2], float(w)), x0 + 1.0)
        y1 = max(min(box[1] + box[3], float(h)), y0 + 1.0)
        return np.array([x0, y0, x1 - x0, y1 - y0])

    def score_boxes(self, image: np.ndarray, boxes, around=None) -> np.ndarray:
        """Scores [N] of frame boxes ``boxes`` [N, 4] (x, y, w, h) against the target (template cosine sum, or
        with the IoU head the selection score without penalties), in the search crop
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
            scores, _ = self._blend(*self._search(patch, rois))     # the selection score, without penalties
            out.append(scores[:len(part)])
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _crop(self, box: np.ndarray, widen: float) -> Crop:
        p = self.params
        side = search_side(box[2], box[3], p.context_amount, p.search_ratio) * widen
        return Crop(float(box[0] + box[2] / 2), float(box[1] + box[3] / 2), float(side), self.size)
