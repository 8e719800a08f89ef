"""``edge run``: tracker and/or classifier engines on live video or files, torch-free.

Exit codes: 0 = all sources ended, ``--max-frames`` reached, or stopped by SIGTERM (clean stop);
130 = stopped by SIGINT (Ctrl-C) after a clean stop (video finalised, events flushed); 2 = bad input
(missing/unreadable source, bad ``--init-box``, bad paths) with a one-line error. A second SIGINT/SIGTERM
exits at once (130) without finalising.
"""
from __future__ import annotations

import logging
import os
import resource
import signal
import sys

from edge.errors import UserError


def add_arguments(p) -> None:
    p.add_argument("--source", action="append", required=True, metavar="SRC",
                   help="video file, image folder (OTB img/ works), camera index, rtsp/http URL or a "
                        "GStreamer pipeline ending in appsink; repeat for several streams")
    p.add_argument("--tracker", metavar="ENGINE_DIR", help="tracker engines (template + search)")
    p.add_argument("--init-box", action="append", metavar="x,y,w,h",
                   help="initial target box (one for all sources, or one per source)")
    p.add_argument("--lost-threshold", type=float, default=None,
                   help="tracker score below which the target counts as lost (default: the tracker's own)")
    p.add_argument("--classifier", metavar="ENGINE_DIR", help="classifier engines (encoder + step)")
    p.add_argument("--window", type=int, default=None, help="classifier window T (default: manifest)")
    p.add_argument("--stride", type=int, default=None, help="classify every N frames (default: manifest)")
    p.add_argument("--out-video", metavar="PATH", help="overlay video (.mp4 = mp4v, .avi = MJPG); stream k>0 "
                                                        "goes to PATH with .k before the suffix")
    p.add_argument("--heatmap", action="store_true", help="blend the classifier attention map into the video")
    p.add_argument("--events", metavar="PATH.jsonl", help="JSON Lines events (schema in the README)")
    p.add_argument("--display", action="store_true", help="show the overlay in a window (needs OpenCV GUI)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop each stream after N frames")
    p.add_argument("--queue-size", type=int, default=4, help="frames buffered after capture (file sources)")
    p.add_argument("--live-queue-size", type=int, default=2,
                   help="frames buffered after capture for live sources (oldest dropped beyond; lower = less latency)")
    p.add_argument("--batch", type=int, default=8, help="max frames per inference batch (across streams)")
    p.add_argument("--max-reconnects", type=int, default=None,
                   help="give up on a live source after N failed reopen attempts (default: never)")
    p.add_argument("--status-interval", type=float, default=1.0, help="seconds between status lines (0: off)")
    p.add_argument("--remote", metavar="grpc://HOST:PORT",
                   help="run the networks on an `edge serve` Triton server; --tracker/--classifier then name the "
                        "served models (or a local engine folder whose manifest names them)")


def load_engines(path: str, remote: str | None = None, loaded: list | None = None):
    if remote:
        from edge.runtime.triton_backend import load_remote_engines
        engines = load_remote_engines(remote, path)
        if loaded is not None:
            loaded.append(engines)
        return engines
    from edge.runtime import load_engines as _load
    return _load(path)


def build(args):
    """Everything ``run`` needs, validated before any thread starts (errors -> exit 2)."""
    from edge.stream.pipeline import Pipeline, StreamInput
    from edge.stream.sinks import DisplaySink, EventsSink, StatusSink, VideoSink
    from edge.stream.sources import open_source
    from edge.stream.tracking import check_box_in_frame, parse_box

    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames must be >= 1, got {args.max_frames}")
    boxes = [parse_box(b) for b in (args.init_box or [])]
    if args.tracker and not boxes:
        raise UserError("--tracker needs --init-box x,y,w,h")
    if boxes and not args.tracker:
        raise UserError("--init-box needs --tracker ENGINE_DIR")
    if boxes and len(boxes) not in (1, len(args.source)):
        raise UserError(f"give one --init-box for all sources or one per source ({len(args.source)}), "
                        f"got {len(boxes)}")
    sinks = []                                  # sinks first: bad output paths fail before opening sources
    if args.out_video:
        sinks.append(VideoSink(args.out_video, heatmap=args.heatmap))
    if args.events:
        sinks.append(EventsSink(args.events))
    if args.display:
        sinks.append(DisplaySink(heatmap=args.heatmap))
    if args.status_interval and args.status_interval > 0:
        sinks.append(StatusSink(args.status_interval))
    streams = []
    for i, spec in enumerate(args.source):
        src = open_source(spec, max_reconnects=args.max_reconnects)
        box = (boxes[i] if len(boxes) > 1 else boxes[0]) if boxes else None
        size = src.frame_size()
        if box is not None and size is not None:
            check_box_in_frame(box, size)
        streams.append(StreamInput(src, box, spec))
    tracker = classifier = None
    remotes = args.remote_engines = []
    if args.tracker:
        from edge.tracking import SiameseTracker
        engines = load_engines(args.tracker, getattr(args, "remote", None), remotes)
        params = {"lost_threshold": args.lost_threshold} if args.lost_threshold is not None else None
        tracker = lambda: SiameseTracker(engines, params)  # noqa: E731  (one per stream, shared engines)
    if args.classifier:
        from edge.classify.runtime import ClassifierRuntime
        classifier = ClassifierRuntime(load_engines(args.classifier, getattr(args, "remote", None), remotes), window=args.window, stride=args.stride)
    return Pipeline(streams, tracker=tracker, classifier=classifier, sinks=sinks, max_frames=args.max_frames,
                    queue_size=args.queue_size, live_queue_size=args.live_queue_size, max_batch=args.batch,
                    lost_threshold=args.lost_threshold)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # kB on Linux


def run(args) -> int:
    logging.basicConfig(level=logging.WARNING, format="edge run: %(message)s")
    pipe = build(args)
    got: list[int] = []

    def on_signal(signum, _frame):
        if got:                                   # second signal: leave now
            os._exit(130)
        got.append(signum)
        pipe.stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = pipe.run()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    for i, s in enumerate(summary):
        print(f"stream {i} {s['name']}: {s['processed']}/{s['captured']} frames, {s['fps']} fps, "
              f"drops {s['drops']}, corrupt {s['corrupt']}, reconnects {s['reconnects']}, "
              f"latency p50 {s['latency_ms_p50']} ms p95 {s['latency_ms_p95']} ms", file=sys.stderr)
        if not s["captured"]:
            print(f"edge run: warning: stream {i} ({s['name']}) delivered no frames", file=sys.stderr)
    for sink in pipe.sinks:
        if hasattr(sink, "paths"):
            for p in sink.paths():
                print(f"video: {p}", file=sys.stderr)
        elif hasattr(sink, "lines"):
            print(f"events: {sink.path} ({sink.lines} lines)", file=sys.stderr)
    for eng in getattr(args, "remote_engines", []):
        st = eng.connection.stats
        print(f"remote {eng.connection.url}: {st.requests} requests, {st.reconnects} reconnects, "
              f"{st.retries} retries, waited {st.gap_s:.2f} s", file=sys.stderr)
    print(f"peak RSS: {peak_rss_mb():.1f} MB; torch imported: {'yes' if 'torch' in sys.modules else 'no'}",
          file=sys.stderr)
    if got and got[0] == signal.SIGINT:
        print("edge run: interrupted (SIGINT), outputs finalised", file=sys.stderr)
        return 130
    return 0
