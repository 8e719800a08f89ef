"""The run loop: threads joined by bounded queues, plumbing only (torch-free).

    capture (one thread per stream) -> prepare (one per stream) -> inference (one, all streams, batched)
    -> sinks (one)

The pipeline only moves frames. What a model does lives in its runtime and its per-stream session
(``edge.tracking.session``, ``edge.classify.runtime``), with one protocol: ``runtime.session(...)`` per
stream; ``session.prepare(frame)`` in the stream's prepare thread; ``runtime.step(items)`` in the inference
thread on a batch of ``(session, prepared, frame)`` items of several streams, one update per item;
``session.close(last_frame)`` at the end of the stream, giving its final events.

Back-pressure: every queue is bounded. A file source blocks when the queue ahead is full, so no frame is
ever lost. A live source's capture queue drops its OLDEST frame instead (counted in ``drops``) so
inference always works on recent frames; queues after it block, so a slow inference stage pushes back to
that one drop point. Stopping (``stop()``, end of files, ``max_frames``) ends capture; an end marker
then flows through every stage, so frames already captured are finished, the video is finalised and the
events are flushed. An exception in any stage aborts all of them and is re-raised by ``run()``.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edge.errors import UserError
from edge.events import Event, SourceReconnect, StreamEnd, StreamSummary, kinds
from edge.runtime.blas import one_blas_thread
from edge.stream.sources import Frame, Source

log = logging.getLogger("edge.stream")

STAGES = ("capture", "prep", "infer", "sink", "latency")


@dataclass
class End:
    """End-of-stream marker for one stream (-1: every stream has ended)."""
    stream: int


class DropOldestQueue:
    """Bounded FIFO whose ``put`` never blocks: when full it discards the oldest item (counted)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = max(1, int(maxsize))
        self._items: deque = deque()
        self._cond = threading.Condition()
        self.drops = 0

    def put(self, item, timeout: float | None = None) -> None:
        with self._cond:
            if not isinstance(item, End):
                while len(self._items) >= self.maxsize:
                    # never drop an end marker (it is always last anyway)
                    self._items.popleft()
                    self.drops += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float | None = None):
        with self._cond:
            if not self._cond.wait_for(lambda: self._items, timeout):
                raise queue.Empty
            return self._items.popleft()


class StreamInbox:
    """The inference stage's input: a bounded slot list per stream, and batches of at most one item per
    stream, taken round-robin. One shared queue let the stream whose prepare thread ran ahead fill every batch
    with its own consecutive frames (measured: 237 of 241 batches of 4 streams held one stream), so nothing was
    batched or stepped across streams and the streams were served in bursts. One slot per stream measured
    best (4 streams 209 vs 204 FPS and 3 % less CPU per frame than two, 1 stream the same FPS)."""

    def __init__(self, streams: int, max_items: int, per_stream: int = 1) -> None:
        self._items = [deque() for _ in range(streams)]
        self._max, self._cap = max(1, int(max_items)), max(1, int(per_stream))
        self._cond = threading.Condition()
        self._next = 0                   # the stream a batch starts from (fairness when max_items < streams)

    def put(self, stream: int, item, timeout: float | None = None) -> None:
        """Append to ``stream``'s slots; ``queue.Full`` when they stay full for ``timeout`` s."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._items[stream]) < self._cap, timeout):
                raise queue.Full
            self._items[stream].append(item)
            self._cond.notify_all()

    def inlet(self, stream: int) -> "_Inlet":
        """``stream``'s side of the inbox, with a queue's ``put(item, timeout)``."""
        return _Inlet(self, stream)

    def get(self, timeout: float | None = None) -> list:
        """The next batch: the oldest item of every stream that has one (at most ``max_items``), waiting up to
        ``timeout`` s for the first; ``queue.Empty`` when none came."""
        with self._cond:
            if not self._cond.wait_for(lambda: any(self._items), timeout):
                raise queue.Empty
            n, batch, last = len(self._items), [], self._next
            for k in range(n):
                i = (self._next + k) % n
                if self._items[i] and len(batch) < self._max:
                    batch.append(self._items[i].popleft())
                    last = i
            self._next = (last + 1) % n
            self._cond.notify_all()
            return batch

    def empty(self) -> bool:
        with self._cond:
            return not any(self._items)


@dataclass(frozen=True)
class _Inlet:
    inbox: StreamInbox
    stream: int

    def put(self, item, timeout: float | None = None) -> None:
        self.inbox.put(self.stream, item, timeout)


@dataclass
class StreamInput:
    """What the pipeline needs to know about one stream."""
    source: Source
    init_box: tuple | None = None
    name: str = ""


@dataclass
class Work:
    """A frame travelling from preparation to inference, with what each of its sessions prepared."""
    frame: Frame
    prepared: list
    t_prep: float


@dataclass
class FrameResult:
    """One processed frame, handed to the sinks: the frame, every model's state at it, its events."""
    stream: int
    name: str
    index: int
    timestamp: float
    image: np.ndarray
    box: tuple | None = None
    score: float | None = None
    lost: bool | None = None
    label: str | None = None
    label_score: float | None = None
    action: str | None = None             # the classifier's event in progress (None: no action)
    attention: np.ndarray | None = None
    events: list[Event] = field(default_factory=list)
    captured: float = 0.0
    timings: dict = field(default_factory=dict)
    source_fps: float | None = None       # the source's nominal frame rate (for writing video)
    fps: float = 0.0                      # this stream's processing rate so far
    drops: int = 0                        # frames this (live) stream dropped so far

    def apply(self, update: Any) -> None:
        """Take a model's update (``TrackerUpdate`` / ``ClassifierUpdate``): its state fields and events."""
        for k, v in vars(update).items():
            if k == "events":
                self.events.extend(v)
            else:
                setattr(self, k, v)


class _ModelWorker:
    """One model's step in its own thread, jobs in order: ``submit`` then ``result`` (which re-raises); a
    pipelined batch's job may wait while the previous one runs."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue = queue.Queue(2)
        self._done: queue.Queue = queue.Queue(1)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, arg = job
            try:
                value = fn(arg)
                self._done.put((True, value, time.perf_counter()))
            except BaseException as e:  # noqa: BLE001 - handed to the inference thread
                self._done.put((False, e, time.perf_counter()))

    def submit(self, fn, arg) -> None:
        self._jobs.put((fn, arg))

    def result(self):
        ok, value, self.finished = self._done.get()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Stop after the queued jobs; results nobody collects (an error elsewhere) are drained so the thread
        never blocks on them."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                self._jobs.put(None, timeout=0.05)
                break
            except queue.Full:
                self._drain()
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._drain()
            self._thread.join(0.05)

    def _drain(self) -> None:
        try:
            self._done.get_nowait()
        except queue.Empty:
            pass


class Sink:
    """A consumer of results; all sinks run in the sink thread and never see the pipeline."""

    def write(self, result: FrameResult) -> None:
        """One processed frame."""

    def end(self, stream: int, name: str, events: Sequence[Event]) -> None:
        """A stream ended; ``events`` are its final ones (open actions closed, ``StreamEnd``)."""

    def close(self, summaries: Sequence[StreamSummary]) -> None:
        """The run is over (also after an error or a signal): finalise and flush."""


@dataclass
class StreamStats:
    name: str
    live: bool
    captured: int = 0
    processed: int = 0
    drops: int = 0
    corrupt: int = 0
    reconnects: int = 0
    first: float | None = None
    last: float | None = None
    last_index: int = 0                # the source index of the last captured frame
    events: Counter = field(default_factory=Counter)
    times: dict = field(default_factory=lambda: {k: deque(maxlen=20000) for k in STAGES})

    def fps(self) -> float:
        if self.first is None or self.last is None or self.processed < 2 or self.last <= self.first:
            return 0.0
        return (self.processed - 1) / (self.last - self.first)

    def summary(self) -> StreamSummary:
        lat = np.asarray(self.times["latency"], np.float64) * 1000
        return StreamSummary(self.name, self.live, self.captured, self.processed, self.drops, self.corrupt,
                             self.reconnects, round(self.fps(), 2),
                             round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                             round(float(np.percentile(lat, 95)), 2) if lat.size else None, dict(self.events))


class Pipeline:
    """Capture -> prepare -> inference -> sinks for one or more streams.

    ``tracker``: a ``TrackerRuntime`` (a session for every stream with an ``init_box``); ``classifier``: a
    ``ClassifierRuntime`` (a session for every stream)."""

    def __init__(self, streams: Sequence[StreamInput], *, tracker=None, classifier=None,
                 sinks: Sequence[Sink] = (), max_frames: int | None = None, queue_size: int = 4,
                 live_queue_size: int = 2, max_batch: int = 8, concurrent_models: bool = True,
                 pipelined_models: bool = True, lanes: int | None = None) -> None:
        if not streams:
            raise ValueError("no sources")
        self.streams = list(streams)
        for i, s in enumerate(self.streams):
            s.name = s.name or s.source.name or f"stream{i}"
        self.sinks = list(sinks)
        self.max_frames, self.max_batch = max_frames, max(1, int(max_batch))
        self.stats = [StreamStats(s.name, s.source.live) for s in self.streams]
        # per stream, per model: its session (None where that model does not run on the stream)
        self.runtimes = [rt for rt in (tracker, classifier) if rt is not None]
        # the models of one batch are independent: with several, each extra one steps in its own worker
        # thread while the inference thread steps the first (the engines release the GIL)
        self.concurrent_models = bool(concurrent_models) and len(self.runtimes) > 1
        # pipelined: the second model of batch k still steps while batch k + 1's first model does (results
        # leave one batch later); without it every batch waits for its slowest model before the next starts
        self.pipelined_models = bool(pipelined_models)
        self._pending: tuple | None = None
        self._live = any(s.source.live for s in self.streams)
        self._model_workers: list[_ModelWorker] = []
        self._lane_workers: list[_ModelWorker] = []
        self.sessions: list[list] = []
        for s in self.streams:
            row = []
            if tracker is not None:
                row.append(tracker.session(s.init_box) if s.init_box is not None else None)
            if classifier is not None:
                row.append(classifier.session())
            self.sessions.append(row)
        self.lanes = self._lanes(lanes)
        # live streams: a short drop-oldest queue keeps latency low; files: a longer blocking one
        self.q_cap = [DropOldestQueue(live_queue_size) if s.source.live else queue.Queue(queue_size)
                      for s in self.streams]
        # slots per stream after prepare: inference batches one frame of every stream that has one
        self.q_inf = StreamInbox(len(self.streams), self.max_batch)
        self.q_out: queue.Queue = queue.Queue(max(2, queue_size))
        self._stop = threading.Event()
        self._abort = threading.Event()
        self.error: BaseException | None = None
        self.started: float | None = None
        self.batches: deque = deque(maxlen=20000)      # inference batch sizes
        self._threads: list[threading.Thread] = []
        self._sinks_closed = False
        self._ended: set[int] = set()           # streams whose End was queued (once, by capture or by wait)
        self._end_lock = threading.Lock()
        self._stop_at: float | None = None

    def _lanes(self, lanes: int | None) -> int:
        """Threads stepping the first model's sessions of one batch (its streams are independent): ``lanes``,
        or by default what its runtime allows (``runtime.max_lanes``: 1 where it does not say), at most one per
        stream."""
        if not self.runtimes:
            return 1
        n = sum(row[0] is not None for row in self.sessions)
        if lanes is None:
            lanes = int(getattr(self.runtimes[0], "max_lanes", 1))
        if not isinstance(lanes, int) or lanes < 1:
            raise UserError(f"lanes must be an integer >= 1, got {lanes!r}")
        return max(1, min(lanes, n))

    # -- control ---------------------------------------------------------------------------------------
    # a capture blocked in a read (a camera that stalls without closing: FFmpeg waits up to 30 s) is left
    # behind this long after a stop request: its stream ends there, so a stop never waits on a dead camera
    CAPTURE_STOP_S = 3.0

    @property
    def pipelined(self) -> bool:
        """Models pipelined across batches: needs them concurrent (``concurrent_models`` may be turned off
        after construction, as ``bench/profile_run.py`` does)."""
        return self.concurrent_models and self.pipelined_models

    def stop(self) -> None:
        """Ask for a clean stop: capture ends, queued frames finish, sinks close."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self.started = time.perf_counter()
        n = len(self.streams)
        self._threads = [threading.Thread(target=self._guard, args=(self._capture, i), name=f"capture{i}",
                                          daemon=True) for i in range(n)]
        self._threads += [threading.Thread(target=self._guard, args=(self._prep, i), name=f"prep{i}",
                                           daemon=True) for i in range(n)]
        self._threads += [threading.Thread(target=self._guard, args=(self._infer,), name="infer", daemon=True),
                          threading.Thread(target=self._guard, args=(self._sink,), name="sink", daemon=True)]
        for t in self._threads:
            t.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Join the stage threads (in short slices so signal handlers run); True when all ended. After a stop
        request, a capture thread still blocked in its source's read after ``CAPTURE_STOP_S`` is left behind
        (a daemon thread): its stream is ended for it."""
        end = None if timeout is None else time.monotonic() + timeout
        n = len(self.streams)
        for k, t in enumerate(self._threads):
            while t.is_alive():
                t.join(0.1)
                if k < n and self._stop.is_set():
                    self._stop_at = self._stop_at or time.monotonic()
                    if time.monotonic() - self._stop_at > self.CAPTURE_STOP_S:
                        log.warning("%s: the source did not return a frame within %g s of the stop; "
                                    "ending the stream without it", self.streams[k].name, self.CAPTURE_STOP_S)
                        self._queue_end(k)
                        break
                if end is not None and time.monotonic() > end:
                    return False
        return True

    def _queue_end(self, i: int) -> None:
        """Queue stream ``i``'s End once (from its capture thread, or from ``wait`` for a stuck one)."""
        with self._end_lock:
            if i in self._ended:
                return
            self._ended.add(i)
        self._put(self.q_cap[i], End(i))

    def summaries(self) -> list[StreamSummary]:
        return [s.summary() for s in self.stats]

    def run(self) -> list[StreamSummary]:
        """Start, wait for the end, re-raise a stage's error; returns per-stream summaries. numpy's BLAS runs
        on one thread meanwhile (``edge.runtime.blas``: its spinning pool only took cores from the engines)."""
        with one_blas_thread():
            self.start()
            self.wait()
        if self.error is not None:
            raise self.error
        return self.summaries()

    def abort(self) -> None:
        """Stop now: frames in flight are dropped, the sinks still close (the video is finalised)."""
        self._stop.set()
        self._abort.set()

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as e:       # one stage failing stops all of them
            if self.error is None:
                self.error = e
            if not isinstance(e, UserError):     # a user's error is reported once, by the caller
                log.error("stage %s failed: %s: %s", threading.current_thread().name, type(e).__name__, e)
            self.abort()

    def _put(self, q, item) -> bool:
        """Blocking put that gives up on abort."""
        while not self._abort.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q):
        while not self._abort.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def _sync_drops(self, i: int) -> None:
        if self.streams[i].source.live:
            self.stats[i].drops = self.q_cap[i].drops

    # -- stages ----------------------------------------------------------------------------------------
    def _capture(self, i: int) -> None:
        src, st, q = self.streams[i].source, self.stats[i], self.q_cap[i]
        reconnects = src.stats.reconnects
        it = src.frames(self._stop)
        try:
            while not self._stop.is_set():
                if self.max_frames is not None and st.captured >= self.max_frames:
                    break
                t0 = time.perf_counter()
                try:
                    img, ts, index = next(it)
                except StopIteration:
                    break
                if i in self._ended:            # left behind by wait() while this read blocked
                    break
                now = time.perf_counter()
                rec = src.stats.reconnects != reconnects
                reconnects = src.stats.reconnects
                frame = Frame(i, index, ts, img, now, reconnected=rec)
                st.captured += 1
                st.last_index = index
                st.times["capture"].append(now - t0)
                if not self._put(q, frame):
                    return
                self._sync_drops(i)
        finally:
            st.corrupt, st.reconnects = src.stats.corrupt, src.stats.reconnects
            src.close()
            self._queue_end(i)

    def _prep(self, i: int) -> None:
        q, sessions, inbox = self.q_cap[i], self.sessions[i], self.q_inf.inlet(i)
        while True:
            item = self._get(q)
            if item is None:
                return
            if isinstance(item, End):
                self._sync_drops(i)
                self._put(inbox, item)
                return
            t0 = time.perf_counter()
            prepared = [s.prepare(item) if s is not None else None for s in sessions]
            if not self._put(inbox, Work(item, prepared, time.perf_counter() - t0)):
                return

    def _infer(self) -> None:
        try:
            open_streams = len(self.streams)
            while open_streams:
                if self._pending is not None and self._live and self.q_inf.empty():
                    # a live camera between frames: nothing to overlap with, emit now (never a frame late);
                    # files keep the overlap (their latency is queueing anyway)
                    pending, self._pending = self._pending, None
                    if not self._emit(*pending):
                        return
                batch = self._get(self.q_inf)
                if batch is None:
                    return
                open_streams -= self._infer_batch(batch)
            if self._pending is not None and not self._emit(*self._pending):
                return
        finally:
            self._pending = None
            self._close_model_workers()
        self._put(self.q_out, End(-1))

    def _infer_batch(self, batch: list) -> int:
        """Step every model on one batch; returns how many streams the batch ended. Pipelined, the models
        after the first step in their workers while the next batch is gathered and its first model steps,
        and a batch is emitted once its slowest model is done (one batch later)."""
        t0 = time.perf_counter()
        works = [w for w in batch if isinstance(w, Work)]
        self.batches.append(len(works))
        results = {}
        for w in works:
            f = w.frame
            src = self.streams[f.stream].source
            r = FrameResult(stream=f.stream, name=self.streams[f.stream].name, index=f.index, timestamp=f.timestamp,
                            image=f.image, captured=f.captured, timings={"prep": w.t_prep},
                            source_fps=getattr(src, "fps", None))
            if f.reconnected:
                r.events.append(SourceReconnect(f.index, src.stats.reconnects))
            results[id(w)] = r
        jobs = []
        for m, rt in enumerate(self.runtimes):        # each model: one batched step over its sessions
            mine = [w for w in works if self.sessions[w.frame.stream][m] is not None]
            items = [(self.sessions[w.frame.stream][m], w.prepared[m], w.frame) for w in mine]
            if items:
                jobs.append((m, mine, rt, items))
        ended = sum(isinstance(w, End) for w in batch)
        later = []
        if self.concurrent_models:                    # model m > 0 always steps in worker m - 1: its order is kept
            while len(self._model_workers) < len(self.runtimes) - 1:
                self._model_workers.append(_ModelWorker(f"infer-model{len(self._model_workers) + 1}"))
            for m, mine, rt, items in jobs:
                if m > 0:
                    self._model_workers[m - 1].submit(rt.step, items)
                    later.append((m, mine))
        for m, mine, rt, items in jobs:
            if m == 0:
                self._apply(results, mine, self._step_lanes(rt, items))
            elif not self.concurrent_models:
                self._apply(results, mine, rt.step(items))
        entry = (batch, results, later, t0, time.perf_counter())
        if not self.pipelined:
            self._emit(*entry)
            return ended
        previous, self._pending = self._pending, entry
        if previous is not None:
            self._emit(*previous)
        return ended

    def _step_lanes(self, rt, items: list) -> list:
        """The first model's step over ``items`` (one per stream: ``StreamInbox``) split in order across
        ``lanes`` threads, this one stepping the first share; one update per item, in order."""
        n = min(self.lanes, len(items))
        if n < 2:
            return rt.step(items)
        while len(self._lane_workers) < n - 1:
            self._lane_workers.append(_ModelWorker(f"infer-lane{len(self._lane_workers) + 1}"))
        cuts = [round(k * len(items) / n) for k in range(n + 1)]
        for k in range(1, n):
            self._lane_workers[k - 1].submit(rt.step, items[cuts[k]:cuts[k + 1]])
        updates = list(rt.step(items[:cuts[1]]))
        for k in range(1, n):
            updates += self._lane_workers[k - 1].result()
        return updates

    @staticmethod
    def _apply(results: dict, mine: list, updates: list) -> None:
        for w, update in zip(mine, updates):
            results[id(w)].apply(update)

    def _emit(self, batch: list, results: dict, later: list, t0: float, t1: float) -> bool:
        """Collect the worker models' updates of ``batch`` (in model order), then hand it to the sinks. Its
        ``infer`` time: from its start to its last model's end (``t1``: the inference thread's own models)."""
        for m, mine in later:
            worker = self._model_workers[m - 1]
            self._apply(results, mine, worker.result())
            t1 = max(t1, worker.finished)
        works = [w for w in batch if isinstance(w, Work)]
        dt = (t1 - t0) / max(len(works), 1)
        for w in batch:
            if isinstance(w, End):
                item = w
            else:
                item = results[id(w)]
                item.timings["infer"] = dt
            if not self._put(self.q_out, item):
                return False
        return True

    def _close_model_workers(self) -> None:
        for worker in [*self._model_workers, *self._lane_workers]:
            worker.close()
        self._model_workers.clear()
        self._lane_workers.clear()

    def _sink(self) -> None:
        try:
            self._sink_loop()
        except BaseException as e:
            if self.error is None:       # the first error is the one reported, not a later close's
                self.error = e
            raise
        finally:
            self._close_sinks()

    def _sink_loop(self) -> None:
        while True:
            r = self._get(self.q_out)
            if r is None:
                return
            if isinstance(r, End):
                if r.stream == -1:
                    break
                self._end_stream(r.stream)
                continue
            st = self.stats[r.stream]
            t0 = time.perf_counter()
            r.fps, r.drops = st.fps(), st.drops
            for sink in self.sinks:
                sink.write(r)
            now = time.perf_counter()
            st.processed += 1
            st.first = now if st.first is None else st.first
            st.last = now
            st.events.update(k for e in r.events for k in kinds(e))
            r.timings["sink"] = now - t0
            r.timings["latency"] = now - r.captured
            for k, v in r.timings.items():
                st.times[k].append(v)
            self._sync_drops(r.stream)

    def _end_stream(self, i: int) -> None:
        """Close the stream's sessions (open actions end) and tell the sinks."""
        last = self.stats[i].last_index
        events = [e for s in self.sessions[i] if s is not None for e in s.close(last)] + [StreamEnd(last)]
        self.stats[i].events.update(k for e in events for k in kinds(e))
        for sink in self.sinks:
            sink.end(i, self.streams[i].name, events)

    def _close_sinks(self) -> None:
        if self._sinks_closed:
            return
        self._sinks_closed = True
        for i in range(len(self.streams)):
            self._sync_drops(i)
        summaries = self.summaries()
        for sink in self.sinks:          # every sink closes, even after another failed
            try:
                sink.close(summaries)
            except Exception as e:
                if self.error is None:
                    self.error = e
                elif not isinstance(e, UserError):
                    log.error("closing %s failed: %s", type(sink).__name__, e)
