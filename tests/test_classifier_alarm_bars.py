"""edge.models.classifier_calibration: alarm bars fitted on validation data (hand-computed window streams) and
the faulty copies of the VAL real footage they are fitted on."""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")
from edge.classify import decision as dec  # noqa: E402
from edge.data.actions import CLASSES  # noqa: E402
from edge.models import classifier_calibration as cc  # noqa: E402


def window(label: str, p: float) -> np.ndarray:
    """Logits whose softmax (T = 1) gives ``label`` probability ``p`` and the other classes the rest evenly."""
    z = np.zeros(len(CLASSES))
    z[CLASSES.index(label)] = math.log(p * (len(CLASSES) - 1) / (1 - p))
    return z


def stream(*wins) -> np.ndarray:
    return np.stack([window(c, p) for c, p in wins])


def test_fitted_bar_is_the_lowest_that_keeps_every_kind_of_negative_quiet():
    cal = dec.Calibration(1.0)
    alarms = dec.load_alarm_rules(None, CLASSES)
    rng = np.random.default_rng()
    p_own = rng.uniform(0.91, 0.94)                  # fresh scores, same grid cells every run
    streams = [("fall", stream(("none", 0.9), ("fall", p_own), ("fall", p_own), ("none", 0.9))),
               # another class's stream: two fall windows at 0.72 start a fall at any bar <= 0.70
               ("sit_down", stream(("sit_down", 0.4), ("fall", 0.72), ("fall", 0.72), ("sit_down", 0.4))),
               ("take", stream(("take", 0.56), ("take", 0.57), ("none", 0.9)))]
    real = {"val.mp4": stream(("fall", 0.82), ("fall", 0.83), ("none", 0.9)),          # quiet from 0.85 up
            "val.mp4~jpeg": stream(("fall", 0.79), ("none", 0.9), ("fall", 0.79))}     # never two in a row
    noise = stream(("fall", 0.87), ("none", 0.6))                                        # quiet from 0.9 up
    bars = cc.fit_alarm_bars(cal, alarms, streams, real, noise)
    assert set(bars) == set(dec.alarm_classes(alarms))
    fall = bars["fall"]["fitted"]
    assert (fall["enter"], fall["bar"], fall["recall"]) == (2, 0.9, 1.0)   # ties: 2 windows beat 1
    assert fall["wrong_starts"] == fall["val_real_starts"] == fall["noise_windows"] == 0
    # the shipped fall bar (0.9 in edge/data/alarms.json) measured the same way
    assert bars["fall"]["shipped"]["bar"] == alarms["fall"].start
    take = bars["take"]["fitted"]             # the highest bar both windows reach, two in a row
    assert (take["enter"], take["bar"], take["recall"]) == (2, 0.55, 1.0)
    assert bars["take"]["shipped"]["recall"] == 0.0          # 0.56/0.57 never reach the shipped 0.8
    assert bars["put_back"]["fitted"]["recall"] is None      # no validation stream of its own


def test_a_single_window_action_gets_enter_1_when_nothing_else_reaches_its_bar():
    cal = dec.Calibration(1.0)
    alarms = dec.load_alarm_rules(None, CLASSES)
    p = np.random.default_rng().uniform(0.955, 0.97)
    streams = [("fall", stream(("none", 0.9), ("fall", p), ("none", 0.9))),
               ("none", stream(("fall", 0.9), ("none", 0.9), ("fall", 0.93)))]     # single windows up to 0.93
    bars = cc.fit_alarm_bars(cal, alarms, streams, {}, np.zeros((0, len(CLASSES))))
    fall = bars["fall"]["fitted"]
    assert (fall["enter"], fall["bar"], fall["recall"]) == (1, 0.95, 1.0)
    assert bars["fall"]["shipped"]["recall"] == 0.0 and bars["fall"]["shipped"]["enter"] == 2


def test_no_bar_on_the_grid_is_quiet():
    cal = dec.Calibration(1.0)
    alarms = dec.load_alarm_rules(None, CLASSES)
    real = {"val.mp4": stream(("put_back", 0.99), ("put_back", 0.99))}
    bars = cc.fit_alarm_bars(cal, alarms, [], real, np.zeros((0, len(CLASSES))))
    assert bars["put_back"]["fitted"] is None
    assert bars["put_back"]["shipped"]["val_real_starts"] == 1


def test_faulty_copies_force_each_camera_fault():
    from edge.data import degrade
    rng = np.random.default_rng()
    frames = [rng.integers(0, 256, (36, 48, 3), dtype=np.uint8) for _ in range(3)]
    copies = cc.faulty_copies(frames, 0)
    assert set(copies) == set(degrade.FAULTS)
    assert all(len(v) == 3 for v in copies.values())
    assert copies["rotate"][0].shape == (48, 36, 3)
    assert all(f.shape == (36, 48, 3) for k, v in copies.items() if k != "rotate" for f in v)
    for k in ("dark", "jitter", "jpeg"):
        assert not np.array_equal(copies[k][0], frames[0]), k
    assert all(np.ptp(f.astype(int), axis=2).max() == 0 for f in copies["grey"])
    again = cc.faulty_copies(frames, 0)
    assert all(np.array_equal(a, b) for k in copies for a, b in zip(copies[k], again[k]))
