"""SINT training (edge.models.train_tracker): the pairs follow the paper's IoU rules, a training step lowers
the contrastive loss on a tiny fixed set, and the checkpoint loads with weights_only=True (corrupt: one line)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edge.models import train_tracker as tt
from edge.models.mobilenet_v2 import mobilenet_v2_imagenet
from edge.models.sint import (DEFAULT_WEIGHTS, SINT, TRAINED_WEIGHTS, build_tracker, load_checkpoint,
                              save_checkpoint)
from edge.tracking.geometry import iou_xyxy
from edge.tracking.params import TrackerParams


@pytest.fixture(scope="module")
def tiny_set(one_thread):
    """Four photo pairs (training-split photos, augmented) and their trunk maps, made by the PyTorch trunk."""
    import cv2
    from edge.data.tracking_gen import _photo
    rng = np.random.default_rng(5)
    imgs = [cv2.resize(_photo(n), (320, 240)) for n in ("rocket", "coins")]
    pairs = tt.image_pairs("photo", 4, rng, 160, TrackerParams(), images=imgs)
    model = SINT(mobilenet_v2_imagenet(), adapter_hidden=(16, 32))
    with torch.no_grad():
        cache = tt.cache_pairs(pairs, lambda x: [m.numpy() for m in model.trunk_maps(torch.from_numpy(x))])
    return model, pairs, cache


def test_pairs_follow_the_iou_rules(rng):
    gt = np.array([50.0, 60.0, 90.0, 110.0])
    dis = np.array([100.0, 20.0, 140.0, 70.0])
    boxes, labels, kinds = tt.sample_boxes(gt, 160, rng, dis)
    iou = iou_xyxy(boxes.astype(np.float64), gt)
    assert boxes.shape == (tt.BOXES, 4) and labels.sum() == tt.N_POS
    assert (iou[labels == 1] > 0.7).all() and (iou[labels == 0] < 0.5).all()
    scale = boxes[kinds == 1]
    assert len(scale) >= 5                                   # negatives that differ only in scale
    c = (scale[:, :2] + scale[:, 2:]) / 2
    assert np.abs(c - (gt[:2] + gt[2:]) / 2).max() < 0.2 * 50
    ratio = np.sqrt((scale[:, 2] - scale[:, 0]) * (scale[:, 3] - scale[:, 1]) / (40 * 50))
    assert ((ratio > 1.4) | (ratio < 0.72)).all()
    assert (kinds == 3).sum() >= 1                           # the look-alike is a negative
    assert (iou_xyxy(boxes[kinds == 3].astype(np.float64), dis) > 0.6).all()


def test_contrastive_loss_matches_the_paper_formula(rng):
    scores = torch.tensor(rng.uniform(-2, 2, (3, 5)), dtype=torch.float32)
    labels = torch.tensor(rng.integers(0, 2, (3, 5)), dtype=torch.float32)
    labels[0, 0], labels[0, 1] = 1, 0
    d2 = 2 - scores.numpy().astype(np.float64)           # ||a - b||^2 / 2 of two 2-part unit embeddings
    y = labels.numpy()
    pos = (0.5 * d2 * y).sum() / y.sum()
    neg = (0.5 * np.maximum(0, tt.MARGIN - d2) * (1 - y)).sum() / (1 - y).sum()
    assert float(tt.contrastive_loss(scores, labels, 2)) == pytest.approx(pos + neg, rel=1e-6)


def test_scores_from_cache_equal_the_template_and_search_networks(tiny_set, rng):
    from edge.models.sint import SearchNet, TemplateNet
    model, pairs, cache = tiny_set
    with torch.no_grad():
        for a in model.adapters:                              # non-identity adapters
            a.project.weight.normal_(0, 0.05)
        sc = tt.pair_scores(model, cache, torch.arange(2)).numpy()
        p = pairs[1]
        t = TemplateNet(model)(torch.from_numpy(p.template), torch.tensor([[0, *p.template_box]]))
        rois = torch.cat([torch.zeros(tt.BOXES, 1), torch.from_numpy(p.boxes)], 1)
        want = SearchNet(model)(torch.from_numpy(p.search), rois, t)[0].numpy()
        for a in model.adapters:
            a.project.weight.zero_()
    np.testing.assert_allclose(sc[1], want, atol=2e-3)       # cache is fp16


def test_training_step_lowers_the_loss(tiny_set):
    model, _, cache = tiny_set
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.adapters.parameters(), lr=3e-3)
    idx = torch.arange(len(cache["labels"]))
    with torch.no_grad():
        before = float(tt.contrastive_loss(tt.pair_scores(model, cache, idx), cache["labels"], 2))
    for _ in range(5):
        tt.train_step(model, opt, cache, idx)
    with torch.no_grad():
        after = float(tt.contrastive_loss(tt.pair_scores(model, cache, idx), cache["labels"], 2))
    print(f"loss {before:.4f} -> {after:.4f}")
    assert after < before - 1e-3
    assert not any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.trunk.parameters())


def test_checkpoint_round_trip_and_corrupt_file(tmp_path, tiny_set):
    model, _, _ = tiny_set
    model.tracker_params = {"scale_step": 1.1}
    path = tmp_path / "t.pt"
    save_checkpoint(model, path, {"note": "test"})
    state, meta = load_checkpoint(path)                      # weights_only=True inside
    torch.load(path, weights_only=True)
    assert set(state) == set(model.trained_state()) and meta["tracker_params"] == {"scale_step": 1.1}
    back = build_tracker(str(path))
    assert back.adapter_hidden == (16, 32) and back.tracker_params == {"scale_step": 1.1}
    for k, v in model.trained_state().items():
        assert torch.equal(back.state_dict()[k], v)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"tracker checkpoint .*bad\.pt is not a readable PyTorch checkpoint") as e:
        build_tracker(str(bad))
    assert "\n" not in str(e.value)


def test_shipped_checkpoint_loads_and_default_is_tracker_pt():
    assert TRAINED_WEIGHTS.is_file() and TRAINED_WEIGHTS.stat().st_size < 10e6
    torch.load(TRAINED_WEIGHTS, weights_only=True)
    trained, untrained = build_tracker(str(TRAINED_WEIGHTS)), build_tracker("imagenet")
    assert trained.adapters is not None and untrained.adapters is None
    assert trained.tracker_params == load_checkpoint(TRAINED_WEIGHTS)[1]["tracker_params"]
    # the default is edge/weights/tracker.pt when shipped, else the untrained tracker
    assert (build_tracker().adapters is not None) == DEFAULT_WEIGHTS.is_file()
