"""``edge run``: tracker and/or classifier engines on live video or files, torch-free.

Exit codes: 0 = all sources ended, ``--max-frames`` reached, or a clean stop by SIGTERM/SIGHUP;
130 = a clean stop by SIGINT (Ctrl-C), or an abort (a signal again after the 3 s grace period, or SIGQUIT:
frames in flight dropped, the video still finalised); 2 = bad input or a failed output (missing/unreadable
source, a live source that never opened, bad ``--init-box``, bad or clashing output paths, foreign engines,
disk full) with a one-line error.
"""
from __future__ import annotations

import sys

from edge.commands.options import tracker_params


def add_arguments(p) -> None:
    p.add_argument("--source", action="append", required=True, metavar="SRC",
                   help="video file, image folder (OTB img/ works), camera index, rtsp/http URL or a "
                        "GStreamer pipeline ending in appsink; repeat for several streams")
    p.add_argument("--tracker", metavar="ENGINE_DIR", help="tracker engines (template + search)")
    p.add_argument("--init-box", action="append", metavar="x,y,w,h",
                   help="initial target box (one for all sources, or one per source)")
    p.add_argument("--lost-threshold", type=float, default=None,
                   help="tracker score below which the target counts as lost (default: the tracker's own)")
    p.add_argument("--tracker-params", metavar="JSON", default=None,
                   help="tracker parameters over the model's own (edge.tracking.TrackerParams), a JSON object or "
                        "@file.json, e.g. '{\"wide_redetect\": 1}' for a camera at a low frame rate")
    p.add_argument("--classifier", metavar="ENGINE_DIR", help="classifier engines (encoder + step)")
    p.add_argument("--window", type=int, default=None, help="classifier window T (default: manifest)")
    p.add_argument("--stride", type=int, default=None,
                   help="classify every N sampled frames (default: manifest)")
    p.add_argument("--classifier-fps", type=float, default=None, metavar="FPS",
                   help="frames per second of the source the classifier sees, by timestamp (default: the model's "
                        "clock, the manifest's sample_fps: 5 for the sample model; 0: every frame)")
    p.add_argument("--alarms", metavar="FILE.json", default=None,
                   help="per-class start thresholds and hysteresis (edge/data/alarms.json form) instead of the "
                        "model's own; an unknown class or out-of-range value is a one-line error")
    p.add_argument("--out-video", metavar="PATH", help="overlay video (.mp4 = mp4v, .avi = MJPG); stream k>0 "
                                                        "goes to PATH with .k before the suffix")
    p.add_argument("--heatmap", action="store_true", help="blend the classifier attention map into the video")
    p.add_argument("--events", metavar="PATH.jsonl", help="JSON Lines events (schema in the README)")
    p.add_argument("--display", action="store_true", help="show the overlay in a window (needs OpenCV GUI)")
    p.add_argument("--rotate", type=int, default=0, choices=(0, 90, 180, 270), metavar="DEG",
                   help="turn every source's frames clockwise by 90, 180 or 270 degrees first (a camera mounted "
                        "sideways or upside down); --init-box, boxes and the video are in the turned frame")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop each stream after N frames")
    p.add_argument("--queue-size", type=int, default=4, help="frames buffered after capture (file sources)")
    p.add_argument("--live-queue-size", type=int, default=2,
                   help="frames buffered after capture for live sources (oldest dropped beyond; lower = less latency)")
    p.add_argument("--batch", type=int, default=8, help="max frames per inference batch (across streams)")
    p.add_argument("--threads", type=int, default=None,
                   help="onnxruntime threads per engine (default: the build's, shared by the models that run)")
    p.add_argument("--max-reconnects", type=int, default=None,
                   help="give up on a live source after N failed reopen attempts (default: never)")
    p.add_argument("--open-timeout", type=float, default=None, metavar="S",
                   help="a live source that gives no frame within S seconds of the start is an error "
                        "(exit 2; default 15)")
    p.add_argument("--status-interval", type=float, default=1.0, help="seconds between status lines (0: off)")
    p.add_argument("--remote", metavar="grpc://HOST:PORT",
                   help="run the networks on an `edge serve` Triton server; --tracker/--classifier then name the "
                        "served models (or a local engine folder whose manifest names them)")
    p.add_argument("--remote-shm", choices=("on", "off"), default="off",
                   help="with --remote on this machine: send large inputs through system shared memory instead of "
                        "inside the gRPC messages (falls back to inline if the server cannot map it)")


def run_kwargs(args) -> dict:
    """``edge.api.run``'s arguments from the command line."""
    return dict(sources=args.source, tracker=args.tracker, init_box=args.init_box, classifier=args.classifier,
                out_video=args.out_video, events=args.events, max_frames=args.max_frames, heatmap=args.heatmap,
                window=args.window, stride=args.stride, classifier_fps=args.classifier_fps,
                tracker_params=tracker_params(getattr(args, "tracker_params", None), args.lost_threshold),
                queue_size=args.queue_size, live_queue_size=args.live_queue_size, batch=args.batch,
                max_reconnects=args.max_reconnects, open_timeout=args.open_timeout,
                status_interval=args.status_interval, display=args.display, remote=args.remote,
                remote_shm=getattr(args, "remote_shm", "off") == "on",
                alarms=args.alarms, threads=args.threads, rotate=args.rotate)


def run(args) -> int:
    import edge.api
    summary = edge.api.run(**run_kwargs(args), handle_signals=True)
    print(report(summary), file=sys.stderr)
    if summary.aborted:
        print(f"edge run: aborted ({summary.stopped_by} repeated): frames in flight dropped, outputs finalised",
              file=sys.stderr)
        return 130
    if summary.stopped_by == "SIGINT":
        print("edge run: interrupted (SIGINT), outputs finalised", file=sys.stderr)
        return 130
    return 0


def report(summary) -> str:
    """The lines ``edge run`` prints on stderr when it ends."""
    lines = []
    for i, s in enumerate(summary.streams):
        lines.append(f"stream {i} {s.name}: {s.processed}/{s.captured} frames, {s.fps} fps, drops {s.drops}, "
                     f"corrupt {s.corrupt}, reconnects {s.reconnects}, latency p50 {s.latency_ms_p50} ms "
                     f"p95 {s.latency_ms_p95} ms")
        if not s.captured:
            lines.append(f"edge run: warning: stream {i} ({s.name}) delivered no frames")
    lines += [f"video: {p}" for p in summary.videos]
    lines += [f"remote {r['url']}: {r['requests']} requests ({r['shared_memory']} with inputs in shared memory), "
              f"{r['reconnects']} reconnects, {r['retries']} retries, "
              f"waited {r['gap_s']:.2f} s" for r in summary.remote]
    if summary.events_path:
        lines.append(f"events: {summary.events_path} ({summary.events_lines} lines)")
    lines.append(f"peak RSS: {summary.peak_rss_mb:.1f} MB; torch imported: {'yes' if summary.torch_imported else 'no'}")
    return "\n".join(lines)
