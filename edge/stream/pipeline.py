"""The run loop: threads joined by bounded queues (torch-free).

    capture (one thread per stream) -> preprocess + DIS flow (one per stream) -> inference (one, all
    streams, batched) -> sinks (one)

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
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from edge.classify.runtime import ClassifierRuntime, ClassifierStream, attention_map
from edge.stream.sources import Frame, Source
from edge.stream.tracking import TrackerStream

log = logging.getLogger("edge.stream")

STAGES = ("capture", "prep", "infer", "sink", "latency")


@dataclass
class End:
    """End-of-stream marker for one stream."""
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

    def qsize(self) -> int:
        return len(self._items)


@dataclass
class StreamInput:
    """What the pipeline needs to know about one stream."""
    source: Source
    init_box: tuple | None = None
    name: str = ""


@dataclass
class Work:
    """A frame travelling from preprocessing to inference."""
    frame: Frame
    feeds: dict | None
    t_prep: float


@dataclass
class Result:
    """One processed frame, handed to the sinks."""
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
    attention: np.ndarray | None = None
    events: list = field(default_factory=list)
    captured: float = 0.0
    timings: dict = field(default_factory=dict)


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
    times: dict = field(default_factory=lambda: {k: deque(maxlen=20000) for k in STAGES})

    def fps(self) -> float:
        if self.first is None or self.last is None or self.processed < 2 or self.last <= self.first:
            return 0.0
        return (self.processed - 1) / (self.last - self.first)

    def summary(self) -> dict:
        lat = np.asarray(self.times["latency"], np.float64) * 1000
        return {"name": self.name, "live": self.live, "captured": self.captured, "processed": self.processed,
                "drops": self.drops, "corrupt": self.corrupt, "reconnects": self.reconnects,
                "fps": round(self.fps(), 2),
                "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat.size else None}


class Sink:
    """A consumer of results; all sinks run in the sink thread."""

    def open(self, pipeline: "Pipeline") -> None:
        pass

    def write(self, result: Result) -> None:
        pass

    def close(self, pipeline: "Pipeline") -> None:
        pass


class Pipeline:
    """Capture -> preprocess -> inference -> sinks for one or more streams.

    ``tracker``: a factory ``() -> SiameseTracker`` (one tracker per stream with an ``init_box``).
    ``classifier``: a ``ClassifierRuntime`` (one ``ClassifierStream`` state per stream).
    """

    def __init__(self, streams: Sequence[StreamInput], *, tracker: Callable[[], object] | None = None,
                 classifier: ClassifierRuntime | None = None, sinks: Sequence[Sink] = (),
                 max_frames: int | None = None, queue_size: int = 4, live_queue_size: int = 2,
                 max_batch: int = 8, lost_threshold: float | None = None) -> None:
        if not streams:
            raise ValueError("no sources")
        self.streams = list(streams)
        for i, s in enumerate(self.streams):
            s.name = s.name or s.source.name or f"stream{i}"
        self.classifier, self.sinks = classifier, list(sinks)
        self.max_frames, self.max_batch = max_frames, max(1, int(max_batch))
        self.stats = [StreamStats(s.name, s.source.live) for s in self.streams]
        self.trackers: list[TrackerStream | None] = [
            TrackerStream(tracker, s.init_box, lost_threshold) if tracker is not None and s.init_box else None
            for s in self.streams]
        self.cls_state: list[ClassifierStream | None] = [
            classifier.new_stream() if classifier is not None else None for _ in self.streams]
        # live streams: a short drop-oldest queue keeps latency low; files: a longer blocking one
        self.q_cap = [DropOldestQueue(live_queue_size) if s.source.live else queue.Queue(queue_size)
                      for s in self.streams]
        # small queues after capture bound the latency of live streams (capture is the drop point); one
        # slot per stream lets inference batch one frame of every stream
        self.q_inf: queue.Queue = queue.Queue(len(self.streams))
        self.q_out: queue.Queue = queue.Queue(max(2, queue_size))
        self._stop = threading.Event()
        self._abort = threading.Event()
        self.error: BaseException | None = None
        self.started: float | None = None
        self.batches: deque = deque(maxlen=20000)      # inference batch sizes
        self._threads: list[threading.Thread] = []
        self._sinks_closed = False
        self._last_window: list = [None] * len(self.streams)

    # -- control ---------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask for a clean stop: capture ends, queued frames finish, sinks close."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self.started = time.perf_counter()
        for sink in self.sinks:
            sink.open(self)
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
        """Join the stage threads (in short slices so signal handlers run); True when all ended."""
        end = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            while t.is_alive():
                t.join(0.1)
                if end is not None and time.monotonic() > end:
                    return False
        return True

    def run(self) -> list[dict]:
        """Start, wait for the end, re-raise a stage's error; returns per-stream summaries."""
        self.start()
        self.wait()
        if self.error is not None:
            raise self.error
        return [s.summary() for s in self.stats]

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as e:       # one stage failing stops all of them
            if self.error is None:
                self.error = e
            log.error("stage %s failed: %s: %s", threading.current_thread().name, type(e).__name__, e)
            self._abort.set()
            self._stop.set()

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
                    img, ts = next(it)
                except StopIteration:
                    break
                now = time.perf_counter()
                rec = src.stats.reconnects != reconnects
                reconnects = src.stats.reconnects
                frame = Frame(i, st.captured, ts, img, now, reconnected=rec)
                st.captured += 1
                st.times["capture"].append(now - t0)
                if not self._put(q, frame):
                    return
                if src.live:
                    st.drops = q.drops
        finally:
            st.corrupt, st.reconnects = src.stats.corrupt, src.stats.reconnects
            src.close()
            self._put(q, End(i))

    def _prep(self, i: int) -> None:
        q, cls = self.q_cap[i], self.cls_state[i]
        while True:
            item = self._get(q)
            if item is None:
                return
            if isinstance(item, End):
                if self.streams[i].source.live:
                    self.stats[i].drops = q.drops
                self._put(self.q_inf, item)
                return
            t0 = time.perf_counter()
            feeds = None
            if cls is not None:
                if item.reconnected:
                    cls.prep.reset()      # flow restarts from zero after a gap (this thread owns prep)
                feeds = self.classifier.prepare(cls, item.image)
            if not self._put(self.q_inf, Work(item, feeds, time.perf_counter() - t0)):
                return

    def _infer(self) -> None:
        open_streams = len(self.streams)
        while open_streams:
            first = self._get(self.q_inf)
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.q_inf.get_nowait())
                except queue.Empty:
                    break
            open_streams -= self._infer_batch(batch)
        self._put(self.q_out, End(-1))

    def _infer_batch(self, batch: list) -> int:
        t0 = time.perf_counter()
        works = [w for w in batch if isinstance(w, Work)]
        self.batches.append(len(works))
        enc = {}
        if self.classifier is not None and works:
            outs = self.classifier.encode([w.feeds for w in works])
            enc = {id(w): o for w, o in zip(works, outs)}
        results: list[Result | End] = []
        due: list[tuple[Result, ClassifierStream, list]] = []
        labelled: dict[int, object] = {}
        ended = 0
        for w in batch:
            if isinstance(w, End):
                results.append(w)
                ended += 1
                continue
            f = w.frame
            s = f.stream
            r = Result(stream=s, name=self.streams[s].name, index=f.index, timestamp=f.timestamp,
                       image=f.image, captured=f.captured, timings={"prep": w.t_prep})
            if f.reconnected:
                r.events.append({"type": "source_reconnect", "reconnects": self.streams[s].source.stats.reconnects})
            trk = self.trackers[s]
            if trk is not None:
                if f.reconnected and trk.tracker is not None:
                    r.events.append(trk.reinit(f.image))
                else:
                    r.events.extend(trk.update(f.image))
                r.box, r.score, r.lost = trk.box, trk.score, trk.lost
            cls = self.cls_state[s]
            if cls is not None:
                if f.reconnected:
                    cls.reset_window()    # the inference thread owns the ring buffer
                feats, att = enc[id(w)]
                win = self.classifier.push(cls, feats, att)
                if win is not None:
                    due.append((r, cls, win))
                r.attention = attention_map(cls.attention)
            results.append(r)
        if due:
            logits = self.classifier.classify([win for _, _, win in due])
            labelled = {}
            for (r, c, _), lg in zip(due, logits):
                res, events = self.classifier.result(c, lg, r.index)
                r.events.extend(events)
                labelled[id(r)] = res
        current: dict[int, object] = {}      # latest window per stream, in frame order within the batch
        for r in results:
            if isinstance(r, Result) and self.cls_state[r.stream] is not None:
                if id(r) in labelled:
                    current[r.stream] = labelled[id(r)]
                last = current.get(r.stream, self._last_window[r.stream])
                if last is not None:
                    r.label, r.label_score = last.label, last.score
                self._last_window[r.stream] = last
        for r in results:            # ended streams: close open actions, mark the end
            if isinstance(r, End):
                last = max(self.stats[r.stream].captured - 1, 0)
                cls = self.cls_state[r.stream]
                r.events = cls.hysteresis.close(last) if cls is not None else []
                r.events.append({"type": "stream_end", "frame": last})
        dt = (time.perf_counter() - t0) / max(len(works), 1)
        for r in results:
            if isinstance(r, Result):
                r.timings["infer"] = dt
            if not self._put(self.q_out, r):
                break
        return ended

    def _sink(self) -> None:
        try:
            self._sink_loop()
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
                for ev in getattr(r, "events", []) or []:
                    self._emit_end_event(r.stream, ev)
                continue
            t0 = time.perf_counter()
            for sink in self.sinks:
                sink.write(r)
            now = time.perf_counter()
            st = self.stats[r.stream]
            st.processed += 1
            st.first = now if st.first is None else st.first
            st.last = now
            r.timings["sink"] = now - t0
            r.timings["latency"] = now - r.captured
            for k, v in r.timings.items():
                st.times[k].append(v)
            if self.streams[r.stream].source.live:
                st.drops = self.q_cap[r.stream].drops

    def _emit_end_event(self, stream: int, ev: dict) -> None:
        r = Result(stream=stream, name=self.streams[stream].name, index=ev.get("frame", -1), timestamp=float("nan"),
                   image=None, events=[ev])
        for sink in self.sinks:
            if getattr(sink, "wants_events_only", False):
                sink.write(r)

    def _close_sinks(self) -> None:
        if self._sinks_closed:
            return
        self._sinks_closed = True
        for i, s in enumerate(self.streams):
            if s.source.live:
                self.stats[i].drops = self.q_cap[i].drops
        for sink in self.sinks:
            try:
                sink.close(self)
            except Exception as e:
                log.error("closing %s failed: %s", type(sink).__name__, e)
