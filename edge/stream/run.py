"""One ``edge run``: validate everything, open sources and sinks, load engines, run the pipeline, stop on
signals, summarise (torch-free). ``edge.api.run`` and the ``edge run`` command are thin callers."""
from __future__ import annotations

import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

from edge.errors import UserError
from edge.events import Event, RunSummary
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
    tracker_params: dict = field(default_factory=dict)
    queue_size: int = 4
    live_queue_size: int = 2
    batch: int = 8
    max_reconnects: int | None = None
    status_interval: float = 0.0
    display: bool = False


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
    if not plan.sources:
        raise UserError("no --source given")
    if plan.max_frames is not None and plan.max_frames < 1:
        raise UserError(f"--max-frames must be >= 1, got {plan.max_frames}")
    if plan.tracker and not plan.init_boxes:
        raise UserError("--tracker needs --init-box x,y,w,h")
    if plan.init_boxes and not plan.tracker:
        raise UserError("--init-box needs --tracker ENGINE_DIR")
    if plan.init_boxes and len(plan.init_boxes) not in (1, len(plan.sources)):
        raise UserError(f"give one --init-box for all sources or one per source ({len(plan.sources)}), "
                        f"got {len(plan.init_boxes)}")


def prepare(plan: RunPlan, on_event: Callable[[int, Event], None] | None = None) -> Pipeline:
    """The pipeline of ``plan``: arguments, outputs, then sources, then engines (errors -> UserError)."""
    from edge.stream.sinks import DisplaySink, EventsSink, StatusSink, VideoSink
    from edge.stream.sources import open_source
    from edge.tracking.session import check_box_in_frame, parse_box

    _check(plan)
    boxes = [parse_box(b) for b in plan.init_boxes]
    sinks: list[Sink] = []                      # sinks first: bad output paths fail before opening sources
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
        src = open_source(spec, max_reconnects=plan.max_reconnects)
        box = (boxes[i] if len(boxes) > 1 else boxes[0]) if boxes else None
        size = src.frame_size()
        if box is not None and size is not None:
            check_box_in_frame(box, size)
        streams.append(StreamInput(src, box, spec))
    tracker = classifier = None
    from edge.runtime import load_engines
    if plan.tracker:
        from edge.tracking.session import TrackerRuntime
        tracker = TrackerRuntime(load_engines(plan.tracker, kind="tracker"), plan.tracker_params or None)
    if plan.classifier:
        from edge.classify.runtime import ClassifierRuntime
        classifier = ClassifierRuntime(load_engines(plan.classifier, kind="classifier"), window=plan.window,
                                       stride=plan.stride)
    pipe = Pipeline(streams, tracker=tracker, classifier=classifier, sinks=sinks, max_frames=plan.max_frames,
                    queue_size=plan.queue_size, live_queue_size=plan.live_queue_size, max_batch=plan.batch)
    if plan.display:
        pipe.sinks.append(DisplaySink(heatmap=plan.heatmap, on_quit=pipe.stop))
    return pipe


def _run_with_signals(pipe: Pipeline) -> tuple[list, str | None]:
    """Run; the first SIGINT/SIGTERM asks for a clean stop, a second one leaves at once (exit 130)."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        return pipe.run(), None

    def on_signal(signum, _frame):
        if got:
            import os
            os._exit(130)
        got.append(signum)
        pipe.stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        summaries = pipe.run()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return summaries, (signal.Signals(got[0]).name if got else None)


def execute(plan: RunPlan, on_event: Callable[[int, Event], None] | None = None,
            handle_signals: bool = False) -> RunSummary:
    """Run ``plan`` to the end (or a clean stop) and summarise it."""
    from edge.stream.sinks import EventsSink, VideoSink
    pipe = prepare(plan, on_event)
    if handle_signals:
        summaries, stopped = _run_with_signals(pipe)
    else:
        summaries, stopped = pipe.run(), None
    videos = tuple(str(p) for s in pipe.sinks if isinstance(s, VideoSink) for p in s.paths())
    ev = next((s for s in pipe.sinks if isinstance(s, EventsSink)), None)
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return RunSummary(tuple(summaries), videos, str(ev.path) if ev else None, ev.lines if ev else 0, stopped,
                      round(rss, 1), "torch" in sys.modules)

