"""Choose the two-in-one classifier's input size: PyTorch eager vs onnxruntime per network (encoder, step).

Exports each network with ``edge.kernels.onnx_functions.export_onnx`` (ConvLSTMCell as the ``edge.ops``
node with its model-local function) and times batch-1 runs with 2 threads after a warm-up (medians and
minima; the machine is shared, so minima are the steadier number). Writes JSON + Markdown.

    .venv/bin/python bench/classifier_sizes.py [--sizes 128 160] [--out out/bench/classifier_sizes]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from edge.ops import export_onnx
from edge.models.two_in_one import ClassifierConfig, TwoInOne, networks


def timed(fn, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 160])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="out/bench/classifier_sizes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for size in args.sizes:
        torch.manual_seed(0)
        model = TwoInOne(ClassifierConfig(size=size)).eval()
        with torch.no_grad():  # a non-trivial modulation (gamma/beta start at zero)
            for p in list(model.encoder.mc.gamma.parameters()) + list(model.encoder.mc.beta.parameters()):
                p.normal_(0, 0.05)
        for name, spec in networks(model).items():
            args_t = tuple(spec.inputs.values())
            with torch.inference_mode():
                eager = timed(lambda: spec.module(*args_t), 5, args.runs)
                ref = spec.module(*args_t)
            proto = export_onnx(spec.module, args_t, None, list(spec.inputs), spec.outputs, spec.dynamic_axes)
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
            feeds = {k: v.numpy() for k, v in spec.inputs.items()}
            onnx_ms = timed(lambda: sess.run(None, feeds), 10, args.runs)
            err = max(float(np.abs(o - r.numpy()).max()) for o, r in zip(sess.run(None, feeds), ref))
            params = sum(p.numel() for p in spec.module.parameters())
            trained = sum(p.numel() for p in spec.module.parameters() if p.requires_grad)
            rows.append({"size": size, "network": name, "params": params, "trained_params": trained,
                         "output_shapes": [list(r.shape) for r in ref],
                         "eager_ms_median": statistics.median(eager), "eager_ms_min": min(eager),
                         "ort_ms_median": statistics.median(onnx_ms), "ort_ms_min": min(onnx_ms),
                         "max_abs_err": err})
            print(json.dumps(rows[-1]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": args.threads,
            "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "runs": args.runs}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    tmp.replace(out.with_suffix(".json"))
    lines = [f"# Classifier sizes ({meta['date']}, {args.threads} threads, load avg "
             f"{meta['load_avg'][0]:.1f})", "",
             "| size | network | params (trained) | eager ms med/min | onnxruntime ms med/min | speed-up (med) | max abs err |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['network']} | {r['params']} ({r['trained_params']}) | "
                     f"{r['eager_ms_median']:.2f} / {r['eager_ms_min']:.2f} | {r['ort_ms_median']:.2f} / "
                     f"{r['ort_ms_min']:.2f} | {r['eager_ms_median'] / r['ort_ms_median']:.1f}x | {r['max_abs_err']:.1e} |")
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out.with_suffix(".md"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
