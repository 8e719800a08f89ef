"""The public Python API: the pipeline stages as functions (what each ``edge`` command calls) and the two
models as objects for your own loop. Importing ``edge`` imports neither torch nor onnxruntime; ``export``,
``calibrate`` and ``bench`` load the reference side (torch) when called, ``build`` / ``run`` / ``Tracker`` /
``Classifier`` never do.

    import edge
    exp = edge.export("tracker", "out/tracker")                       # PyTorch -> ONNX + model.json
    eng = edge.build(exp.path, target="cpu", out="engines/tracker")   # engines for this device
    summary = edge.run("clip.mp4", tracker=eng.path, init_box=(250, 90, 60, 110), events="events.jsonl")
    report = edge.bench([eng.path])                                    # vs PyTorch and plain onnxruntime

Every function raises ``edge.errors.UserError`` (one line, the CLI's exit code 2) for bad input.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edge.contract import Fingerprint, Manifest
from edge.errors import UserError
from edge.events import Event, RunSummary

Log = Callable[[str], None]
PathLike = str | os.PathLike


def _quiet(_msg: str) -> None:
    pass


# -- results --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Export:
    """An export folder: ``model.json`` + one ONNX file per network."""
    path: Path
    manifest: Manifest


@dataclass(frozen=True)
class Calibration:
    """``EXPORT_DIR/calibration``: Q/DQ and fp16 graphs, and ``report.json``."""
    path: Path
    report: Mapping[str, Any]

    @property
    def tolerance_missed(self) -> list[str]:
        """``network/flavour`` pairs whose int8 graph missed its accuracy tolerance."""
        return [f"{n}/{fl}" for n, e in self.report["networks"].items() for fl, q in e["int8"].items()
                if not q["tolerance_met"]]


@dataclass(frozen=True)
class EngineSet:
    """An engine folder from ``edge build``."""
    path: Path
    fingerprint: Fingerprint
    cache_hit: bool = False

    def load(self, threads: int | None = None):
        """The folder's networks as ``edge.runtime.Engines``."""
        from edge.runtime import load_engines
        return load_engines(self.path, threads=threads)


@dataclass(frozen=True)
class BenchReport:
    """``edge bench``'s report (the JSON document) and its overall verdict."""
    report: Mapping[str, Any]
    status: str                     # pass | fail

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def markdown(self) -> str:
        from edge.bench.report import markdown
        return markdown(self.report)


# -- pipeline stages ------------------------------------------------------------------------------------
def export(model: str, out_dir: PathLike, weights: PathLike | None = None, *, opset: int = 17,
           seed: int | None = None, log: Log = _quiet) -> Export:
    """Export every network of ``model`` (``tracker``, ``classifier`` or a model module path) to ONNX with
    our custom ops as function-backed nodes, validated against PyTorch; writes ``model.json`` last."""
    from edge.export.onnx_export import export_model
    d = export_model(model, out_dir, weights=None if weights is None else str(weights), opset=opset, seed=seed,
                     log=log)
    return Export(Path(out_dir), Manifest.from_dict(d, str(Path(out_dir) / "model.json")))


def calibrate(export_dir: PathLike, data: Sequence[PathLike] | None = None, *, frames: int = 96,
              method: str = "percentile", seed: int = 0, tolerance: Mapping[str, float] | float | None = None,
              flavours: Sequence[str] = ("ort", "trt"), fp16: bool = True, networks: Sequence[str] | None = None,
              keep_float: Sequence[str] = (), progress: bool = False, log: Log = _quiet) -> Calibration:
    """INT8 Q/DQ graphs (onnxruntime and TensorRT flavours) and fp16-typed graphs, calibrated on inputs drawn
    through the real runtime from ``data`` (videos or OTB/GOT-10k folders; default: the offline real clips).
    ``tolerance``: a correlation for every network, or ``{network: corr}`` (``"*"`` for the rest)."""
    from edge.calibration.fallback import Tolerance
    from edge.calibration.pipeline import calibrate as _calibrate
    if frames < 1:
        raise UserError(f"calibration frames must be >= 1 (got {frames})")
    tol = None
    if tolerance is not None:
        items = tolerance.items() if isinstance(tolerance, Mapping) else [("*", tolerance)]
        tol = {}
        for name, v in items:
            if not 0 < float(v) <= 1:
                raise UserError(f"tolerance must be in (0, 1], got {name}={v}")
            tol[name] = Tolerance(float(v))
    if not data:
        from edge.assets import video_clip
        data = [video_clip("bikes.mp4"), video_clip("carphone_pristine.mp4")]
    report = _calibrate(export_dir, [str(d) for d in data], frames=frames, method=method, seed=seed, tolerance=tol,
                        flavours=list(flavours), fp16=fp16, keep_float=keep_float, networks=networks,
                        progress=progress, say=log)
    return Calibration(Path(export_dir) / "calibration", report)


def build(export_dir: PathLike, target: str = "cpu", precision: str = "fp32", out: PathLike | None = None, *,
          threads: int | None = None, roi_kernel: str = "auto", plugins: PathLike | None = None,
          use_dla: bool = True, log: Log = _quiet) -> EngineSet:
    """Engines for ``target`` (``edge/targets/targets.json``: ``cpu`` = onnxruntime, Jetson/x86 GPUs =
    TensorRT) into ``out`` (default ``<export_dir>-<target>-<precision>``); torch-free."""
    from edge.runtime import fingerprint as fpr
    from edge.runtime.build import build as _build
    out = Path(out) if out is not None else Path(f"{Path(export_dir)}-{target}-{precision}")
    d = _build(export_dir, target, precision, out, threads=threads, roi_kernel=roi_kernel,
               plugins=None if plugins is None else str(plugins), use_dla=use_dla, log=log)
    return EngineSet(out, fpr.read(out), bool(d.get("cache_hit")))


def _engine_path(x) -> str | None:
    if x is None:
        return None
    return str(x.path if isinstance(x, EngineSet) else x)


def run(sources: PathLike | Sequence[PathLike], tracker: PathLike | EngineSet | None = None,
        init_box: Any = None, classifier: PathLike | EngineSet | None = None, out_video: PathLike | None = None,
        events: PathLike | None = None, max_frames: int | None = None,
        on_event: Callable[[int, Event], None] | None = None, *, handle_signals: bool = False,
        **options) -> RunSummary:
    """Tracker and/or classifier engines on video files, image folders, cameras, URLs or GStreamer pipelines.

    ``init_box``: ``x,y,w,h`` (string or 4 numbers) for every source, or a list with one per source.
    ``on_event(stream, event)`` is called for every event as it happens (from the sink thread).
    ``handle_signals``: the first SIGINT/SIGTERM/SIGHUP stops cleanly (video finalised, events flushed); the
    CLI sets it. ``options`` (see ``run_plan``): ``heatmap``, ``window``, ``stride``, ``classifier_fps`` (the
    classifier's clock in frames per second of the source, by timestamp; default the model's, 0 every frame),
    ``tracker_params``,
    ``queue_size``, ``live_queue_size``, ``batch``, ``max_reconnects``, ``open_timeout``,
    ``status_interval``, ``display``, ``remote`` (``grpc://HOST:PORT`` of an ``edge serve``: ``tracker`` /
    ``classifier`` then name served models), ``remote_shm`` (True: large inputs through system shared memory,
    server on this machine), ``alarms`` (a per-class alarm rules file, ``edge/data/alarms.json``
    form, instead of the model's), ``threads`` (onnxruntime threads per engine; default: the build's, shared
    by the models that run, which step concurrently), ``rotate`` (90, 180 or 270: every source's frames turned
    clockwise first, for a camera mounted sideways or upside down; boxes and video are in the turned frame).
    Everything is validated before any engine loads or any thread starts."""
    from edge.stream.run import execute
    plan = run_plan(sources, tracker, init_box, classifier, out_video, events, max_frames, **options)
    return execute(plan, on_event=on_event, handle_signals=handle_signals)


def run_plan(sources, tracker=None, init_box=None, classifier=None, out_video=None, events=None,
             max_frames=None, *, heatmap: bool = False, window: int | None = None, stride: int | None = None,
             classifier_fps: float | None = None, tracker_params: Mapping | None = None, queue_size: int = 4,
             live_queue_size: int = 2, batch: int = 8, max_reconnects: int | None = None, open_timeout: float | None = None,
             status_interval: float = 0.0, display: bool = False, remote: str | None = None,
             remote_shm: bool = False, alarms: PathLike | None = None, threads: int | None = None,
             rotate: int = 0):
    """The ``edge.stream.run.RunPlan`` of ``run``'s arguments (for callers that drive the pipeline)."""
    from edge.stream.run import RunPlan
    srcs = [str(sources)] if isinstance(sources, (str, os.PathLike)) else [str(s) for s in sources]
    return RunPlan(sources=srcs, tracker=_engine_path(tracker), init_boxes=_boxes(init_box, len(srcs)),
                   classifier=_engine_path(classifier), out_video=None if out_video is None else str(out_video),
                   events=None if events is None else str(events), max_frames=max_frames, heatmap=heatmap,
                   window=window, stride=stride, classifier_fps=classifier_fps,
                   tracker_params=dict(tracker_params or {}),
                   queue_size=queue_size, live_queue_size=live_queue_size, batch=batch,
                   max_reconnects=max_reconnects, open_timeout=open_timeout, status_interval=status_interval,
                   display=display, remote=remote, remote_shm=remote_shm,
                   alarms=None if alarms is None else str(alarms), threads=threads, rotate=rotate)


def _boxes(init_box, n: int) -> list:
    if init_box is None:
        return []
    if isinstance(init_box, str) or (len(init_box) == 4 and all(isinstance(v, (int, float, np.number))
                                                                  for v in init_box)):
        return [init_box]
    return list(init_box)


def bench(engines: Sequence[PathLike | EngineSet], data: Sequence[PathLike] = (), *, json: PathLike | None = None,
          markdown: PathLike | None = None, plots: PathLike | None = None, tolerances: PathLike | None = None,
          export: Sequence[PathLike] = (), baseline: bool = True, threads: int | None = None,
          duration: float = 1.0, samples: int = 200, max_sequences: int | None = None,
          max_frames: int | None = None, max_clips: int | None = None, cache: PathLike = "out/bench/data",
          conditions: Sequence[str] = (), tracker_params: Mapping | None = None,
          anchors: Sequence[str] | bool = True, log: Log = _quiet) -> BenchReport:
    """Speed, numerics and task accuracy of engine folders against the PyTorch reference and plain
    onnxruntime on the raw export, in one run (rows interleaved); writes JSON / Markdown / plots if asked.
    ``conditions``: tracker rows again under camera conditions (``edge.bench.conditions``, e.g. ``night_ir``).
    ``tracker_params``: tracker parameters over the model's own for every tracker row (validated first).
    ``anchors``: the OpenCV trackers run beside the tracker rows (``("CSRT", "KCF")``; True: CSRT, KCF and MIL)."""
    from edge.bench.anchors import check_kinds
    from edge.bench.suite import run_suite
    if not isinstance(anchors, bool):
        try:
            anchors = check_kinds((anchors,) if isinstance(anchors, str) else anchors)
        except ValueError as e:
            raise UserError(str(e)) from None
    if tracker_params:
        from edge.tracking.params import TrackerParams
        try:
            TrackerParams.from_dict(dict(tracker_params))     # unknown names / bad values before any work
        except ValueError as e:
            raise UserError(str(e)) from None
    report, status = run_suite(
        engine_dirs=[_engine_path(e) for e in engines], data=[str(d) for d in data],
        tolerances_file=None if tolerances is None else str(tolerances), export_dirs=[str(e) for e in export],
        baseline=baseline, threads=threads or os.cpu_count() or 1, duration=duration, samples=samples,
        max_sequences=max_sequences, max_frames=max_frames, max_clips=max_clips, cache=str(cache),
        json_path=None if json is None else str(json), md_path=None if markdown is None else str(markdown),
        plots_dir=None if plots is None else str(plots), log=log, conditions=tuple(conditions),
        tracker_params=dict(tracker_params or {}) or None, anchors=anchors)
    return BenchReport(report, status)


# -- the models in your own loop ------------------------------------------------------------------------
def _engines(engines, kind: str, threads: int | None):
    from edge.runtime import load_engines
    from edge.runtime.base import Engines
    if isinstance(engines, Engines):
        if engines.kind != kind:
            raise UserError(f"{kind} engines needed, got {engines.kind} engines")
        return engines
    return load_engines(_engine_path(engines), threads=threads, kind=kind)


class Tracker:
    """The tracker on an engine folder, got10k's interface: ``init(image, box)``, ``update(image) -> box``
    (``[x, y, w, h]``, images HxWx3 uint8 BGR); ``score`` and ``lost`` after each update. A loop that skips
    frames says how many camera frames passed: ``update(image, elapsed=3)``."""

    def __init__(self, engines: PathLike | EngineSet | Any, params: Mapping | None = None,
                 threads: int | None = None) -> None:
        from edge.tracking.session import TrackerRuntime
        self.runtime = TrackerRuntime(_engines(engines, "tracker", threads), params)
        self._trk = self.runtime.tracker()

    def init(self, image: np.ndarray, box) -> None:
        self._trk.init(image, box)

    def update(self, image: np.ndarray, elapsed: int = 1) -> np.ndarray:
        """The next frame's box; ``elapsed``: camera frames since the previous one (after dropped frames)."""
        return self._trk.update(image, elapsed)

    @property
    def score(self) -> float:
        return self._trk.last_score

    @property
    def lost(self) -> bool:
        return self._trk.lost


@dataclass(frozen=True)
class Label:
    """The classification of the window ending at ``frame``."""
    frame: int
    label: str
    score: float
    events: tuple[Event, ...] = field(default=())


class Classifier:
    """The streaming classifier on an engine folder: ``push(frame)`` once per frame of one stream returns a
    ``Label`` when a window completes (every ``stride`` sampled frames once ``window`` are in), else None;
    ``close()`` ends an open action.

    The model sees the stream at its own clock (the manifest's ``sample_fps``, ``edge.classify.sampling``), which
    needs the frames' times: give the source's ``fps`` (frame k at k / fps) or a ``timestamp`` in seconds per
    ``push``. With neither, every frame pushed is used (frames already at the model's rate). ``sample_fps``
    overrides the model's clock (0: every frame)."""

    def __init__(self, engines: PathLike | EngineSet | Any, window: int | None = None, stride: int | None = None,
                 threads: int | None = None, *, fps: float | None = None, sample_fps: float | None = None) -> None:
        from edge.classify.runtime import ClassifierRuntime
        if fps is not None and not (isinstance(fps, (int, float)) and fps > 0):
            raise UserError(f"fps must be the source's frames per second (> 0), got {fps!r}")
        self.runtime = ClassifierRuntime(_engines(engines, "classifier", threads), window=window, stride=stride,
                                         sample_fps=sample_fps)
        self.session = self.runtime.session()
        self.fps = fps
        self.frames = 0

    def push(self, image: np.ndarray, timestamp: float | None = None) -> Label | None:
        from edge.stream.sources import Frame
        if timestamp is None and self.fps is not None:
            timestamp = self.frames / self.fps
        frame = Frame(0, self.frames, timestamp, image, 0.0)
        self.frames += 1
        (u,) = self.runtime.step([(self.session, self.session.prepare(frame), frame)])
        last = self.session.last
        if last is None or last.frame != frame.index:
            return None
        return Label(last.frame, last.label, last.score, tuple(u.events))

    def close(self) -> list[Event]:
        return self.session.close(max(self.frames - 1, 0))


def frames(source: PathLike, max_frames: int | None = None):
    """The frames (HxWx3 uint8 BGR) of a source as ``edge run`` reads them: a video file, image folder,
    camera index, URL or GStreamer pipeline (live sources reconnect as in ``edge run``)."""
    import threading
    from edge.stream.sources import open_source
    src = open_source(str(source))
    try:
        for i, (image, _, _) in enumerate(src.frames(threading.Event())):
            if max_frames is not None and i >= max_frames:
                break
            yield image
    finally:
        src.close()
