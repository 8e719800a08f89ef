"""got10k OTB metric definitions on hand-computed cases (edge.eval.otb)."""
from __future__ import annotations

import numpy as np
import pytest

from edge.eval import otb


def test_iou_hand_computed():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 4, 4], [3, 3, 5, 7], [0, 0, 10, 10]], float)
    b = np.array([[5, 5, 10, 10], [10, 0, 10, 10], [1, 1, 2, 2], [3, 3, 5, 7], [-20, -20, 5, 5]], float)
    # 25 / (100 + 100 - 25); touching edges; contained 4/16; identical; disjoint
    np.testing.assert_allclose(otb.iou(a, b), [25 / 175, 0.0, 0.25, 1.0, 0.0], atol=1e-12)
    assert otb.iou([0, 0, 10, 10], [0, 5, 10, 10]) == pytest.approx(50 / 150)


def test_iou_symmetric_and_bounded(rng):
    a = np.concatenate([rng.uniform(-50, 50, (200, 2)), rng.uniform(1, 60, (200, 2))], 1)
    b = np.concatenate([rng.uniform(-50, 50, (200, 2)), rng.uniform(1, 60, (200, 2))], 1)
    v = otb.iou(a, b)
    np.testing.assert_allclose(v, otb.iou(b, a))
    assert (v >= 0).all() and (v <= 1).all()
    # brute force on a pixel grid for integer boxes
    ai, bi = np.round(a), np.round(b)
    for x, y in zip(ai[:20], bi[:20]):
        g = np.zeros((2, 240, 240), bool)
        for k, r in enumerate((x, y)):
            g[k, int(r[1]) + 120:int(r[1] + r[3]) + 120, int(r[0]) + 120:int(r[0] + r[2]) + 120] = True
        want = (g[0] & g[1]).sum() / (g[0] | g[1]).sum()
        assert otb.iou(x, y) == pytest.approx(want, abs=1e-9)


def test_center_error_hand_computed():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [10, 10, 4, 8]], float)
    b = np.array([[3, 4, 10, 10], [0, 0, 20, 10], [10, 10, 4, 8]], float)
    # shift (3, 4) -> 5; centre 4.5 vs 9.5 -> 5; identical -> 0
    np.testing.assert_allclose(otb.center_error(a, b), [5.0, 5.0, 0.0])


def test_success_curve_and_auc_hand_computed():
    ious = [1.0, 0.52, 0.0, 0.27]
    curve = otb.success_curve(ious)
    assert curve.shape == (21,)
    # t = 0 .. 0.25 (6 thresholds): 3 of 4 frames have IoU > t; t = 0.3 .. 0.5: 2; t = 0.55 .. 0.95: 1;
    # t = 1: none (strictly greater)
    want = np.array([0.75] * 6 + [0.5] * 5 + [0.25] * 9 + [0.0])
    np.testing.assert_allclose(curve, want)
    assert otb.auc(ious) == pytest.approx((6 * 0.75 + 5 * 0.5 + 9 * 0.25) / 21)


def test_success_is_strictly_greater_than_threshold():
    curve = otb.success_curve([0.5])
    assert curve[9] == 1.0 and curve[10] == 0.0     # 0.5 > 0.45 but not > 0.5
    assert otb.auc([1.0]) == pytest.approx(20 / 21)  # a perfect track misses only t = 1
    assert otb.auc([0.0]) == 0.0


def test_precision_hand_computed():
    errors = [0.0, 20.0, 20.5, 100.0]
    curve = otb.precision_curve(errors)
    assert curve.shape == (51,)
    assert curve[0] == 0.25 and curve[19] == 0.25
    assert curve[20] == 0.5                         # <= 20 px is inclusive
    assert curve[21] == 0.75 and curve[50] == 0.75
    assert otb.precision_at(errors, 20) == 0.5


def test_evaluate_skips_missing_ground_truth():
    gt = np.array([[0, 0, 10, 10], [np.nan, np.nan, np.nan, np.nan], [0, 0, 0, 0], [5, 5, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    r = otb.evaluate(pred, gt)
    np.testing.assert_allclose(r["ious"], [1.0, 25 / 175])
    assert r["auc"] == pytest.approx(np.mean(otb.success_curve([1.0, 25 / 175])))
    with pytest.raises(ValueError, match="predicted boxes"):
        otb.evaluate(pred[:2], gt)


class _Constant:
    """A trivial got10k-interface tracker (test stand-in, not shipped): always answers one box."""

    def __init__(self, box):
        self.box, self.inits = box, 0

    def init(self, image, box):
        self.inits += 1

    def update(self, image):
        return self.box


def test_run_sequence_one_pass(tmp_path):
    import cv2
    frames = [np.full((20, 30, 3), i, np.uint8) for i in range(5)]
    tr = _Constant([1, 2, 3, 4])
    boxes, times = otb.run_sequence(tr, frames, [5, 6, 7, 8])
    assert tr.inits == 1 and boxes.shape == (5, 4) and times.shape == (5,) and (times >= 0).all()
    np.testing.assert_array_equal(boxes[0], [5, 6, 7, 8])
    np.testing.assert_array_equal(boxes[1:], np.tile([1, 2, 3, 4], (4, 1)))
    paths = []
    for i, f in enumerate(frames):
        paths.append(tmp_path / f"{i:04d}.png")
        cv2.imwrite(str(paths[-1]), f)
    boxes2, _ = otb.run_sequence(_Constant([1, 2, 3, 4]), paths, [5, 6, 7, 8])
    np.testing.assert_array_equal(boxes, boxes2)
    with pytest.raises(ValueError, match="cannot read image"):
        otb.run_sequence(_Constant([1, 2, 3, 4]), [tmp_path / "missing.jpg"], [5, 6, 7, 8])
