"""Camera faults of the training clips (edge.data.degrade): each fault against OpenCV / numpy doing the same
thing, the clean splits and their faulty copies, and the options that use them."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.data import actions, degrade
from edge.data.actions import clip_seed, make_clip, split_clip


def _clip(rng, t=4, s=48) -> np.ndarray:
    base = rng.integers(0, 256, (1, s, s, 3)).astype(np.float32)
    drift = rng.normal(0, 8, (t, 1, 1, 3))
    return np.clip(cv2.GaussianBlur(base[0], (5, 5), 0)[None] + drift, 0, 255).astype(np.uint8)


def _only(name: str) -> dict[str, float]:
    return {n: float(n == name) for n in degrade.FAULTS}


def test_no_fault_drawn_is_the_same_clip(rng):
    clip = _clip(rng)
    out, applied = degrade.degrade_clip(clip, np.random.default_rng(int(rng.integers(1 << 30))),
                                        {n: 0.0 for n in degrade.FAULTS})
    assert applied == ()
    np.testing.assert_array_equal(out, clip)


def test_rotate_is_a_quarter_turn_of_every_frame(rng):
    clip = _clip(rng)
    out, applied = degrade.degrade_clip(clip, np.random.default_rng(int(rng.integers(1 << 30))), _only("rotate"))
    assert applied == ("rotate",)
    cw = np.stack([cv2.rotate(f, cv2.ROTATE_90_CLOCKWISE) for f in clip])
    ccw = np.stack([cv2.rotate(f, cv2.ROTATE_90_COUNTERCLOCKWISE) for f in clip])
    assert np.array_equal(out, cw) or np.array_equal(out, ccw)


def test_jpeg_is_one_quality_for_the_whole_clip(rng):
    clip = _clip(rng)
    out, _ = degrade.degrade_clip(clip, np.random.default_rng(int(rng.integers(1 << 30))), _only("jpeg"))

    def enc(f, q):
        return cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)
    qualities = [q for q in range(6, 56) if all(np.array_equal(enc(f, q), o) for f, o in zip(clip, out))]
    assert len(qualities) >= 1 and not np.array_equal(out, clip)


def test_grey_and_dark(rng):
    clip = _clip(rng)
    grey, _ = degrade.degrade_clip(clip, np.random.default_rng(int(rng.integers(1 << 30))), _only("grey"))
    ref = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in clip])
    for ch in range(3):
        np.testing.assert_array_equal(grey[..., ch], ref)
    dark, _ = degrade.degrade_clip(clip, np.random.default_rng(int(rng.integers(1 << 30))), _only("dark"))
    # gain <= 0.55, lift <= 16, zero-mean noise: at most 0.55 x the mean + 16 (+ noise and clipping slack)
    assert dark.mean() < 0.55 * clip.mean() + 16 + 3
    assert dark.mean() > 0.2 * clip.mean() - 3


def test_jitter_shifts_each_frame_by_its_own_offset(rng):
    clip = np.repeat(_clip(rng, 1, 64), 5, 0)                  # a still camera
    out, _ = degrade.degrade_clip(clip, np.random.default_rng(int(rng.integers(1 << 30))), _only("jitter"))
    assert out.shape == clip.shape
    assert len({out[k].tobytes() for k in range(5)}) > 1       # the still scene now moves


def test_bad_faults_and_clips_are_one_line_errors(rng):
    with pytest.raises(ValueError, match="unknown camera fault"):
        degrade.degrade_clip(_clip(rng), np.random.default_rng(0), {"fog": 0.5})
    with pytest.raises(ValueError, match="outside"):
        degrade.degrade_clip(_clip(rng), np.random.default_rng(0), {"jpeg": 1.5})
    with pytest.raises(ValueError, match="uint8 clip"):
        degrade.degrade_clip(_clip(rng).astype(np.float32), np.random.default_rng(0))


def test_clean_splits_and_their_faulty_copies(rng):
    assert set(actions.DEGRADED_SPLITS) == {"train_faults", "val_faults", "test_faults"}
    i = int(rng.integers(0, 400))
    for clean_split, faulty_split in (("val", "val_faults"), ("test", "test_faults"), ("train", "train_faults")):
        label, clean = split_clip(clean_split, i, 3, 64)
        pool = actions.SPLIT_POOLS[clean_split]
        assert actions.SPLIT_POOLS[faulty_split] == pool
        np.testing.assert_array_equal(clean, make_clip(clip_seed(clean_split, i), label, 3, 64, pool))
        assert split_clip(faulty_split, i, 3, 64)[0] == label
    # the faulty copy is the clean clip with the faults drawn from the clip's own stream; some clips get faults
    changed = 0
    for j in range(i, i + 16):
        label, clip = split_clip("val_faults", j, 3, 64)
        clean = split_clip("val", j, 3, 64)[1]
        if label != "put_back":
            ref, applied = degrade.degrade_clip(
                clean, np.random.default_rng([*clip_seed("val", j).generate_state(4), degrade.VERSION]))
            np.testing.assert_array_equal(clip, ref)
            changed += bool(applied)
    assert changed >= 1


def test_training_splits_keep_to_training_sources():
    from edge.data import real_sources
    for split in ("train", "train_faults"):
        assert actions.SPLIT_POOLS[split] == "train"
    assert not set(real_sources.pool("train")) & set(real_sources.HELD_BACK)


def test_prepare_cache_rejects_a_bad_share(tmp_path):
    from edge.models.train_classifier import main
    for bad in ("2/2", "x", "1/0"):
        with pytest.raises(SystemExit, match="K/N"):
            main(["--prepare-cache", bad, "--cache", str(tmp_path)])


def test_calibration_splits_are_validated_before_any_work(tmp_path):
    from edge.models.train_classifier import main
    for bad in ("test", "val_faults", "val,test_faults"):
        with pytest.raises(SystemExit, match="--calib-splits must be val or val,val_faults"):
            main(["--calibrate", "--calib-splits", bad, "--out", str(tmp_path / "absent.pt"), "--cache", ""])
