"""``edge calibrate DIR --data VIDEO_OR_FOLDER... [--frames N] [--method {minmax,entropy,percentile}] [--seed S]``

INT8 Q/DQ graphs (onnxruntime and TensorRT flavours) and an fp16-typed graph for every network of an
``edge export`` folder, calibrated on inputs drawn through the real tracker / classifier runtime; writes
``DIR/calibration/`` (see ``edge.calibration.pipeline``). Workstation side (onnx + onnxruntime tooling).
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="export folder (model.json + <network>.onnx from edge export)")
    p.add_argument("--data", nargs="+", default=None, metavar="VIDEO_OR_FOLDER",
                   help="videos, image-sequence folders (OTB/GOT-10k) or folders of them "
                        "(default: the offline real clips bikes.mp4 + carphone_pristine.mp4)")
    p.add_argument("--frames", type=int, default=96, help="frames drawn over the data (default 96)")
    p.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="percentile",
                   help="activation range calibration (default percentile 99.99: measured best here)")
    p.add_argument("--seed", type=int, default=0, help="seed of the frame plan and init boxes (default 0)")
    p.add_argument("--tolerance", nargs="+", default=None, metavar="[NETWORK=]CORR",
                   help="min mean correlation of each consumed output with fp32 on held-out samples "
                        "(default 0.99, classifier encoder 0.998); NETWORK=CORR sets one network's, "
                        "e.g. --tolerance 0.99 encoder=0.995")
    p.add_argument("--flavours", default="ort,trt", help="Q/DQ flavours: ort (u8 act.), trt (symmetric s8)")
    p.add_argument("--networks", default=None, help="comma-separated subset of networks (default: all)")
    p.add_argument("--keep-float", nargs="*", default=(), metavar="NODE", help="node names never quantized")
    p.add_argument("--no-fp16", action="store_true", help="skip the fp16-typed graphs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import edge.api
    tol: dict[str, float] | None = {} if args.tolerance else None
    for item in args.tolerance or ():
        name, _, value = item.rpartition("=")
        try:
            tol[name or "*"] = float(value)
        except ValueError:
            raise ValueError(f"--tolerance takes CORR or NETWORK=CORR, got {item!r}") from None
    cal = edge.api.calibrate(args.dir, args.data, frames=args.frames, method=args.method, seed=args.seed,
                             tolerance=tol, flavours=[f for f in args.flavours.split(",") if f],
                             fp16=not args.no_fp16, keep_float=args.keep_float,
                             networks=args.networks.split(",") if args.networks else None,
                             progress=not args.quiet, log=print)
    return 1 if cal.tolerance_missed else 0
