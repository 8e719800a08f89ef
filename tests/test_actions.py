"""Generated labelled action clips (edge.data.actions): determinism, splits, and that motion decides."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from edge.data.actions import CLASSES, SCHEDULE, SPLIT_SIZES, clip_seed, make_clip, split_clip, split_labels, write_clips
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
    assert split_labels("train", 12) == [SCHEDULE[i % len(SCHEDULE)] for i in range(12)]
    assert set(SCHEDULE) == set(CLASSES) and SCHEDULE.count("none") == 2      # background: 2 in 8
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
    """Per-step 95th-percentile DIS flow magnitude after removing the frame's median flow (the camera's
    translation): an independent measure of what moves in the scene."""
    dis = DISFlow()
    g = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in clip]
    out = []
    for a, b in zip(g, g[1:]):
        fl = dis(a, b)
        out.append(np.percentile(np.linalg.norm(fl - np.median(fl.reshape(-1, 2), 0), axis=-1), 95))
    return np.array(out)


def test_motion_defines_the_classes(rng):
    """Paired over seeds (same background, camera and distractors): camera shake, background video and other
    moving things are in every clip, yet the classes differ by how the person moves."""
    base = _seed(rng)
    seeds = [base + k for k in range(8)]
    m = {c: [_motion(make_clip(s, c, 9, 160)) for s in seeds] for c in ("idle", "pass_by")}
    # a shopper walking by moves much more than one standing idle
    assert np.mean([x.mean() for x in m["pass_by"]]) > 1.3 * np.mean([x.mean() for x in m["idle"]])
    # a fall is fast: its peak motion beats a slow sit-down's peak. 16 pairs: with 8 the ratio of the means fell
    # below 1.15 for 1 of 24 bases (1.14; a CI run failed on one); with 16 its lowest over 24 bases was 1.39
    seeds = [base + k for k in range(16)]
    m = {c: [_motion(make_clip(s, c, 9, 160)) for s in seeds] for c in ("fall", "sit_down")}
    assert np.mean([x.max() for x in m["fall"]]) > 1.15 * np.mean([x.max() for x in m["sit_down"]])


def test_splits_draw_only_from_their_real_sources(monkeypatch):
    """Training clips never read a held-back file: every real video/photo a train-split clip opens is in
    edge.data.real_sources.TRAIN (val: VAL; test may use VAL + HELD_BACK)."""
    from edge.data import actions, real_sources
    opened = {"train": set(), "val": set()}
    split = {"now": None}
    real_video, real_photos = real_sources.videos, real_sources.photos

    def videos(purpose):
        out = real_video(purpose)
        opened[split["now"]].update(out)
        return out

    def photos(purpose):
        out = real_photos(purpose)
        opened[split["now"]].update(f"photo:{p}" for p in out)
        return out
    monkeypatch.setattr(real_sources, "videos", videos)
    monkeypatch.setattr(real_sources, "photos", photos)
    for s in ("train", "val"):
        split["now"] = s
        for i in range(12):
            actions.split_clip(s, i, 3, 48)
    assert opened["train"] and opened["train"] <= set(real_sources.TRAIN)
    assert opened["val"] and opened["val"] <= set(real_sources.VAL)
    assert not opened["train"] & set(real_sources.HELD_BACK)


def test_write_clips_videos_and_labels(tmp_path):
    csv_path = write_clips(tmp_path, "val", count=3, frames=4, size=64)
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["label"] for r in rows] == split_labels("val", 3)
    for r in rows:
        frames = read_video(tmp_path / r["file"])
        assert len(frames) == 4 and frames[0].shape == (64, 64, 3)
        ref = split_clip("val", int(r["index"]), 4, 64)[1]
        assert np.abs(np.stack(frames).astype(int) - ref).mean() < 12      # MJPG is lossy
    assert not list(tmp_path.glob(".*"))                                    # no temp files left
