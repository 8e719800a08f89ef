"""The classifier's clock (``edge.classify.sampling``): a camera's frames reach the model at the rate its
training clips were made at (manifest ``sample_fps``), picked by timestamp; frames in between run no flow and
no encoder and carry the last label."""
from __future__ import annotations

import numpy as np
import pytest

import edge
from edge.assets import video_clip
from edge.classify.runtime import ClassifierRuntime
from edge.classify.sampling import FrameSampler
from edge.errors import UserError
from edge.stream.sources import Frame
from fixtures.numpy_engines import classifier_engines, read_clip

CLIP = video_clip("carphone_pristine.mp4")


def nearest_to_ticks(ts: np.ndarray, period: float) -> list[int]:
    """Hand rule: for each tick t0 + k * period inside the stream, the frame whose timestamp is nearest."""
    dt = ts[1] - ts[0]
    ticks = np.arange(ts[0], ts[-1] + dt / 2, period)               # ticks whose nearest frame is in the stream
    return sorted({int(np.argmin(np.abs(ts - t))) for t in ticks})


@pytest.mark.parametrize("fps", [25.0, 30.0, 29.97, 24.0, 12.46, 60.0, 7.31])
def test_sampler_picks_the_frame_nearest_each_tick(fps, rng):
    start = float(rng.uniform(0, 100))              # streams start anywhere on the clock
    ts = start + np.arange(300) / fps
    s = FrameSampler(5.0)
    got = [i for i, t in enumerate(ts) if s(t)]
    want = nearest_to_ticks(ts, 0.2)
    # the sampler's clock runs on from each tick (no drift), so it meets the hand rule except within a
    # hair of a tie between two frames; at these rates there is none
    assert got == want
    assert len(got) == pytest.approx(300 / fps * 5, abs=1.01)


def test_slow_or_unknown_rate_sources_give_every_frame(rng):
    for fps in (5.0, 4.0, 1.0):
        s = FrameSampler(5.0)
        assert all(s(i / fps) for i in range(50))
    for off in (None, 0, 0.0):
        s = FrameSampler(off)
        assert all(s(float(t)) for t in rng.uniform(0, 1, 20))
    s = FrameSampler(5.0)
    assert all(s(None) for _ in range(10))           # frames without a timestamp are all used


def test_jittered_live_timestamps_keep_the_clock(rng):
    """A live camera at ~30 fps with +-30 % jitter: sampled frames come 0.2 s apart within a frame."""
    dt = 1 / 30
    ts = np.cumsum(rng.uniform(0.7 * dt, 1.3 * dt, 900))
    s = FrameSampler(5.0)
    got = ts[[s(t) for t in ts]]
    ticks = got[0] + 0.2 * np.arange(len(got))
    assert np.all(np.abs(got - ticks) < 1.3 * dt)                   # each within a frame of its tick: no drift
    # one tick every 0.2 s from the first frame, both ends counted (the last tick may fall within a frame of the end)
    assert len(got) == pytest.approx((ts[-1] - ts[0]) * 5 + 1, abs=1.01)


def test_a_gap_restarts_the_clock_and_reset_samples_next():
    s = FrameSampler(5.0)
    seq = [0.0, 0.04, 0.08, 0.12, 0.16, 0.2, 1.5, 1.54, 1.58, 1.62, 1.66, 1.7]
    assert [t for t in seq if s(t)] == [0.0, 0.2, 1.5, 1.7]        # after the stall: from 1.5, not 1.6
    s.reset()
    assert s(1.74) and not s(1.78)


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan")])
def test_sampler_rejects_a_bad_rate(bad):
    with pytest.raises(ValueError, match="sample rate"):
        FrameSampler(bad)
    with pytest.raises(UserError, match="sample rate"):
        ClassifierRuntime(classifier_engines(), sample_fps=bad)


def _stream(rt, frames, fps, reconnect_at=None):
    sess, out = rt.session(), {}
    for k, f in enumerate(frames):
        frame = Frame(0, k, k / fps, f, 0.0, reconnected=k == reconnect_at)
        (u,) = rt.step([(sess, sess.prepare(frame), frame)])
        out[k] = (u.label, u.label_score)
    return sess, out


def test_runtime_sees_only_the_sampled_frames():
    """30 fps through a 5 fps model = the same model fed every 6th frame at its own rate: the same window
    labels and scores at those frames, the encoder run only on them, the last label carried in between."""
    frames = read_clip(CLIP)[:96]
    engines = classifier_engines(window=4, stride=2, sample_fps=5.0)
    rt = ClassifierRuntime(engines)
    assert rt.sample_fps == 5.0
    sess, got = _stream(rt, frames, 30.0)
    calls = sum(engines["encoder"].calls)
    assert calls == 16                                                # frames 0, 6, ..., 90

    plain = ClassifierRuntime(classifier_engines(window=4, stride=2, sample_fps=5.0), sample_fps=0)
    assert plain.sample_fps is None
    _, ref = _stream(plain, frames[::6], 30.0)
    windows = {6 * k: v for k, v in ref.items()}
    for k in range(96):
        j = 6 * (k // 6)                                              # the last sampled frame at or before k
        assert got[k][0] == windows[j][0] and got[k][1] == pytest.approx(windows[j][1], abs=1e-9), k
    assert got[17][0] is None and got[18][0] is not None              # the first window: 4 samples (frame 18)


def test_a_reconnect_restarts_the_clock_and_the_window():
    frames = read_clip(CLIP)[:60]
    engines = classifier_engines(window=4, stride=2, sample_fps=5.0)
    rt = ClassifierRuntime(engines)
    sess, got = _stream(rt, frames, 30.0, reconnect_at=27)
    # before: 0, 6, 12, 18, 24; the reconnected frame 27 is sampled, then 33, 39, 45, 51, 57
    assert sum(engines["encoder"].calls) == 5 + 6
    assert got[26][0] is not None                                     # a window ran at frame 18 (and 24: stride 2)
    assert sess.last.frame == 57 and len(sess.features) == 4          # windows again only from 4 new samples


def test_api_classifier_uses_the_given_rate():
    frames = read_clip(CLIP)[:60]
    engines = classifier_engines(window=4, stride=2, sample_fps=5.0)
    cls = edge.Classifier(engines, fps=30.0)
    got = [k for k, f in enumerate(frames) if cls.push(f) is not None]
    assert got == [18, 30, 42, 54]                                     # windows at samples 3, 5, 7, 9 (every 6th)
    every = edge.Classifier(classifier_engines(window=4, stride=2, sample_fps=5.0))    # no rate: every frame
    assert [k for k, f in enumerate(frames[:10]) if every.push(f) is not None] == [3, 5, 7, 9]
    with pytest.raises(UserError, match="fps must be"):
        edge.Classifier(engines, fps=0)


def test_cli_rejects_a_bad_classifier_rate(tmp_path):
    with pytest.raises(UserError, match="--classifier-fps must be"):
        edge.run(str(CLIP), classifier=str(tmp_path), classifier_fps=-2)
