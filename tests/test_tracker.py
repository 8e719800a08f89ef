"""SINT reference model (template/search split) and the torch-free tracker runtime over it."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from edge.data.tracking_gen import render_sequence
from edge.eval import otb
from edge.kernels.roi_pool.reference import roi_pool_math
from edge.models.mobilenet_v2 import IMAGENET_MEAN, IMAGENET_STD, STAGES, mobilenet_v2_imagenet
from edge.models.registry import torch_engines
from edge.models.sint import NUM_CANDIDATES, SearchNet, TemplateNet, build_tracker, config, networks
from edge.tracking import SiameseTracker, TrackerParams
from edge.tracking.geometry import Crop, RidgeRegressor, crop_region, radial_offsets, sample_candidates


pytestmark = pytest.mark.usefixtures("one_thread")     # conftest: one PyTorch thread for the module


@pytest.fixture(scope="module")
def model():
    return build_tracker()


@pytest.fixture(scope="module")
def engines(model):
    return torch_engines("tracker", model=model, threads=1)


def _rois(rng, count, size):
    xy = rng.uniform(0, size * 0.7, (count, 2))
    wh = rng.uniform(6, size * 0.5, (count, 2))
    return torch.tensor(np.concatenate([np.zeros((count, 1)), xy, xy + wh], 1), dtype=torch.float32)


def test_split_equals_unsplit(model, engines, rng):
    s = model.crop_size
    img_t = torch.tensor(rng.uniform(0, 255, (1, 3, s, s)), dtype=torch.float32)
    img_s = torch.tensor(rng.uniform(0, 255, (1, 3, s, s)), dtype=torch.float32)
    box, rois = _rois(rng, 1, s), _rois(rng, NUM_CANDIDATES, s)
    with torch.no_grad():
        unsplit = model(img_t, box, img_s, rois).numpy()
        template = TemplateNet(model)(img_t, box)
        split, cand = (t.numpy() for t in SearchNet(model)(img_s, rois, template))
        cand_t = TemplateNet(model)(img_s, rois).numpy()   # the search's embeddings = the template net's
    np.testing.assert_allclose(split, unsplit, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(cand, cand_t, rtol=1e-6, atol=1e-6)
    # and through the Engine interface the runtime uses (numpy in, numpy out)
    emb = engines["template"].run({"image": img_t.numpy(), "box": box.numpy()})["embedding"]
    out = engines["search"].run({"image": img_s.numpy(), "rois": rois.numpy(), "template": emb})
    sc = out["scores"]
    assert emb.shape == (1, model.embedding_dim) and sc.shape == (NUM_CANDIDATES,)
    assert out["embeddings"].shape == (NUM_CANDIDATES, model.embedding_dim)
    np.testing.assert_allclose(sc, unsplit, rtol=1e-6, atol=1e-6)


def test_score_is_sum_of_level_cosines(model, rng):
    """Independent recomputation: ImageNet MobileNetV2 taps + the adapters by hand + the RoiPool oracle +
    cosines by hand."""
    s = model.crop_size
    img_t = rng.uniform(0, 255, (1, 3, s, s)).astype(np.float32)
    img_s = rng.uniform(0, 255, (1, 3, s, s)).astype(np.float32)
    box, rois = _rois(rng, 1, s), _rois(rng, 16, s)
    net = mobilenet_v2_imagenet()
    mean = np.array(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1) * 255
    std = np.array(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1) * 255

    def adapter(m, a):
        """The trained adapter by hand: per position x + W2 relu(W1 x + b1) + b2 (1x1 convolutions)."""
        if a is None:
            return m
        w1, b1 = a.expand.weight[:, :, 0, 0].numpy(), a.expand.bias.numpy()
        w2, b2 = a.project.weight[:, :, 0, 0].numpy(), a.project.bias.numpy()
        x = m.numpy()
        hid = np.maximum(np.einsum("kc,ncij->nkij", w1, x) + b1[None, :, None, None], 0)
        return torch.from_numpy(x + np.einsum("ck,nkij->ncij", w2, hid) + b2[None, :, None, None])

    adapters = list(model.adapters) if model.adapters is not None else [None] * len(model.taps)

    def feats(img, r):
        with torch.no_grad():
            maps = net.forward_taps(torch.from_numpy((img - mean) / std), model.taps)
            return [roi_pool_math(adapter(m, a), r, model.pooled, 1.0 / STAGES[t][1]).flatten(1).numpy()
                    .astype(np.float64) for m, a, t in zip(maps, adapters, model.taps)]
    want = np.zeros(len(rois))
    for a, b in zip(feats(img_t, box), feats(img_s, rois)):
        want += (b @ a[0]) / (np.linalg.norm(b, axis=1) * np.linalg.norm(a[0]))
    with torch.no_grad():
        got = model(torch.from_numpy(img_t), box, torch.from_numpy(img_s), rois).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # self-similarity of a box is the number of levels
    with torch.no_grad():
        same = model(torch.from_numpy(img_t), box, torch.from_numpy(img_t), box).item()
    assert same == pytest.approx(config(model)["max_score"], abs=1e-5)


def test_networks_contract(model):
    specs = networks(model)
    assert set(specs) == {"template", "search"}
    assert list(specs["template"].inputs) == ["image", "box"] and specs["template"].outputs == ["embedding"]
    assert list(specs["search"].inputs) == ["image", "rois", "template"] and specs["search"].outputs == ["scores", "embeddings"]
    assert specs["search"].dynamic_axes["rois"] == {0: "rois"}
    import json
    cfg = json.loads(json.dumps(config(model)))              # JSON-serialisable
    assert cfg["crop_size"] == model.crop_size and cfg["embedding_dim"] == model.embedding_dim
    assert not any(p.requires_grad for p in model.trunk.parameters())


def test_tracker_beats_fixed_box_on_generated_sequence(engines, rng):
    # a tracking problem first: a sequence whose target leaves its first box (fixed-box AUC < 0.4). The hard
    # attributes (edge.data.tracking_gen.ATTRIBUTES) are left out: they are the benchmark's job, not this test's.
    # Measured on 16 random seeds without attributes: fixed box AUC 0.06-0.25, tracker 0.60-0.88, P@20 1.0.
    for _ in range(20):
        seed = int(rng.integers(0, 10_000))
        seq = render_sequence(seed, length=50, attributes=())   # motion and mild scale change, no hard attribute
        fixed = otb.evaluate(np.repeat(seq.boxes[:1], len(seq.boxes), 0), seq.boxes)
        if fixed["auc"] < 0.4:
            break
        print(f"seed {seed}: target barely moves (fixed box AUC {fixed['auc']:.3f}), drawing another")
    assert fixed["auc"] < 0.4
    boxes, times = otb.run_sequence(SiameseTracker(engines), seq.frames, seq.boxes[0])
    tracked = otb.evaluate(boxes, seq.boxes)
    print(f"seed {seed}: tracker AUC {tracked['auc']:.3f} P@20 {tracked['precision']:.3f}; "
          f"fixed box AUC {fixed['auc']:.3f} P@20 {fixed['precision']:.3f}")
    assert tracked["auc"] >= fixed["auc"] + 0.2        # margins seen over those 16 seeds: >= 0.47, >= 0.84
    assert tracked["precision"] >= fixed["precision"] + 0.5


def test_regression_reads_search_embeddings_like_a_template_pass(engines, rng):
    """The box regression takes the best candidate's features from the search output; a manifest whose
    search returns only scores (exports before that) re-embeds the box with the template network instead.
    Both must give the same track (the IoU head, which needs the search's embeddings, off in both)."""
    import copy
    from edge.runtime.base import Engines
    seq = render_sequence(int(rng.integers(0, 10_000)), length=12)
    manifest = copy.deepcopy(engines.manifest.to_dict())
    manifest.setdefault("config", {})["networks"] = {
        "template": {"inputs": ["image", "box"], "outputs": ["embedding"]},
        "search": {"inputs": ["image", "rois", "template"], "outputs": ["scores"]}}
    scores_only = Engines(engines.networks, manifest, engines.backend, engines.precision)
    assert SiameseTracker(engines)._s_emb == "embeddings" and SiameseTracker(scores_only)._s_emb is None
    assert SiameseTracker(engines).params.head_weight > 0      # the default; it needs the search's embeddings
    off = {"head_weight": 0.0}
    with_emb, _ = otb.run_sequence(SiameseTracker(engines, off), seq.frames, seq.boxes[0])
    re_embed, _ = otb.run_sequence(SiameseTracker(scores_only, off), seq.frames, seq.boxes[0])
    np.testing.assert_allclose(with_emb, re_embed, atol=1e-3)


class _Poisoned:
    """A real search engine whose scores get NaN where ``mask(scores)`` says (an engine gone bad)."""

    def __init__(self, engine, mask):
        self.engine, self.mask = engine, mask
        self.name, self.inputs, self.outputs = engine.name, engine.inputs, engine.outputs

    def run(self, feeds):
        out = dict(self.engine.run(feeds))
        scores = np.array(out["scores"], np.float32)
        scores[self.mask(scores)] = np.nan
        out["scores"] = scores
        return out


def test_nan_scores_are_never_picked(engines):
    from edge.runtime.base import Engines
    seq = render_sequence(3, length=8)
    off = {"head_weight": 0.0}          # the pick is the best score (the IoU head would re-rank candidates)
    clean, _ = otb.run_sequence(SiameseTracker(engines, off), seq.frames, seq.boxes[0])

    def with_search(search):
        return Engines({"template": engines["template"], "search": search}, engines.manifest)
    # every candidate but the clean run's pick is NaN: same track, counted
    tr = SiameseTracker(with_search(_Poisoned(engines["search"], lambda s: s < s.max())), off)
    boxes, _ = otb.run_sequence(tr, seq.frames, seq.boxes[0])
    np.testing.assert_allclose(boxes, clean, atol=1e-3)
    assert tr.nonfinite_updates == len(seq.frames) - 1
    # the best candidate is NaN: the next best is picked, the box stays finite
    tr = SiameseTracker(with_search(_Poisoned(engines["search"], lambda s: s == s.max())))
    boxes, _ = otb.run_sequence(tr, seq.frames, seq.boxes[0])
    assert np.isfinite(boxes).all() and np.isfinite(tr.last_score)
    # all NaN: lost, the init box held, score NaN
    tr = SiameseTracker(with_search(_Poisoned(engines["search"], lambda s: np.ones(s.shape, bool))))
    tr.init(seq.frames[0], seq.boxes[0])
    box = tr.update(seq.frames[1])
    assert tr.lost and np.isnan(tr.last_score) and np.allclose(box, seq.boxes[0])


def _moving_square(rng, speeds, side=40, start=(200.0, 160.0), hw=(360, 640), angle=None):
    """A textured square over a textured background moving by ``speeds[i]`` x its side after frame i, in the
    direction ``angle`` (radians; default right-ish, drawn in +-0.3): frames and the exact ground truth boxes."""
    import cv2
    h, w = hw
    bg = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3)).astype(np.uint8), (0, 0), 3)
    target = cv2.resize(rng.integers(0, 255, (8, 8, 3)).astype(np.uint8), (side, side),
                        interpolation=cv2.INTER_NEAREST)
    (x, y), angle = start, rng.uniform(-0.3, 0.3) if angle is None else angle
    frames, gt = [], []
    for v in list(speeds) + [0.0]:
        xi, yi = int(round(x)), int(round(y))
        f = bg.copy()
        f[yi:yi + side, xi:xi + side] = target
        frames.append(f)
        gt.append([xi, yi, side, side])
        x, y = x + v * side * np.cos(angle), y + v * side * np.sin(angle)
    return frames, np.array(gt, np.float64)


def test_motion_prior_follows_an_accelerating_target_and_survives_a_stop(engines, rng):
    # the search crop is centred on the box moved by the smoothed velocity (motion_lr): a target speeding up to
    # 0.7 of its size per frame outruns the candidate grid (outer ring ~0.48 x the size) without it. Measured on
    # 5 seeds (cpu fp32 engine): last 5 frames' IoU 0.83-0.95 with the prior, 0-0.31 without. A sudden stop after
    # 0.6 sizes per frame (the prediction overshoots by the last velocity) and a reversal at 0.45 sizes per frame
    # stay tracked (IoU 0.8-0.9 at the end).
    # (the prior alone: chase_edge, which also catches a target past the grid, is off for the comparison)
    def final_iou(frames, gt, motion_lr, chase=TrackerParams().chase_edge):
        boxes, _ = otb.run_sequence(SiameseTracker(engines, {"motion_lr": motion_lr, "chase_edge": chase}),
                                    frames, gt[0])
        return float(np.mean(otb.iou(boxes[-5:], gt[-5:])))

    frames, gt = _moving_square(rng, np.linspace(0, 0.7, 30), start=(20.0, 160.0))
    assert TrackerParams().motion_lr > 0                      # the default has the prior
    with_prior, without = final_iou(frames, gt, TrackerParams().motion_lr, 0.0), final_iou(frames, gt, 0.0, 0.0)
    print(f"accelerating: IoU of the last 5 frames {with_prior:.3f} with the prior, {without:.3f} without")
    assert with_prior > 0.6 and with_prior > without + 0.3
    speeds = np.concatenate([np.minimum(np.arange(20) / 12, 1) * 0.6, np.zeros(15)])     # sudden stop
    frames, gt = _moving_square(rng, speeds, start=(20.0, 160.0))
    assert final_iou(frames, gt, TrackerParams().motion_lr) > 0.6
    speeds = np.concatenate([np.minimum(np.arange(15) / 8, 1) * 0.45, np.full(15, -0.45)])   # reversal
    frames, gt = _moving_square(rng, speeds, start=(150.0, 160.0))
    assert final_iou(frames, gt, TrackerParams().motion_lr) > 0.6


def test_lost_rule_holds_box_widens_and_recovers(engines):
    seq = render_sequence(7, length=10)
    tr = SiameseTracker(engines)
    tr.init(seq.frames[0], seq.boxes[0])
    for f in seq.frames[1:4]:
        tr.update(f)
    assert not tr.lost and tr.last_score > tr.params.lost_threshold
    held = tr.box.copy()
    grey = np.full_like(seq.frames[0], 127)
    for _ in range(2):                                    # target gone: low score, box held, flag set
        box = tr.update(grey)
        assert tr.lost and tr.last_score < tr.params.lost_threshold
        np.testing.assert_allclose(box, held, rtol=0, atol=1e-9)   # reported = held box clipped to the frame
    for f in seq.frames[4:8]:                             # target back: found again within a few frames
        box = tr.update(f)
    assert not tr.lost
    assert otb.iou(box, seq.boxes[7]) > 0.3
    # re-init resets everything: same template as a fresh tracker
    tr.init(seq.frames[5], seq.boxes[5])
    fresh = SiameseTracker(engines)
    fresh.init(seq.frames[5], seq.boxes[5])
    assert not tr.lost
    np.testing.assert_array_equal(tr.template, fresh.template)


def test_redetection_is_inert_while_the_pick_is_confident(engines, rng):
    # the second search runs only when the pick's predicted IoU is below lost_confidence: on a textured square
    # moving 0.1 of its size per frame (confident throughout: 0 of 12 seeds searched twice) it never runs, and the
    # boxes equal a run without re-detection
    frames, gt = _moving_square(rng, np.full(14, 0.1))
    runs = {}
    for frames_kept in (TrackerParams().redetect_frames, 0):
        tr = SiameseTracker(engines, {"redetect_frames": frames_kept})
        searches = []
        tr._search = (lambda f: lambda *a: searches.append(1) or f(*a))(tr._search)
        boxes, _ = otb.run_sequence(tr, frames, gt[0])
        runs[frames_kept] = (boxes, tr.redetections, len(searches))
    (on, on_count, on_searches), (off, _, off_searches) = runs[TrackerParams().redetect_frames], runs[0]
    assert on_searches == off_searches == len(frames) - 1 and on_count == 0
    np.testing.assert_array_equal(on, off)
    with pytest.raises(ValueError, match="redetect_frames must be >= 0"):
        TrackerParams(redetect_frames=-1)


def test_dropped_frames_move_the_search_by_the_elapsed_frames(engines, rng):
    # a square moving 0.2 of its side per frame, tracked on every frame, then on every 3rd with elapsed=3: the
    # search crop is centred on the box moved 3 frames' worth of the velocity (capped at motion_horizon), and the
    # velocity stays per camera frame
    frames, gt = _moving_square(rng, np.full(16, 0.2))
    tr = SiameseTracker(engines)
    arounds = []
    tr._look = (lambda f: lambda image, around, widen: arounds.append(around.copy()) or f(image, around, widen))(
        tr._look)
    tr.init(frames[0], gt[0])
    for i in range(1, 8):
        tr.update(frames[i])
    v = tr._velocity.copy()
    np.testing.assert_allclose(v, gt[7, :2] - gt[6, :2], atol=2.5)       # 8 px per frame
    for i in (10, 13, 16):
        box, vel = tr.box.copy(), tr._velocity.copy()
        arounds.clear()
        out = tr.update(frames[i], elapsed=3)
        np.testing.assert_allclose(arounds[0][:2], box[:2] + 3 * vel, atol=1e-9)
        assert otb.iou(out[None], gt[i][None])[0] > 0.6
        np.testing.assert_allclose(tr._velocity, v, atol=2.5)
    box, vel = tr.box.copy(), tr._velocity.copy()
    arounds.clear()
    tr.update(frames[16], elapsed=500)                                     # a stall: at most motion_horizon
    np.testing.assert_allclose(arounds[0][:2], box[:2] + TrackerParams().motion_horizon * vel, atol=1e-9)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="elapsed must be an integer >= 1"):
            tr.update(frames[16], elapsed=bad)


def test_chase_finds_a_target_that_jumped_past_the_grid(engines, rng):
    # a square jumps its own side in one frame from rest (a dropped stretch of frames) along one of the outer
    # ring's spokes (+-4 deg): the ring reaches ~0.48 x the side, so the best candidate sits on it; chasing searches
    # again around that pick. Per square (80 seeds, the shipped untrained tracker): IoU on that frame 0.75-0.96 with
    # it in 69, 0.5 in 2, and 0.22-0.30 in 9 (a near tie with the next ring in: not found either way); 0.10-0.38
    # without (the ring's geometric limit); 0.80-0.96 on the last frame either way. So the check counts found
    # squares over 6 fresh ones: it fails only if 5 of them miss (~0.03 %).
    # Not covered, a known limit: alternate rings are rotated half a step, so a jump along the second ring's spoke
    # picks there (0.86 x the radius, under chase_edge 0.99) and is not chased; the two outer rings (0.8) were
    # tried on validation and not kept (edge/weights/tracker.md)
    p = TrackerParams()
    offs = radial_offsets(p.num_candidates // p.num_scales, p.num_angles, 1.0)
    spokes = offs[np.hypot(*offs.T) > 1 - 1e-9]
    res = {p.chase_edge: [], 0.0: []}
    for _ in range(6):
        d = spokes[rng.integers(len(spokes))]
        frames, gt = _moving_square(rng, [1.0] + [0.0] * 4,
                                    angle=np.arctan2(d[1], d[0]) + np.radians(rng.uniform(-4, 4)))
        for chase in res:
            tr = SiameseTracker(engines, {"chase_edge": chase})
            boxes, _ = otb.run_sequence(tr, frames, gt[0])
            res[chase].append((*otb.iou(boxes[1:], gt[1:])[[0, -1]], tr.chase_searches))
    on, off = np.array(res[p.chase_edge]), np.array(res[0.0])      # [square, (jump frame IoU, last IoU, chases)]
    print(np.round(on, 2).tolist(), np.round(off, 2).tolist())
    assert p.chase_edge > 0 and on[:, 2].sum() >= 2 and off[:, 2].sum() == 0
    assert (on[:, 0] > 0.6).sum() >= 2 and (off[:, 0] > 0.6).sum() == 0
    assert on[:, 1].mean() > 0.6


def test_no_chase_while_lost(engines, rng):
    # a lost target (the box held, the crop widened) has no pick worth chasing: on bikes.mp4 with the README's
    # box, lost from frame ~30 on, chasing there had cost 0.85 extra searches per frame and changed no validation
    # sequence. The target here is replaced by grey noise frames (lost by score on most of them); per such cut,
    # chase_lost on chases on some lost frame in ~75 % (12 seeds), so 5 cuts show the rule doing something
    counts = {True: [0, 0], False: [0, 0]}               # [lost frames, chases on them]
    for _ in range(5):
        seq = render_sequence(int(rng.integers(1 << 30)), length=3)
        noise = [np.clip(127 + rng.normal(0, 20, seq.frames[0].shape), 0, 255).astype(np.uint8) for _ in range(20)]
        for chase_lost in counts:
            tr = SiameseTracker(engines, {"chase_lost": chase_lost})
            tr.init(seq.frames[0], seq.boxes[0])
            for f in seq.frames[1:]:
                tr.update(f)
            for f in noise:
                held, before = tr._searching, tr.chase_searches         # lost by score: the box held
                tr.update(f)
                counts[chase_lost][0] += held
                counts[chase_lost][1] += held and tr.chase_searches > before
    print(counts)
    assert not TrackerParams().chase_lost
    assert counts[False][0] > 0 and counts[False][1] == 0
    assert counts[True][1] > 0


def test_wide_redetection_finds_a_target_two_sides_away(engines, rng):
    # the square jumps twice its side in one frame from rest: past the grid (~0.48 x the side) and past the chase
    # (about twice that), so the local pick is in doubt; wide re-detection's first ring of tiles holds the target
    # (measured on 5 seeds: IoU 0.79-0.94 on that frame with it, 0 without, and 0 for 2-6 more frames)
    frames, gt = _moving_square(rng, [2.0] + [0.0] * 4)
    res = {}
    for rings in (1, 0):
        tr = SiameseTracker(engines, {"wide_redetect": rings})
        boxes, _ = otb.run_sequence(tr, frames, gt[0])
        res[rings] = (otb.iou(boxes[1:], gt[1:]), tr.wide_searches, tr.wide_redetections)
    print({k: (np.round(v[0], 2).tolist(), v[1], v[2]) for k, v in res.items()})
    (on, searches, found), (off, off_searches, _) = res[1], res[0]
    assert found >= 1 and searches >= 8 and off_searches == 0
    assert on[0] > 0.6 and on[-1] > 0.6 and off[0] < 0.3


def test_wide_redetection_is_inert_while_confident_and_bounded_while_not(engines, rng):
    # confident throughout (0.1 of its size per frame): no tile is searched and the boxes equal a run without it
    frames, gt = _moving_square(rng, np.full(10, 0.1))
    runs = [otb.run_sequence(SiameseTracker(engines, {"wide_redetect": r}), frames, gt[0])[0] for r in (2, 0)]
    np.testing.assert_array_equal(runs[0], runs[1])
    # the target gone for 30 frames (grey): in doubt on every frame, a try every redetect_interval frames (6
    # of them) but at most wide_attempts tries of 8 + 16 tiles
    tr = SiameseTracker(engines, {"wide_redetect": 2})
    tr.init(frames[0], gt[0])
    grey = np.full_like(frames[0], 127)
    for _ in range(30):
        tr.update(grey)
    p = tr.params
    assert 30 // p.redetect_interval > p.wide_attempts
    assert tr.wide_searches == 24 * p.wide_attempts and tr.wide_redetections == 0
    # a re-init starts afresh: tries and their waiting reset with the frame count (a target that jumps twice its
    # side right after it is found at once)
    jump, jump_gt = _moving_square(rng, [2.0, 0.0])
    tr.init(jump[0], jump_gt[0])
    box = tr.update(jump[1])
    assert tr.wide_redetections == 1 and otb.iou(box[None], jump_gt[1][None])[0] > 0.6
    for bad, msg in (({"wide_redetect": 1.5}, "counts rings"), ({"wide_redetect": -1}, "must be >= 0"),
                     ({"wide_attempts": 0}, "must be > 0")):
        with pytest.raises(ValueError, match=msg):
            TrackerParams(**bad)


def test_grid_candidates_tile_the_crop():
    from edge.tracking.geometry import grid_candidates
    rois = grid_candidates(160, (30.0, 20.0), 256)
    assert rois.shape == (256, 5) and rois.dtype == np.float32 and (rois[:, 0] == 0).all()
    np.testing.assert_allclose(rois[:, 3] - rois[:, 1], 30.0, atol=1e-4)       # one size: the box's
    np.testing.assert_allclose(rois[:, 4] - rois[:, 2], 20.0, atol=1e-4)
    cx, cy = (rois[:, 1] + rois[:, 3]) / 2, (rois[:, 2] + rois[:, 4]) / 2
    # 16 x 16 centres from half a box inside each edge, evenly spaced, every box inside the crop
    assert sorted(set(np.round(cx, 3))) == pytest.approx(np.linspace(15, 145, 16), abs=1e-3)
    assert sorted(set(np.round(cy, 3))) == pytest.approx(np.linspace(10, 150, 16), abs=1e-3)
    assert rois[:, 1:].min() >= -1e-4 and rois[:, 1:].max() <= 160 + 1e-4
    odd = grid_candidates(160, (30.0, 20.0), 260)                              # 4 leftover slots: the centre box
    np.testing.assert_allclose(odd[256:, 1:], [[65, 70, 95, 90]] * 4, atol=1e-4)


def test_latch_is_a_hysteresis_by_hand():
    from edge.tracking.tracker import latch
    confs = [0.6, 0.45, 0.35, 0.45, 0.49, float("nan"), 0.5, 0.45, 0.39]
    on, got = False, []
    for c in confs:
        on = latch(on, c, 0.4, 0.5)
        got.append(on)
    # set below 0.4 (not at 0.45), held through 0.45 / 0.49 / NaN, cleared at 0.5, set again only below 0.4
    assert got == [False, False, True, True, True, True, False, False, True]


@pytest.mark.parametrize("box, msg", [
    ([10, 10, 0, 20], "zero or negative size"),
    ([10, 10, 20, -5], "zero or negative size"),
    ([500, 10, 20, 20], "outside"),
    ([-50, -50, 20, 20], "outside"),
    ([np.nan, 1, 2, 3], "finite"),
    ([1, 2, 3], "4"),
    ("abc", "4 numbers"),
])
def test_invalid_init_box_one_line_error(engines, box, msg):
    tr = SiameseTracker(engines)
    with pytest.raises(ValueError, match=msg) as e:
        tr.init(np.zeros((100, 200, 3), np.uint8), box)
    assert "\n" not in str(e.value)


def test_bad_image_and_order_errors(engines):
    tr = SiameseTracker(engines)
    with pytest.raises(RuntimeError, match="before init"):
        tr.update(np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        tr.init(np.zeros((50, 50), np.uint8), [1, 1, 10, 10])
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        tr.init(np.zeros((50, 50, 3), np.float32), [1, 1, 10, 10])
    with pytest.raises(ValueError, match="unknown tracker parameters: bogus"):
        SiameseTracker(engines, {"bogus": 1})
    with pytest.raises(ValueError, match="must be > 0"):
        TrackerParams(max_radius=0)


def test_crop_geometry(rng):
    size = 160
    frame = np.full((240, 320, 3), (10, 20, 30), np.uint8)
    box = np.array([rng.uniform(60, 200), rng.uniform(40, 120), rng.uniform(30, 60), rng.uniform(30, 60)])
    x0, y0, x1, y1 = np.round([box[0], box[1], box[0] + box[2], box[1] + box[3]]).astype(int)
    frame[y0:y1, x0:x1] = (200, 100, 50)                  # BGR
    crop = Crop(box[0] + box[2] / 2 + rng.uniform(-10, 10), box[1] + box[3] / 2, rng.uniform(120, 250), size)
    np.testing.assert_allclose(crop.to_frame(crop.to_crop(box)), box, atol=1e-9)
    x = crop_region(frame, crop)
    assert x.shape == (1, 3, size, size) and x.dtype == np.float32
    # RGB order: the rectangle's blue (200) is channel 2, its red (50) channel 0
    ys, xs = np.nonzero(x[0, 2] > 100)
    want = crop.to_crop(np.array([x0, y0, x1 - x0, y1 - y0], float))
    assert abs(xs.min() - want[0]) <= 1.5 and abs(xs.max() + 1 - want[2]) <= 1.5
    assert abs(ys.min() - want[1]) <= 1.5 and abs(ys.max() + 1 - want[3]) <= 1.5
    assert x[0, 0].max() <= 50.5
    # outside the frame: padded with the frame's mean colour
    far = crop_region(frame, Crop(-1000, -1000, 100, size))
    mean_bgr = frame.reshape(-1, 3).mean(0)
    np.testing.assert_allclose(far[0, :, 0, 0], mean_bgr[::-1], atol=0.6)


def test_candidates_fixed_count_radial_and_three_scales():
    size, wh = 160, (40.0, 30.0)
    rois = sample_candidates(size, wh, 256, 12, 0.2, 1.05)
    assert rois.shape == (256, 5) and (rois[:, 0] == 0).all()
    np.testing.assert_allclose(rois[0, 1:], [60, 65, 100, 95])            # centre box, unchanged size
    w = rois[:, 3] - rois[:, 1]
    np.testing.assert_allclose(np.unique(np.round(w, 2)), [40 / 1.05, 40, 40 * 1.05], atol=0.01)
    centres = (rois[:, 1:3] + rois[:, 3:5]) / 2
    r = np.hypot(*(centres - size / 2).T)
    assert r.max() == pytest.approx(0.2 * size, rel=1e-5) and len(np.unique(np.round(r, 3))) == 8  # 0 + 7 rings


def test_ridge_regressor_matches_primal_solution(rng):
    x = rng.normal(size=(30, 12))
    y = rng.normal(size=(30, 4))
    reg = RidgeRegressor(x, y, alpha=1.0)
    xa = np.concatenate([x, np.ones((30, 1))], 1)
    w = np.linalg.solve(xa.T @ xa + np.eye(13), xa.T @ y)
    q = rng.normal(size=(5, 12))
    np.testing.assert_allclose(reg(q), np.concatenate([q, np.ones((5, 1))], 1) @ w, rtol=1e-8, atol=1e-10)


def test_runtime_modules_are_torch_free():
    code = ("import sys; import edge.tracking, edge.eval.otb, edge.data.sequences; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _inside_frame(box, shape) -> bool:
    h, w = shape[:2]
    return box[0] >= 0 and box[1] >= 0 and box[0] + box[2] <= w + 1e-6 and box[1] + box[3] <= h + 1e-6 \
        and box[2] > 0 and box[3] > 0


def test_target_leaving_the_frame_is_lost_and_boxes_stay_inside(engines, rng):
    """Issue 14 item 8: the reported box is clipped to the frame, and a target that left it is lost (the box
    is not carried outside the frame for ever)."""
    from edge.data.tracking_gen import leaving_sequence
    seed = int(rng.integers(0, 10_000))
    seq = leaving_sequence(seed, length=30, exit_frame=16)
    tr = SiameseTracker(engines)
    tr.init(seq.frames[0], seq.boxes[0])
    lost = []
    for f, gt in zip(seq.frames[1:], seq.boxes[1:]):
        box = tr.update(f)
        assert _inside_frame(box, f.shape), (seed, box)
        lost.append(tr.lost)
    inside = np.array([_visible(b, seq.frames[0].shape) for b in seq.boxes[1:]])
    print(f"seed {seed} ({seq.events['side']}): visible {np.round(inside, 2).tolist()}, lost {lost}")
    assert not any(lost[:8])                              # tracked while fully visible
    gone = np.nonzero(inside < 0.05)[0]                   # frames where the target is entirely outside
    assert len(gone) >= 5 and all(lost[i] for i in gone[3:]), lost


def _visible(box, shape) -> float:
    h, w = shape[:2]
    iw = max(0.0, min(box[0] + box[2], w) - max(box[0], 0.0))
    ih = max(0.0, min(box[1] + box[3], h) - max(box[1], 0.0))
    return iw * ih / (box[2] * box[3])


def test_readme_box_on_bikes_stays_in_the_frame(engines):
    """The README's example box on the demo clip: the old tracker's box grew to 528 px (the frame is 272
    tall), left the frame and never reported lost. Every box now lies inside the frame and stays smaller
    than it."""
    import cv2
    from edge.assets import video_clip
    cap = cv2.VideoCapture(str(video_clip("bikes.mp4")))
    frames = []
    while len(frames) < 120:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    tr = SiameseTracker(engines)
    tr.init(frames[0], [100, 80, 40, 60])
    for f in frames[1:]:
        box = tr.update(f)
        assert _inside_frame(box, f.shape), box
        assert tr.box[2] <= f.shape[1] and tr.box[3] <= f.shape[0], tr.box    # never larger than the frame
