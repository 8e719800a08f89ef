"""Camera conditions (edge.bench.conditions): each gives the frames that camera would give, and the boxes stay on
the target (checked on a white square whose box is known), frame drops keep what must be kept, noise is seeded."""
from __future__ import annotations

import numpy as np
import pytest

from edge.bench import conditions as cond


def _scene(rng, n=7, h=90, w=160):
    """Frames of a dark textured background with a white rectangle at a random place; its boxes [n, 4]."""
    frames, boxes = [], []
    for _ in range(n):
        f = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        bw, bh = int(rng.integers(12, 30)), int(rng.integers(12, 30))
        x, y = int(rng.integers(10, w - bw - 10)), int(rng.integers(10, h - bh - 10))
        f[y:y + bh, x:x + bw] = 255
        frames.append(f)
        boxes.append([x, y, bw, bh])
    return frames, np.array(boxes, np.float64)


@pytest.mark.parametrize("name", [n for n in cond.CONDITIONS if n not in ("night_ir", "low_light", "jpeg_q10")])
def test_boxes_stay_on_the_target(name, rng):
    frames, gt = _scene(rng)
    out, boxes, index = cond.apply(cond.CONDITIONS[name], frames, gt, seed=3)
    assert len(out) == len(boxes) == len(index) and all(f.dtype == np.uint8 and f.ndim == 3 for f in out)
    assert index[0] == 0 and (np.diff(index) >= 1).all()
    m = 2 * max(1, round(max(out[0].shape[:2]) / max(frames[0].shape[:2])))   # resampling blurs an edge
    for f, b in zip(out, boxes):
        x0, y0, x1, y1 = (int(round(v)) for v in (b[0], b[1], b[0] + b[2], b[1] + b[3]))
        inside = f[y0 + m:y1 - m, x0 + m:x1 - m].astype(float)
        assert inside.size and inside.min() > 200, name
        ring = np.ones(f.shape[:2], bool)
        ring[max(y0 - m - 1, 0):y1 + m + 1, max(x0 - m - 1, 0):x1 + m + 1] = False
        assert f[ring].mean() < 80, name                             # the white is where the box says, not elsewhere


def test_portrait_and_resize_geometry_by_hand():
    f = np.zeros((40, 100, 3), np.uint8)
    gt = np.array([[10.0, 5.0, 20.0, 8.0]])
    (r,), (b,), _ = cond.apply(cond.CONDITIONS["portrait"], [f], gt)
    assert r.shape == (100, 40, 3)
    np.testing.assert_allclose(b, [40 - 5 - 8, 10, 8, 20])
    (u,), (b,), _ = cond.apply(cond.CONDITIONS["upscale_1080"], [f], gt)
    assert u.shape == (768, 1920, 3)
    np.testing.assert_allclose(b, gt[0] * 19.2)
    (h,), (b,), _ = cond.apply(cond.CONDITIONS["half_res"], [f], gt)
    assert h.shape == (20, 50, 3)
    np.testing.assert_allclose(b, gt[0] / 2)


def test_frame_drop_keeps_the_first_and_the_drawn_frames():
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(10)]
    gt = np.full((10, 4), np.nan)
    gt[[0, 4, 5]] = [1, 1, 2, 2]                      # sparsely drawn (real footage): 0, 4, 5 are scored
    out, boxes, index = cond.apply(cond.CONDITIONS["frame_drop_3"], frames, gt)
    assert [int(f[0, 0, 0]) for f in out] == [0, 3, 4, 5, 6, 9]
    assert np.isfinite(boxes[:, 0]).tolist() == [True, False, True, True, False, False]
    assert index.tolist() == list(range(6))           # a slower camera: the loop sees consecutive frames
    full = np.tile([1.0, 1, 2, 2], (10, 1))           # every frame drawn (generated): dropped evenly
    out, boxes, _ = cond.apply(cond.CONDITIONS["frame_drop_3"], frames, full)
    assert [int(f[0, 0, 0]) for f in out] == [0, 3, 6, 9] and len(boxes) == 4


def test_runtime_drops_tell_the_loop_the_gaps():
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(200)]
    gt = np.full((200, 4), np.nan)
    gt[[0, 50, 51]] = [1, 1, 2, 2]
    out, boxes, index = cond.apply(cond.CONDITIONS["runtime_drops"], frames, gt, seed=4)
    assert [int(f[0, 0, 0]) for f in out] == index.tolist()          # each frame carries its source index
    assert {0, 50, 51} <= set(index.tolist()) and 70 < len(out) < 130  # drawn frames kept, about half the rest
    assert np.isfinite(boxes[:, 0]).sum() == 3 and np.diff(index).max() > 1


def test_night_ir_is_grey_dim_and_seeded(rng):
    frames, _ = _scene(rng, n=3)
    c = cond.CONDITIONS["night_ir"]
    a, _, _ = cond.apply(c, frames, None, seed=1)
    b, _, _ = cond.apply(c, frames, None, seed=1)
    d, _, _ = cond.apply(c, frames, None, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and not np.array_equal(a[0], d[0])
    assert all(np.array_equal(f[..., 0], f[..., 1]) and np.array_equal(f[..., 1], f[..., 2]) for f in a)
    assert np.mean(a[0]) < 0.6 * np.mean(frames[0]) + 12


def test_jpeg_and_low_light_change_the_frames_not_their_shape(rng):
    frames, _ = _scene(rng, n=2)
    for name in ("jpeg_q10", "low_light"):
        out, _, _ = cond.apply(cond.CONDITIONS[name], frames, None, seed=0)
        assert [f.shape for f in out] == [f.shape for f in frames]
        assert np.abs(out[0].astype(int) - frames[0]).mean() > 2


def test_unknown_condition_is_one_line():
    with pytest.raises(ValueError, match="unknown condition fog") as e:
        cond.select(["original", "fog"])
    assert "\n" not in str(e.value)
    assert [c.name for c in cond.select(None)] == list(cond.CONDITIONS)


@pytest.mark.parametrize("spec", ["cand", "cand=/nonexistent/classifier.pt"])
def test_conditions_script_refuses_a_bad_classifier_checkpoint_before_work(tmp_path, spec):
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "bench" / "conditions.py"
    r = subprocess.run([sys.executable, str(script), "--no-tracker", "--out", str(tmp_path / "o"),
                        "--classifier-weights", spec], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "--classifier-weights takes NAME=CHECKPOINT" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()            # refused before the output folder was made
