"""Generated labelled action clips (edge.data.actions): determinism, splits, and that motion decides."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from edge.data.actions import CLASSES, SPLIT_SIZES, clip_seed, make_clip, split_labels, write_clips
from edge.data.sequences import read_video
from edge.flow import DISFlow


def _seed(rng) -> int:
    return int(rng.integers(0, 2**31))


@pytest.mark.parametrize("label", CLASSES)
def test_clip_is_deterministic_per_seed(rng, label):
    seed = _seed(rng)
    a = make_clip(seed, label, frames=5, size=96)
    assert a.shape == (5, 96, 96, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, make_clip(seed, label, frames=5, size=96))
    assert not np.array_equal(a, make_clip(seed + 1, label, frames=5, size=96))


def test_put_back_is_take_reversed_in_time(rng):
    seed = _seed(rng)
    take = make_clip(seed, "take", frames=9, size=128)
    put_back = make_clip(seed, "put_back", frames=9, size=128)
    np.testing.assert_array_equal(put_back, take[::-1])
    assert not np.array_equal(take[0], take[-1])               # something moved


def test_splits_are_fixed_and_disjoint():
    assert split_labels("train", 12) == [CLASSES[i % len(CLASSES)] for i in range(12)]
    assert len(split_labels("test")) == SPLIT_SIZES["test"]
    seeds = {s: [clip_seed(s, i).generate_state(2).tolist() for i in range(50)] for s in ("train", "val", "test")}
    flat = [tuple(x) for v in seeds.values() for x in v]
    assert len(set(flat)) == len(flat)
    a = make_clip(clip_seed("train", 0), "idle", 3, 64)
    np.testing.assert_array_equal(a, make_clip(clip_seed("train", 0), "idle", 3, 64))
    assert not np.array_equal(a, make_clip(clip_seed("test", 0), "idle", 3, 64))
    with pytest.raises(ValueError):
        clip_seed("holdout", 0)
    with pytest.raises(ValueError):
        make_clip(0, "dance")


def _motion(clip: np.ndarray) -> np.ndarray:
    """Per-step 95th-percentile DIS flow magnitude (an independent measure of motion)."""
    dis = DISFlow()
    g = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in clip]
    return np.array([np.percentile(np.linalg.norm(dis(a, b), axis=-1), 95) for a, b in zip(g, g[1:])])


def test_motion_defines_the_classes(rng):
    base = _seed(rng)
    seeds = [base + k for k in range(3)]
    m = {c: [_motion(make_clip(s, c, 9, 160)) for s in seeds] for c in ("idle", "pass_by", "fall", "sit_down")}
    # a shopper walking by moves much more than one standing idle
    assert min(x.mean() for x in m["pass_by"]) > max(x.mean() for x in m["idle"])
    # a fall is fast: its peak motion beats a slow sit-down's peak
    assert np.mean([x.max() for x in m["fall"]]) > 1.5 * np.mean([x.max() for x in m["sit_down"]])


def test_write_clips_videos_and_labels(tmp_path):
    csv_path = write_clips(tmp_path, "val", count=3, frames=4, size=64)
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["label"] for r in rows] == split_labels("val", 3)
    for r in rows:
        frames = read_video(tmp_path / r["file"])
        assert len(frames) == 4 and frames[0].shape == (64, 64, 3)
        ref = make_clip(clip_seed("val", int(r["index"])), r["label"], 4, 64)
        assert np.abs(np.stack(frames).astype(int) - ref).mean() < 12      # MJPG is lossy
    assert not list(tmp_path.glob(".*"))                                    # no temp files left
