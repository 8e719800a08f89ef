"""One ``edge run``: validate everything, open sources and sinks, load engines, run the pipeline, stop on
signals, summarise (torch-free). ``edge.api.run`` and the ``edge run`` command are thin callers."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from edge.errors import UserError
from edge.events import Event, RunSummary
from edge.runtime.fingerprint import engine_threads  # noqa: F401 (the run rule; re-exported)
from edge.stream.pipeline import FrameResult, Pipeline, Sink, StreamInput


@dataclass
class RunPlan:
    """Everything a run needs, as given by the user (validated by ``execute`` before anything starts)."""
    sources: Sequence[str]
    tracker: str | None = None
    init_boxes: Sequence = ()
    classifier: str | None = None
    out_video: str | None = None
    events: str | None = None
    max_frames: int | None = None
    heatmap: bool = False
    window: int | None = None
    stride: int | None = None
    classifier_fps: float | None = None  # the classifier's clock (None: the manifest's sample_fps; 0: every frame)
    tracker_params: dict = field(default_factory=dict)
    queue_size: int = 4
    live_queue_size: int = 2
    batch: int = 8
    max_reconnects: int | None = None
    open_timeout: float | None = None
    status_interval: float = 0.0
    display: bool = False
    remote: str | None = None           # grpc://HOST:PORT of an `edge serve`: the networks run there
    remote_shm: bool = False            # large inputs through system shared memory (server on this machine)
    alarms: str | None = None           # a rules file (edge/data/alarms.json form) instead of the manifest's
    threads: int | None = None          # onnxruntime intra-op threads per engine (None: see engine_threads)
    rotate: int = 0                     # degrees clockwise every source's frames are turned first (0/90/180/270)


class CallbackSink(Sink):
    """Calls ``on_event(stream, event)`` for every event, from the sink thread."""

    def __init__(self, on_event: Callable[[int, Event], None]) -> None:
        self.on_event = on_event

    def write(self, r: FrameResult) -> None:
        for ev in r.events:
            self.on_event(r.stream, ev)

    def end(self, stream, name, events) -> None:
        for ev in events:
            self.on_event(stream, ev)


def _check(plan: RunPlan) -> None:
    if not plan.sources or any(not str(s).strip() for s in plan.sources):
        raise UserError("--source needs a video file, image folder, camera index, URL or GStreamer pipeline")
    from edge.stream.sources import ROTATIONS
    if plan.rotate != 0 and plan.rotate not in ROTATIONS:
        raise UserError(f"--rotate must be 0, 90, 180 or 270 (degrees clockwise), got {plan.rotate!r}")
    for what, v, low in (("--max-frames", plan.max_frames, 1), ("--window", plan.window, 1),
                         ("--stride", plan.stride, 1), ("--batch", plan.batch, 1),
                         ("--queue-size", plan.queue_size, 1), ("--live-queue-size", plan.live_queue_size, 1),
                         ("--max-reconnects", plan.max_reconnects, 0)):
        if v is not None and (not isinstance(v, int) or v < low):
            raise UserError(f"{what} must be an integer >= {low}, got {v!r}")
    if plan.classifier_fps is not None and not (isinstance(plan.classifier_fps, (int, float))
                                                and 0 <= plan.classifier_fps <= 1000):
        raise UserError(f"--classifier-fps must be a number of frames per second in [0, 1000] (0: every frame), "
                        f"got {plan.classifier_fps!r}")
    if plan.threads is not None and (not isinstance(plan.threads, int) or plan.threads < 1):
        raise UserError(f"--threads must be an integer >= 1, got {plan.threads!r}")
    if plan.open_timeout is not None and not plan.open_timeout > 0:
        raise UserError(f"--open-timeout must be > 0 seconds, got {plan.open_timeout}")
    if plan.tracker and not plan.init_boxes:
        raise UserError("--tracker needs --init-box x,y,w,h")
    if plan.init_boxes and not plan.tracker:
        raise UserError("--init-box needs --tracker ENGINE_DIR")
    if plan.init_boxes and len(plan.init_boxes) not in (1, len(plan.sources)):
        raise UserError(f"give one --init-box for all sources or one per source ({len(plan.sources)}), "
                        f"got {len(plan.init_boxes)}")


def check_outputs(plan: RunPlan) -> None:
    """Every output writable, none an input, none another output (before any source or engine opens)."""
    from edge.fileio import check_output, same_file
    from edge.stream.sinks import check_video_path, partial_path, stream_path
    outs: list[tuple[str, Path]] = []
    if plan.out_video:
        base = check_video_path(plan.out_video)
        for i in range(len(plan.sources)):
            final = stream_path(base, i)
            outs += [(f"--out-video {final}", final), (f"--out-video {final}", partial_path(final))]
    if plan.events:
        outs.append((f"--events {plan.events}", check_output(plan.events, "--events")))
    for what, path in outs:
        check_output(path, what.split()[0])
        for src in plan.sources:
            if Path(src).is_file() and same_file(path, src):
                raise UserError(f"{what} is the input --source {src}: writing it would destroy the input")
    for i, (what, a) in enumerate(outs):
        for other, b in outs[i + 1:]:
            if what != other and same_file(a, b):
                raise UserError(f"{what} and {other} name the same file: each output needs its own path")


def _engines(name: str, kind: str, remote: str | None, threads: int | None = None, models: int = 1,
             remote_shm: bool = False):
    """A model's engines: an engine folder here, or (``remote``) the networks an ``edge serve`` hosts, named
    by their served model name or by a local engine folder whose manifest names them."""
    if remote is None:
        from edge.runtime import load_engines
        return load_engines(name, kind=kind, threads=threads or engine_threads(name, models))
    from edge.runtime.triton_backend import load_remote_engines
    engines = load_remote_engines(remote, name, shared_memory=remote_shm)
    if engines.kind != kind:
        raise UserError(f"{remote} serves {name!r} as {engines.kind} engines, not {kind} engines")
    return engines


def prepare(plan: RunPlan, on_event: Callable[[int, Event], None] | None = None) -> Pipeline:
    """The pipeline of ``plan``: arguments, outputs, then sources, then engines (errors -> UserError)."""
    from edge.stream.sinks import DisplaySink, EventsSink, StatusSink, VideoSink
    from edge.stream.sources import RotatedSource, decode_threads, open_source
    from edge.tracking.session import clip_box, parse_box

    _check(plan)
    boxes = [parse_box(b) for b in plan.init_boxes]
    check_outputs(plan)                         # outputs first: bad paths fail before opening sources
    sinks: list[Sink] = []
    if plan.out_video:
        sinks.append(VideoSink(plan.out_video, heatmap=plan.heatmap))
    if plan.events:
        sinks.append(EventsSink(plan.events))
    if plan.status_interval and plan.status_interval > 0:
        sinks.append(StatusSink(plan.status_interval))
    if on_event is not None:
        sinks.append(CallbackSink(on_event))
    streams = []
    for i, spec in enumerate(plan.sources):
        src = open_source(spec, max_reconnects=plan.max_reconnects, decode_threads=decode_threads(len(plan.sources)),
                          **({"open_timeout": plan.open_timeout} if plan.open_timeout else {}))
        if plan.rotate:                     # upright first: boxes, video and events are in the turned frame
            src = RotatedSource(src, plan.rotate)
        box = (boxes[i] if len(boxes) > 1 else boxes[0]) if boxes else None
        size = src.frame_size()
        if box is not None and size is not None:
            clip_box(box, size)             # files: the same rule as live sources, before anything runs
        streams.append(StreamInput(src, box, spec))
    tracker = classifier = None
    models = int(bool(plan.tracker)) + int(bool(plan.classifier))      # they step concurrently
    if plan.tracker:
        from edge.tracking.session import TrackerRuntime
        tracker = TrackerRuntime(_engines(plan.tracker, "tracker", plan.remote, plan.threads, models, plan.remote_shm),
                                 plan.tracker_params or None)
    if plan.classifier:
        from edge.classify.runtime import ClassifierRuntime
        classifier = ClassifierRuntime(_engines(plan.classifier, "classifier", plan.remote, plan.threads, models,
                                                plan.remote_shm),
                                       window=plan.window, stride=plan.stride, alarms=plan.alarms,
                                       sample_fps=plan.classifier_fps)
    pipe = Pipeline(streams, tracker=tracker, classifier=classifier, sinks=sinks, max_frames=plan.max_frames,
                    queue_size=plan.queue_size, live_queue_size=plan.live_queue_size, max_batch=plan.batch)
    if plan.display:
        pipe.sinks.append(DisplaySink(heatmap=plan.heatmap, on_quit=pipe.stop))
    return pipe


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
GRACE_S = 3.0     # a repeated signal within this long after the first one is the same request


def _run_with_signals(pipe: Pipeline, grace_s: float = GRACE_S) -> tuple[list, str | None, bool]:
    """Run the pipeline; the first SIGINT/SIGTERM/SIGHUP asks for a clean stop (video finalised, events
    flushed, summary written). Repeats within ``grace_s`` are the same request (``timeout`` signals the process
    and its group; a terminal sends to the whole foreground group). A signal after the grace period, or
    SIGQUIT, aborts: frames in flight are dropped, the video is still finalised; one more leaves at once.
    A signal the process inherited as ignored (``nohup``, ``&``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return pipe.run(), None, False
    got: list[tuple[int, float]] = []

    def on_signal(signum, _frame):
        now = time.monotonic()
        if signum == signal.SIGQUIT or (got and now - got[0][1] > grace_s):
            if any(s == -1 for s, _ in got):      # already aborting and still here: leave now
                os._exit(130)
            got.append((-1, now))
            pipe.abort()
        elif not got:
            got.append((signum, now))
            pipe.stop()

    wanted = [getattr(signal, n) for n in STOP_SIGNALS] + [signal.SIGQUIT]
    old = {}
    for s in wanted:
        if signal.getsignal(s) is not signal.SIG_IGN:
            old[s] = signal.signal(s, on_signal)
    try:
        summaries = pipe.run()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    first = next((s for s, _ in got if s != -1), signal.SIGQUIT if got else None)
    return summaries, (signal.Signals(first).name if first is not None else None), any(s == -1 for s, _ in got)


def execute(plan: RunPlan, on_event: Callable[[int, Event], None] | None = None,
            handle_signals: bool = False) -> RunSummary:
    """Run ``plan`` to the end (or a clean stop) and summarise it."""
    from edge.stream.sinks import EventsSink, VideoSink
    pipe = prepare(plan, on_event)
    try:
        if handle_signals:
            summaries, stopped, aborted = _run_with_signals(pipe)
        else:
            summaries, stopped, aborted = pipe.run(), None, False
    finally:
        for rt in pipe.runtimes:         # remote engines free their shared memory on the server
            rt.engines.close()
    videos = tuple(str(p) for s in pipe.sinks if isinstance(s, VideoSink) for p in s.paths())
    ev = next((s for s in pipe.sinks if isinstance(s, EventsSink)), None)
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    conns = {id(c): c for rt in pipe.runtimes if (c := getattr(rt.engines, "connection", None)) is not None}
    remote = tuple({"url": c.url, **c.stats.summary()} for c in conns.values())
    return RunSummary(tuple(summaries), videos, str(ev.path) if ev else None, ev.lines if ev else 0, stopped,
                      aborted, round(rss, 1), "torch" in sys.modules, remote)

