"""Frames and flow -> classifier network inputs (edge.classify.preprocess), torch-free."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from edge.classify.preprocess import FrameStream, clip_inputs, flow_input, rgb_input
from edge.flow import DISFlow, encode_flow


def test_rgb_input_layout_and_range(rng):
    frame = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    x = rgb_input(frame, 64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    for c in range(3):                                    # RGB order from OpenCV's BGR, values 0..255
        np.testing.assert_array_equal(x[0, c], frame[:, :, 2 - c].astype(np.float32))


def test_rgb_input_resizes_a_constant_frame_exactly():
    frame = np.empty((272, 640, 3), np.uint8)
    frame[:] = (10, 100, 200)                             # B, G, R
    x = rgb_input(frame, 96)
    assert x.shape == (1, 3, 96, 96)
    assert np.all(x[0, 0] == 200) and np.all(x[0, 1] == 100) and np.all(x[0, 2] == 10)


def test_frame_stream_flow_and_reset(rng):
    frames = [rng.integers(0, 256, (120, 200, 3), dtype=np.uint8) for _ in range(3)]
    frames[1] = np.roll(frames[0], 2, axis=1)
    s = FrameStream(64)
    rgb0, f0 = s(frames[0])
    assert f0.shape == (1, 2, 64, 64) and not f0.any()      # first frame: zero flow
    _, f1 = s(frames[1])
    g = [cv2.cvtColor(cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
         for f in frames[:2]]
    np.testing.assert_allclose(f1, encode_flow(DISFlow()(g[0], g[1]))[None], atol=1e-6)
    assert f1.any()
    s.reset()
    _, f2 = s(frames[2])
    assert not f2.any()
    np.testing.assert_array_equal(rgb0, rgb_input(frames[0], 64))


def test_clip_inputs_match_the_stream(rng):
    clip = rng.integers(0, 256, (5, 48, 48, 3), dtype=np.uint8)
    rgb, flow = clip_inputs(clip, 48)
    assert rgb.shape == (4, 3, 48, 48) and flow.shape == (4, 2, 48, 48)
    s = FrameStream(48)
    pairs = [s(f) for f in clip]
    for t in range(4):
        np.testing.assert_array_equal(rgb[t], pairs[t + 1][0][0])
        np.testing.assert_array_equal(flow[t], pairs[t + 1][1][0])
    with pytest.raises(ValueError):
        clip_inputs(clip[:1], 48)
    with pytest.raises(ValueError):
        rgb_input(np.zeros((8, 8), np.uint8), 8)
    assert flow_input(np.zeros((8, 8, 2), np.float32)).shape == (1, 2, 8, 8)


def test_preprocessing_never_imports_torch():
    code = ("import sys, numpy as np; import edge.classify.preprocess as p, edge.flow, edge.data.actions; "
            "p.clip_inputs(np.zeros((2, 16, 16, 3), np.uint8), 16); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
