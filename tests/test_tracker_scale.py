"""Scale: on a target of known size the best-scoring candidate scale follows the truth, also when the tracker's
box is already too large or too small (the crop it searches is taken around that box). The untrained ImageNet
tracker fails around a 1.5x box (it keeps the box's size in the crop); the SINT-trained one passes."""
from __future__ import annotations

import numpy as np
import pytest

from edge.data.tracking_gen import known_size_pair
from edge.eval.scale_bias import scale_boxes, scale_profile
from edge.models.registry import torch_engines
from edge.models.sint import TRAINED_WEIGHTS
from edge.tracking import SiameseTracker

STEP = 2 ** (1 / 8)      # one step of the measurement grid (9 %); bench/tracker_scale_bias.py uses the same


@pytest.fixture(scope="module")
def engines(one_thread):
    return torch_engines("tracker", weights=str(TRAINED_WEIGHTS), threads=1)   # the SINT-trained tracker


def test_scale_boxes_are_centred_geometric():
    ks, boxes = scale_boxes([10, 20, 40, 30], 2.0, 2)
    assert ks.tolist() == [-2, -1, 0, 1, 2]
    np.testing.assert_allclose(boxes[2], [10, 20, 40, 30])
    np.testing.assert_allclose(boxes[4, 2:], [160, 120])
    np.testing.assert_allclose(boxes[:, :2] + boxes[:, 2:] / 2, np.repeat([[30, 35]], 5, 0))


@pytest.mark.parametrize("around, targets, steps", [(1.0, 9, 1), (0.7, 8, 2), (1.5, 12, 2)])
def test_best_scale_follows_the_truth(engines, rng, around, targets, steps):
    """Median over random targets of the best-scoring scale (k steps of 9 % from the true size), the search crop
    taken around a box ``around`` x the truth. Around the true box: within one step. Around a box 1.5x too
    large the untrained tracker keeps the inflated box (k = +4 for 48/48 targets, bench/tracker_scale_bias.py);
    the trained one is at +1 (median of 150 drawn as here), but single targets spread +-2-3 steps, so a median of
    12 is asserted within 2 steps. Resampling 150 measured per row, the chance a draw fails: 0.005 % around 1.5x
    (2 % at 1 step), 0 around 0.7x, 0.02 % around the truth with 9 targets (0.15 % with 8: its median is -1,
    a slight pull to the smaller box, so an odd count keeps the median off -1.5)."""
    best = []
    for _ in range(targets):
        seed, ratio = int(rng.integers(0, 100_000)), float(rng.choice([0.5, 1.0, 2.0]))
        fa, ba, fb, bb = known_size_pair(seed, ratio, height=48.0)
        prof = scale_profile(SiameseTracker(engines), fa, ba, fb, bb, STEP, 8, around)
        print(f"seed {seed} ratio {ratio} around {around}: best k {prof['best_k']}")
        best.append(prof["best_k"])
    assert abs(np.median(best)) <= steps, best
