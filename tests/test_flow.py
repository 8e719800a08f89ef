"""DIS optical flow and the flow encoding the classifier takes (edge.flow)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.flow import FLOW_BOUND, DISFlow, dis_flow, encode_flow, endpoint_error


def test_dis_far_better_than_zero_flow_on_stereo_motorcycle():
    from skimage import data
    left, right, disp = data.stereo_motorcycle()
    g0 = cv2.cvtColor(left, cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(right, cv2.COLOR_RGB2GRAY)
    valid = np.isfinite(disp)
    truth = np.zeros(disp.shape + (2,), np.float32)
    truth[..., 0] = np.where(valid, -disp, 0)          # left -> right: u = -disparity, v = 0
    epe_dis = endpoint_error(dis_flow(g0, g1), truth, valid)
    epe_zero = endpoint_error(np.zeros_like(truth), truth, valid)
    print(f"EPE DIS ultrafast {epe_dis:.2f} px, zero flow {epe_zero:.2f} px")
    assert epe_zero > 20
    assert epe_dis < 0.25 * epe_zero and epe_dis < 6.0


def test_dis_recovers_a_global_translation(rng):
    from skimage import data
    tex = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    dx, dy = (int(v) for v in rng.integers(-4, 5, 2))
    y, x = (int(v) for v in rng.integers(20, 300, 2))
    prev = np.ascontiguousarray(tex[y:y + 160, x:x + 160])
    cur = np.ascontiguousarray(tex[y - dy:y - dy + 160, x - dx:x - dx + 160])  # content moves by (dx, dy)
    flow = DISFlow()(prev, cur)
    inner = flow[16:-16, 16:-16].reshape(-1, 2)
    med = np.median(inner, 0)
    assert abs(med[0] - dx) < 0.5 and abs(med[1] - dy) < 0.5, (med, dx, dy)


def test_encode_flow_hand_computed():
    u = np.array([-20, -FLOW_BOUND, -FLOW_BOUND / 2, 0, FLOW_BOUND / 4, FLOW_BOUND, 30], np.float32)
    flow = np.stack([u, -u], -1)[None]                         # [1, 7, 2]
    enc = encode_flow(flow)
    assert enc.shape == (2, 1, 7) and enc.dtype == np.float32
    np.testing.assert_allclose(enc[0, 0], [-1, -1, -0.5, 0, 0.25, 1, 1])
    np.testing.assert_allclose(enc[1, 0], [1, 1, 0.5, 0, -0.25, -1, -1])


@pytest.mark.parametrize("bad", ["shape", "dtype", "rank"])
def test_bad_frames_are_one_line_errors(bad):
    g = np.zeros((32, 32), np.uint8)
    other = {"shape": np.zeros((32, 30), np.uint8), "dtype": np.zeros((32, 32), np.float32),
             "rank": np.zeros((32, 32, 3), np.uint8)}[bad]
    with pytest.raises(ValueError) as e:
        DISFlow()(g, other)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError):
        DISFlow("nonsense")
    with pytest.raises(ValueError):
        encode_flow(np.zeros((4, 4, 3), np.float32))
