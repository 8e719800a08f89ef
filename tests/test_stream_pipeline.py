"""The threaded pipeline: every frame of a file, drop-oldest on live sources, batching across streams,
classifier windows against a direct computation, hysteresis events."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from edge.assets import video_clip
from edge.events import ActionEnd
from edge.classify.preprocess import FrameStream
from edge.classify.runtime import ClassifierRuntime, Hysteresis, softmax
from edge.stream.pipeline import Pipeline, Sink, StreamInput
from edge.stream.sources import LiveSource, open_source
from fixtures.numpy_engines import LABELS, classifier_engines, read_clip

CLIP = video_clip("carphone_pristine.mp4")


class Collect(Sink):
    def __init__(self):
        self.results = []

    def write(self, r):
        self.results.append(r)


def direct_window_logits(frames, engines, window, stride, size=56):
    """Reference: preprocess the whole clip in order, encode every frame, run each due window from zero."""
    prep = FrameStream(size)
    feats = []
    for f in frames:
        rgb, flow = prep(f)
        feats.append(engines["encoder"].run({"rgb": rgb, "flow": flow})["features"])
    step = engines["step"]
    out = {}
    for k in range(window - 1, len(frames), stride):
        h = np.zeros((1, step.hidden, 7, 7), np.float32)
        c = np.zeros_like(h)
        for t in range(k - window + 1, k + 1):
            o = step.run({"features": feats[t], "h": h, "c": c})
            h, c = o["h_next"], o["c_next"]
        out[k] = o["logits"][0]
    return out


def test_file_source_processes_every_frame_with_classifier_windows():
    frames = read_clip(CLIP)
    engines = classifier_engines(window=4, stride=3)
    sink = Collect()
    pipe = Pipeline([StreamInput(open_source(str(CLIP)))], classifier=ClassifierRuntime(engines), sinks=[sink])
    summary = pipe.run()
    assert summary[0].processed == summary[0].captured == 120 and summary[0].drops == 0
    assert [r.index for r in sink.results] == list(range(120))
    assert all(np.array_equal(r.image, f) for r, f in zip(sink.results, frames))
    ref = direct_window_logits(frames, classifier_engines(window=4, stride=3), 4, 3)
    rt = ClassifierRuntime(engines)
    for k, logits in ref.items():
        p = softmax(logits.astype(np.float64))
        r = sink.results[k]
        assert r.label == LABELS[int(p.argmax())], k
        assert r.label_score == pytest.approx(float(p.max()), rel=1e-4, abs=1e-5), k
    assert sink.results[2].label is None and sink.results[3].label is not None   # first window at T-1
    assert rt.window == 4 and rt.stride == 3
    assert sink.results[50].attention.shape == (7, 7)


def test_two_streams_batch_the_encoder_and_keep_separate_state():
    frames = read_clip(CLIP)
    engines = classifier_engines(window=4, stride=2)
    sink = Collect()
    rev = open_source(str(CLIP))
    pipe = Pipeline([StreamInput(open_source(str(CLIP)), name="a"), StreamInput(rev, name="b")],
                    classifier=ClassifierRuntime(engines), sinks=[sink], max_frames=60, max_batch=4)
    summary = pipe.run()
    assert [s.processed for s in summary] == [60, 60]
    assert max(engines["encoder"].calls) > 1, "the encoder never saw a batch across streams"
    ref = direct_window_logits(frames[:60], classifier_engines(window=4, stride=2), 4, 2)
    for s in (0, 1):
        res = [r for r in sink.results if r.stream == s]
        assert [r.index for r in res] == list(range(60))
        for k, logits in ref.items():
            assert res[k].label_score == pytest.approx(float(softmax(logits.astype(np.float64)).max()),
                                                       rel=1e-4, abs=1e-5)


class _Session:
    def prepare(self, frame):
        return frame.index

    def close(self, last_frame):
        return []


class _Model:
    """A second model of the run protocol: its step meets the other model's at a barrier (so it passes only
    when both step at once) and records the thread it ran in; ``fail_at`` raises there."""

    def __init__(self, barrier=None, fail_at=None):
        self.barrier, self.fail_at, self.threads = barrier, fail_at, set()

    def session(self, *args):
        return _Session()

    def step(self, items):
        self.threads.add(threading.current_thread().name)
        if self.barrier is not None:
            self.barrier.wait()
        if self.fail_at is not None and any(p == self.fail_at for _, p, _ in items):
            raise ValueError(f"model failed at frame {self.fail_at}")
        return [type("Update", (), {"events": []})() for _ in items]


class _Meeting(ClassifierRuntime):
    def __init__(self, engines, barrier):
        super().__init__(engines)
        self.barrier = barrier

    def step(self, items):
        self.barrier.wait()
        return super().step(items)


def test_models_step_concurrently_with_the_same_results():
    """Two models: the second steps in a worker thread while the inference thread steps the first (they
    meet at a barrier every batch); the classifier's labels equal a run without concurrency."""
    barrier = threading.Barrier(2, timeout=10)
    other = _Model(barrier)
    sink = Collect()
    pipe = Pipeline([StreamInput(open_source(str(CLIP)), (1, 1, 4, 4))], tracker=other,
                    classifier=_Meeting(classifier_engines(window=4, stride=2), barrier), sinks=[sink], max_frames=30)
    assert pipe.run()[0].processed == 30
    assert other.threads == {"infer"} and not barrier.broken
    plain = Collect()
    Pipeline([StreamInput(open_source(str(CLIP)))],
             classifier=ClassifierRuntime(classifier_engines(window=4, stride=2)), sinks=[plain], max_frames=30,
             concurrent_models=False).run()
    assert [(r.label, r.label_score) for r in sink.results] == [(r.label, r.label_score) for r in plain.results]


class _Timed(ClassifierRuntime):
    """The classifier, slowed down, recording when each frame's step ran."""

    def __init__(self, engines, delay):
        super().__init__(engines)
        self.delay, self.spans = delay, {}

    def step(self, items):
        t0 = time.perf_counter()
        time.sleep(self.delay)
        out = super().step(items)
        for _, _, f in items:
            self.spans[f.index] = (t0, time.perf_counter())
        return out


class _TimedModel(_Model):
    def __init__(self):
        super().__init__()
        self.starts = {}

    def step(self, items):
        for _, _, f in items:
            self.starts[f.index] = time.perf_counter()
        return super().step(items)


@pytest.mark.parametrize("pipelined", [True, False])
def test_pipelined_models_overlap_batches_with_the_same_results(pipelined):
    """Pipelined (the default for files), the first model of frame k + 1 starts while the second is still on
    frame k; not pipelined, never. Either way every frame comes out once, in order, with the labels of a run
    without concurrency."""
    first, second = _TimedModel(), _Timed(classifier_engines(window=4, stride=2), delay=0.02)
    sink = Collect()
    Pipeline([StreamInput(open_source(str(CLIP)), (1, 1, 4, 4))], tracker=first, classifier=second, sinks=[sink],
             max_frames=25, pipelined_models=pipelined).run()
    plain = Collect()
    Pipeline([StreamInput(open_source(str(CLIP)))],
             classifier=ClassifierRuntime(classifier_engines(window=4, stride=2)), sinks=[plain], max_frames=25,
             concurrent_models=False).run()
    assert [r.index for r in sink.results] == list(range(25))
    assert [(r.label, r.label_score) for r in sink.results] == [(r.label, r.label_score) for r in plain.results]
    overlaps = sum(first.starts[k + 1] < second.spans[k][1] for k in range(24))
    assert (overlaps > 0) if pipelined else (overlaps == 0), overlaps


def test_error_in_the_concurrent_model_aborts_and_reraises():
    pipe = Pipeline([StreamInput(open_source(str(CLIP)), (1, 1, 4, 4))], tracker=_Model(),
                    classifier=_FailingClassifier(classifier_engines()), max_frames=40)
    with pytest.raises(ValueError, match="classifier failed at frame 7"):
        pipe.run()


def test_error_in_the_first_model_while_the_second_is_queued_ends_promptly():
    """Pipelined, the classifier has a batch queued when the tracker fails: run() re-raises the tracker's
    error without waiting on the worker (its uncollected results are drained)."""
    pipe = Pipeline([StreamInput(open_source(str(CLIP)), (1, 1, 4, 4))], tracker=_Model(fail_at=6),
                    classifier=_Timed(classifier_engines(), delay=0.05), max_frames=40)
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="model failed at frame 6"):
        pipe.run()
    assert time.monotonic() - t0 < 3.0


class _FailingClassifier(ClassifierRuntime):
    def step(self, items):
        if any(f.index == 7 for _, _, f in items):
            raise ValueError("classifier failed at frame 7")
        return super().step(items)


def _live_file(path, **kw):
    return LiveSource(lambda: cv2.VideoCapture(str(path)), "live-file", max_reconnects=0, **kw)


def test_live_source_drops_oldest_when_inference_is_slow():
    """Capture runs at decode speed (~1000 fps); the encoder sleeps 15 ms per call: the live stream must
    drop frames, never stall, and deliver the newest ones; every captured frame is processed or dropped."""
    engines = classifier_engines(delay=0.015)
    sink = Collect()
    pipe = Pipeline([StreamInput(_live_file(CLIP))], classifier=ClassifierRuntime(engines), sinks=[sink],
                    live_queue_size=2, max_batch=1)
    s = pipe.run()[0]
    assert s.captured == 120
    assert s.drops > 0
    assert s.processed + s.drops + _in_flight_lost(pipe) == 120
    idx = [r.index for r in sink.results]
    assert idx == sorted(set(idx)) and idx[-1] == 119          # order kept, the newest frame survives
    gaps = np.diff(idx)
    assert gaps.max() > 1


def _in_flight_lost(pipe):
    return 0     # frames are never lost between stages: only the capture queue drops


def test_file_source_never_drops_with_slow_inference():
    engines = classifier_engines(delay=0.01)
    sink = Collect()
    pipe = Pipeline([StreamInput(open_source(str(CLIP)))], classifier=ClassifierRuntime(engines), sinks=[sink],
                    queue_size=2, max_batch=1, max_frames=40)
    s = pipe.run()[0]
    assert s.drops == 0 and s.processed == s.captured == 40
    assert [r.index for r in sink.results] == list(range(40))


def test_stop_mid_run_finishes_cleanly():
    engines = classifier_engines(delay=0.01)
    sink = Collect()
    pipe = Pipeline([StreamInput(open_source(str(CLIP)))], classifier=ClassifierRuntime(engines), sinks=[sink])
    threading.Timer(0.3, pipe.stop).start()
    s = pipe.run()[0]
    assert 0 < s.processed == s.captured < 120
    assert [r.index for r in sink.results] == list(range(s.processed))


def test_stage_error_aborts_and_reraises():
    class Broken(Sink):
        def write(self, r):
            if r.index == 5:
                raise RuntimeError("disk full")
    closed = []

    class Marker(Sink):
        def close(self, summaries):
            closed.append(True)
    pipe = Pipeline([StreamInput(open_source(str(CLIP)))], sinks=[Broken(), Marker()])
    with pytest.raises(RuntimeError, match="disk full"):
        pipe.run()
    assert closed == [True]


# -- hysteresis, hand-computed -------------------------------------------------------------------------
def _run(h, seq):
    out = []
    for i, (label, score) in enumerate(seq):
        out += [(e.type, e.label, e.frame) for e in h.update(label, score, i)]
    return out


def test_hysteresis_needs_consecutive_windows_to_start_and_end():
    h = Hysteresis(on=0.6, off=0.4, enter=2, exit=2)
    seq = [("take", 0.9), ("idle", 0.9), ("take", 0.7), ("take", 0.65), ("take", 0.45), ("take", 0.3),
           ("take", 0.5), ("idle", 0.8), ("idle", 0.8)]
    # 0: one window only; 2,3: two in a row -> start at 3; 4: 0.45 >= off keeps it; 5: below off (1),
    # 6: back above off resets the count; 7, 8: other label twice -> end at 8
    assert _run(h, seq) == [("action_start", "take", 3), ("action_end", "take", 8)]


def test_hysteresis_background_never_starts_and_switch_ends_first():
    h = Hysteresis(on=0.5, off=0.3, enter=1, exit=1)
    seq = [("idle", 0.99), ("fall", 0.8), ("take", 0.9), ("take", 0.9)]
    assert _run(h, seq) == [("action_start", "fall", 1), ("action_end", "fall", 2), ("action_start", "take", 2)]
    assert h.close(9) == [ActionEnd(9, "take", 2)]


class _BlasThreads(_Model):
    """Records how many threads numpy's BLAS may use while the model steps."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def step(self, items):
        from threadpoolctl import threadpool_info
        self.seen.update(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        return super().step(items)


def test_blas_runs_on_one_thread_while_the_pipeline_runs_and_is_restored_after():
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):       # as numpy starts on this 2-core machine
        before = blas_threads()
        if before == {1}:
            pytest.skip("numpy's BLAS has one thread on this machine already (one core)")
        model = _BlasThreads()
        Pipeline([StreamInput(open_source(str(CLIP)), (1, 1, 4, 4))], tracker=model, max_frames=5).run()
        assert model.seen == {1}, (before, model.seen)
        assert blas_threads() == before


def test_stream_inbox_takes_one_item_per_stream_round_robin():
    """Hand-made case: stream 0 ran ahead by two items, stream 2 has one; a batch takes the oldest item of
    each stream that has one, a full stream's put times out, and with room for one item a batch starts from
    the stream after the last one served."""
    import queue
    from edge.stream.pipeline import StreamInbox
    box = StreamInbox(3, 8, per_stream=2)
    box.put(0, "a0")
    box.put(0, "a1")
    box.put(2, "c0")
    with pytest.raises(queue.Full):
        box.put(0, "a2", timeout=0.01)
    assert box.get() == ["a0", "c0"]
    assert box.get() == ["a1"]
    assert box.empty()
    with pytest.raises(queue.Empty):
        box.get(timeout=0.01)
    one = StreamInbox(3, 1, per_stream=2)         # room for one item per batch
    one.put(0, "0a")
    assert one.get() == ["0a"]                    # served stream 0 last: the next batch starts from stream 1
    for i in range(3):
        one.put(i, f"{i}x")
        one.put(i, f"{i}y")
    assert [one.get() for _ in range(6)] == [["1x"], ["2x"], ["0x"], ["1y"], ["2y"], ["0y"]]


class _Recording(_Model):
    """A first model that records the streams of every step and how many steps ran at once (``delay`` s
    each); ``lanes`` is what it allows (``max_lanes``); ``fail_stream`` raises on that stream's frame 5."""

    def __init__(self, lanes=1, delay=0.0, fail_stream=None):
        super().__init__()
        self.max_lanes, self.delay, self.fail_stream = lanes, delay, fail_stream
        self.batches, self.active, self.most, self.seen = [], 0, 0, {}
        self.lock = threading.Lock()

    def step(self, items):
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
            self.batches.append([f.stream for _, _, f in items])
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
            for _, _, f in items:
                self.seen.setdefault(f.stream, []).append(f.index)
        if any(f.stream == self.fail_stream and f.index == 5 for _, _, f in items):
            raise ValueError(f"stream {self.fail_stream} failed at frame 5")
        return super().step(items)


def test_batches_hold_one_frame_per_stream():
    """Three file streams: every inference batch holds at most one frame of each stream (a stream whose
    prepare ran ahead waits for the next batch instead of filling this one), every frame comes out once, in
    order per stream, and with inference the slowest stage (10 ms a step) most batches hold all three."""
    model = _Recording(delay=0.01)
    sink = Collect()
    pipe = Pipeline([StreamInput(open_source(str(CLIP)), (1, 1, 4, 4), name=f"s{i}") for i in range(3)],
                    tracker=model, sinks=[sink], max_frames=30)
    assert [s.processed for s in pipe.run()] == [30, 30, 30]
    assert all(len(b) == len(set(b)) for b in model.batches), model.batches
    assert sum(len(b) == 3 for b in model.batches) >= 0.8 * len(model.batches)
    for s in range(3):
        assert [r.index for r in sink.results if r.stream == s] == list(range(30))


@pytest.mark.parametrize("lanes", [1, 2])
def test_lanes_step_streams_at_once(lanes):
    """With two lanes the first model steps two streams' sessions at the same time (one in the inference
    thread, one in a lane); with one, never. Either way every frame comes out once, in order per stream, and
    each stream's frames reach the model in order."""
    model = _Recording(lanes=lanes, delay=0.005)
    sink = Collect()
    pipe = Pipeline([StreamInput(open_source(str(CLIP)), (1, 1, 4, 4), name=f"s{i}") for i in range(2)],
                    tracker=model, sinks=[sink], max_frames=20)
    assert pipe.lanes == lanes
    assert [s.processed for s in pipe.run()] == [20, 20]
    assert model.most == lanes
    assert model.threads == ({"infer", "infer-lane1"} if lanes == 2 else {"infer"})
    for s in range(2):
        assert model.seen[s] == list(range(20))
        assert [r.index for r in sink.results if r.stream == s] == list(range(20))


def test_lanes_are_capped_by_streams_and_checked():
    one = StreamInput(open_source(str(CLIP)), (1, 1, 4, 4))
    assert Pipeline([one], tracker=_Recording(lanes=4)).lanes == 1          # one stream: nothing to split
    assert Pipeline([one], tracker=_Model()).lanes == 1                     # a runtime that does not say
    from edge.errors import UserError
    with pytest.raises(UserError, match="lanes must be an integer >= 1"):
        Pipeline([one], tracker=_Model(), lanes=0)


def test_error_in_a_lane_aborts_and_reraises():
    """The second stream's step runs in the lane and fails there: run() re-raises it promptly."""
    pipe = Pipeline([StreamInput(open_source(str(CLIP)), (1, 1, 4, 4)) for _ in range(2)],
                    tracker=_Recording(lanes=2, fail_stream=1), max_frames=40)
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="stream 1 failed at frame 5"):
        pipe.run()
    assert time.monotonic() - t0 < 3.0
