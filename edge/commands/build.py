"""``edge build DIR --target T --precision {fp32,fp16,int8} -o ENGINE_DIR`` (torch-free; run it on the device).

Exit codes: 0 built or cache hit, 2 bad input (missing export/calibration, unknown target, fp16 slower
than fp32 on CPU, no GPU for a TensorRT target), one line on stderr.
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edge.targets import load_targets
    p.add_argument("export_dir", help="folder written by `edge export` (model.json + ONNX)")
    p.add_argument("--target", required=True, choices=sorted(load_targets()),
                   help="device profile from edge/targets/targets.json")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"],
                   help="fp32 (default); fp16 (GPU, or CPU where it measures faster); int8 (needs `edge "
                        "calibrate` first; networks where int8 does not pay stay fp32)")
    p.add_argument("-o", "--output", required=True, help="engine folder")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores); recorded")
    p.add_argument("--roi-kernel", default="auto", choices=["auto", "numba", "onnxruntime"],
                   help="CPU ROI pooling: auto = numba between graph segments when measured faster")
    p.add_argument("--plugins", default=None, help="TensorRT plugin library (libedge_plugins.so); "
                   "default $EDGE_PLUGIN_LIBRARY")
    p.add_argument("--no-dla", action="store_true", help="do not use the target's DLA cores")


def run(args: argparse.Namespace) -> int:
    import edge.api
    edge.api.build(args.export_dir, args.target, args.precision, args.output, threads=args.threads,
                   roi_kernel=args.roi_kernel, plugins=args.plugins, use_dla=not args.no_dla, log=print)
    return 0
