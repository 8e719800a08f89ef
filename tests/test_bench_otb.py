"""The benchmark's OTB summary agrees with the got10k toolkit's definitions on hand-computed cases:
21 IoU thresholds (success if IoU > t), AUC = mean of the curve, precision at 20 px, curves averaged over
sequences (per-frame metrics come from ``edge.eval.otb``)."""
import numpy as np
import pytest

from edge.bench.tasks import summarize_sequences
from edge.eval import otb

GT_A = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
# frame 0 exact; frame 1 half the box (IoU 0.5, centre 2.5 px off); frame 2 no overlap (centre 30 px off)
BOX_A = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [30, 0, 10, 10]], float)
GT_B = np.array([[5, 5, 20, 20], [6, 5, 20, 20]], float)


def test_single_sequence_by_hand():
    s = summarize_sequences({"a": otb.evaluate(BOX_A, GT_A)})
    curve = np.array(s["success_curve"])
    assert curve.shape == (21,)
    # IoUs 1, 0.5, 0: t = 0..0.45 -> 2/3 (0 is not > 0); t = 0.5..0.95 -> 1/3 (0.5 is not > 0.5); t = 1 -> 0
    assert curve[:10] == pytest.approx([2 / 3] * 10) and curve[10:20] == pytest.approx([1 / 3] * 10)
    assert curve[20] == 0
    assert s["auc"] == pytest.approx(10 / 21)
    # centre errors 0, 2.5, 30 (got10k centre xy + (wh - 1) / 2): within 20 px for 2 of 3
    p = np.array(s["precision_curve"])
    assert p.shape == (51,) and s["precision20"] == pytest.approx(2 / 3)
    assert p[2] == pytest.approx(1 / 3) and p[3] == pytest.approx(2 / 3)
    assert p[29] == pytest.approx(2 / 3) and p[30] == pytest.approx(1)        # 30 px is <= 30
    assert s["sequences"]["a"]["frames"] == 3


def test_curves_are_averaged_over_sequences():
    s = summarize_sequences({"a": otb.evaluate(BOX_A, GT_A), "b": otb.evaluate(GT_B, GT_B)})
    # b is perfect: AUC 20/21 (IoU 1 is not > 1); mean over sequences, not over pooled frames
    assert s["auc"] == pytest.approx((10 / 21 + 20 / 21) / 2)
    assert s["precision20"] == pytest.approx((2 / 3 + 1) / 2)
    assert s["sequences"]["b"]["auc"] == pytest.approx(20 / 21)
    with pytest.raises(ValueError):
        summarize_sequences({})
