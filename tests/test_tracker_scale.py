"""Scale: on a target of known size the best-scoring candidate scale is within one scale step of the truth,
also when the tracker's box is already too large or too small (the crop it searches is taken around that
box). The untrained ImageNet tracker fails this: around a 1.5x box it keeps the box's size in the crop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edge.data.tracking_gen import known_size_pair
from edge.eval.scale_bias import scale_boxes, scale_profile
from edge.models.registry import torch_engines
from edge.models.sint import TRAINED_WEIGHTS
from edge.tracking import SiameseTracker

STEP = 2 ** (1 / 8)      # one step of the measurement grid (9 %); bench/tracker_scale_bias.py uses the same


@pytest.fixture(scope="module")
def engines():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch_engines("tracker", weights=str(TRAINED_WEIGHTS), threads=1)   # the SINT-trained tracker
    torch.set_num_threads(threads)


def test_scale_boxes_are_centred_geometric():
    ks, boxes = scale_boxes([10, 20, 40, 30], 2.0, 2)
    assert ks.tolist() == [-2, -1, 0, 1, 2]
    np.testing.assert_allclose(boxes[2], [10, 20, 40, 30])
    np.testing.assert_allclose(boxes[4, 2:], [160, 120])
    np.testing.assert_allclose(boxes[:, :2] + boxes[:, 2:] / 2, np.repeat([[30, 35]], 5, 0))


@pytest.mark.parametrize("around", [0.7, 1.0, 1.5])
def test_best_scale_within_one_step_of_truth(engines, rng, around):
    """The score's bias over scale: the best scale of the mean score profile over 6 random targets is within one
    step of the truth (untrained tracker around a 1.5x box: +4 steps, measured over 48 targets). A single
    target's best moves by up to 2-3 steps either way (bench/tracker_scale_bias.py), so that is not asserted."""
    profiles, best = [], []
    for _ in range(6):
        seed, ratio = int(rng.integers(0, 100_000)), float(rng.choice([0.5, 1.0, 2.0]))
        fa, ba, fb, bb = known_size_pair(seed, ratio, height=48.0)
        prof = scale_profile(SiameseTracker(engines), fa, ba, fb, bb, STEP, 8, around)
        print(f"seed {seed} ratio {ratio} around {around}: best k {prof['best_k']}")
        profiles.append(prof["scores"])
        best.append(prof["best_k"])
    k = np.asarray(prof["k"])
    bias = int(k[int(np.argmax(np.mean(profiles, 0)))])
    print(f"around {around}: best k of the mean profile {bias}, per target {best}")
    assert abs(bias) <= 1
