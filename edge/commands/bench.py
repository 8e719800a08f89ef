"""``edge bench ENGINE_DIR... [--data PATH...] [--json PATH] [--markdown PATH] [--plots DIR]
[--tolerances FILE] [--conditions NAME...]``: speed, numerics and task accuracy of engines against the PyTorch reference.

Per model found among the engine folders, in one run and through the same runtime logic: the PyTorch
reference (imported lazily, for that row only), a baseline of plain onnxruntime on the un-optimised export
(what a user gets without this package), then every engine. Exit code 1 when a row breaks its tolerance.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_CACHE = Path("out") / "bench" / "data"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("engines", nargs="+", metavar="ENGINE_DIR", help="engine folders from `edge build`")
    p.add_argument("--data", nargs="+", action="extend", default=[], metavar="PATH",
                   help="OTB/GOT-10k sequence folders (tracker) and labelled clip folders with labels.csv "
                        "(classifier); default: generated ones")
    p.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the tables as Markdown")
    p.add_argument("--plots", metavar="DIR", help="write PNG figures (OTB curves, latency, FPS)")
    p.add_argument("--tolerances", metavar="FILE", help="JSON overriding edge/tolerances.json (same layout)")
    p.add_argument("--export", action="append", default=[], metavar="EXPORT_DIR",
                   help="un-optimised export for the plain-onnxruntime baseline (default: the folder each "
                        "engine was built from, per its fingerprint)")
    p.add_argument("--no-baseline", action="store_true", help="skip the plain-onnxruntime row")
    p.add_argument("--threads", type=int, default=None, help="threads for every row (default: all CPUs)")
    p.add_argument("--duration", type=float, default=1.0, help="timed seconds per network and row (1.0)")
    p.add_argument("--samples", type=int, default=200,
                   help="recorded real inputs per network for speed and numerics (200)")
    p.add_argument("--max-sequences", type=int, default=None, help="use at most N tracking sequences")
    p.add_argument("--max-frames", type=int, default=None, help="use at most N frames per sequence (the real-footage shots too)")
    p.add_argument("--max-clips", type=int, default=None, help="use at most N labelled clips")
    p.add_argument("--conditions", nargs="+", default=[], metavar="NAME",
                   help="also run the tracker rows as other cameras would give the data (edge.bench.conditions: "
                        "original, night_ir, low_light, jpeg_q10, shake, frame_drop_3, runtime_drops, "
                        "upscale_1080, half_res, portrait); reported, not judged")
    p.add_argument("--tracker-params", metavar="JSON", default=None,
                   help="tracker parameters over the model's own for every tracker row (a JSON object or "
                        "@file.json, as edge run takes them), e.g. '{\"wide_redetect\": 1}'")
    p.add_argument("--anchors", nargs="*", default=None, metavar="KIND",
                   help="OpenCV trackers beside the tracker rows, of CSRT, KCF, MIL (default all; none: no "
                        "anchor rows)")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), metavar="DIR",
                   help=f"where generated data is kept ({DEFAULT_CACHE})")


def run(args: argparse.Namespace) -> int:
    import edge.api
    from edge.commands.options import tracker_params
    rep = edge.api.bench(args.engines, args.data, json=args.json, markdown=args.markdown, plots=args.plots,
                         tolerances=args.tolerances, export=args.export, baseline=not args.no_baseline,
                         threads=args.threads, duration=args.duration, samples=args.samples,
                         max_sequences=args.max_sequences, max_frames=args.max_frames, max_clips=args.max_clips,
                         cache=args.cache, conditions=args.conditions,
                         tracker_params=tracker_params(args.tracker_params, None),
                         anchors=True if args.anchors is None else args.anchors,
                         log=lambda m: print(m, file=sys.stderr, flush=True))
    print(rep.markdown(), end="")
    return 0 if rep.passed else 1
