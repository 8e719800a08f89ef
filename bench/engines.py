"""CPU latency per network: PyTorch eager vs the built onnxruntime fp32 engine vs plain onnxruntime on the
raw export, and the numba ROI split vs one graph for the tracker. Writes JSON + Markdown.

    .venv/bin/python bench/engines.py [--models tracker classifier] [--runs 30] [--threads 2] [--out bench/results]

Same process, same inputs, warm-up then median (and p90) of ``--runs`` timed calls per row.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# On a shared/loaded machine OpenMP busy-waiting makes PyTorch eager (and numba) 2-20x slower than on an idle
# one; passive waiting is the fair setting for every row. Must be set before torch/numba load libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def timed_interleaved(fns: dict, runs: int, warmup: int, block: int = 5) -> dict:
    """``runs`` timed calls of each callable, rows in alternating blocks (``edge.bench.timing``'s round robin:
    one untimed call starts each block, so one row's idle threads do not bill the next row)."""
    from edge.bench.timing import time_round_robin

    class _Call:
        def __init__(self, fn):
            self.fn = fn

        def run(self, _feeds):
            return self.fn()
    stats = time_round_robin([_Call(fn) for fn in fns.values()], [{}], warmup_runs=warmup, warmup_s=0.0,
                             min_runs=runs, min_s=0.0, max_runs=runs, settle=1, block=block)
    for st in stats:
        if isinstance(st, Exception):
            raise st
        st.pop("times_ms")
    return dict(zip(fns, stats))


def load_ms(make, repeats: int = 3) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        make()
        ts.append((time.perf_counter() - t) * 1e3)
    return round(statistics.median(ts), 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tracker", "classifier"])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)

    import onnxruntime as ort
    import torch

    from edge.export.onnx_export import export_model
    from edge.models import registry
    from edge.runtime import load_engines
    from edge.runtime.build import build
    from edge.runtime.feeds import load_examples
    from edge.fileio import atomic_write_bytes, atomic_write_json
    from edge.runtime.fingerprint import cpu_device
    from edge.runtime.ort_backend import session

    torch.set_num_threads(args.threads)
    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_device(),
              "threads": args.threads, "os_cpu_count": os.cpu_count(), "python": platform.python_version(),
              "torch": torch.__version__, "onnxruntime": ort.__version__,
              "loadavg_1min_start": os.getloadavg()[0],
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "method": f"warm-up {args.warmup}, median of {args.runs}, rows timed round-robin",
              "models": {}}
    lines = ["| model | network | PyTorch eager ms (median / min) | ORT on raw export ms | edge cpu fp32 ms | "
             "speed-up vs PyTorch (median / min) | numba ROI split ms | max abs err |", "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            module = registry.build(name)
            exp = Path(tmp) / name
            manifest = export_model(name, exp, seed=0, model=module, log=lambda *a: None)
            engines_dir, split_dir = Path(tmp) / f"{name}.cpu", Path(tmp) / f"{name}.split"
            fp = build(exp, "cpu", "fp32", engines_dir, threads=args.threads, log=lambda *a: None)
            has_roi = any("edge.ops::RoiPool" in n["custom_ops"] for n in manifest["networks"].values())
            fps = build(exp, "cpu", "fp32", split_dir, threads=args.threads, roi_kernel="numba",
                        log=lambda *a: None) if has_roi else None
            eng = load_engines(engines_dir)
            split = load_engines(split_dir) if fps else None
            ref = registry.torch_engines(name, model=module, threads=args.threads)
            rows = {}
            for net_name, net in manifest["networks"].items():
                feeds, _ = load_examples(exp, net_name)
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = args.threads
                # as edge.bench.baseline: the raw session's default spin tail would bill the next row
                opts.add_session_config_entry("session.force_spinning_stop", "1")
                raw = ort.InferenceSession(str(exp / net["file"]), opts, providers=["CPUExecutionProvider"])
                fns = {"pytorch_eager": lambda: ref[net_name].run(feeds),
                       "onnxruntime_raw_export": lambda: raw.run(None, feeds),
                       "edge_cpu_fp32": lambda: eng[net_name].run(feeds)}
                if split is not None and fps["networks"][net_name]["kind"] == "onnxruntime+numba":
                    fns["numba_split"] = lambda: split[net_name].run(feeds)
                row = {"input_shapes": {k: list(v.shape) for k, v in feeds.items()},
                       **timed_interleaved(fns, args.runs, args.warmup),
                       "edge_cpu_fp32_kind": fp["networks"][net_name]["kind"],
                       "roi_kernel_decision": fp["networks"][net_name].get("roi_kernel_decision"),
                       "session_load_ms": {
                           "raw_export_online_optimisation": load_ms(lambda: ort.InferenceSession(
                               str(exp / net["file"]), opts, providers=["CPUExecutionProvider"])),
                           "edge_offline_optimised": load_ms(lambda: session(
                               engines_dir / next(iter(fp["networks"][net_name]["files"])), args.threads))}}
                got, want = eng[net_name].run(feeds), ref[net_name].run(feeds)
                row["max_abs_err_vs_pytorch"] = max(float(np.abs(got[k] - want[k]).max()) for k in want)
                if "numba_split" in row:
                    s = split[net_name].run(feeds)
                    row["numba_split_max_abs_err_vs_pytorch"] = max(float(np.abs(s[k] - want[k]).max()) for k in want)
                    row["numba_split_faster"] = row["numba_split"]["median_ms"] < row["edge_cpu_fp32"]["median_ms"]
                row["speedup_vs_pytorch"] = round(row["pytorch_eager"]["median_ms"] / row["edge_cpu_fp32"]["median_ms"], 2)
                rows[net_name] = row
                def cell(key):
                    return f"{row[key]['median_ms']:.2f} / {row[key]['min_ms']:.2f}" if key in row else "-"
                lines.append(f"| {name} | {net_name} | {cell('pytorch_eager')} | {cell('onnxruntime_raw_export')} | "
                             f"{cell('edge_cpu_fp32')} ({row['edge_cpu_fp32_kind']}) | {row['speedup_vs_pytorch']:.1f}x / "
                             f"{row['pytorch_eager']['min_ms'] / row['edge_cpu_fp32']['min_ms']:.1f}x | "
                             f"{cell('numba_split')} | {row['max_abs_err_vs_pytorch']:.2g} |")
                print(lines[-1], flush=True)
            result["models"][name] = rows
    result["loadavg_1min_end"] = os.getloadavg()[0]
    out = Path(args.out)
    atomic_write_json(out / "engines.json", result)
    md = [f"# CPU engines vs PyTorch ({result['date']}, {result['cpu']['name']}, {args.threads} threads, "
          f"load avg {result['loadavg_1min_start']:.1f} on {os.cpu_count()} cores)", "",
          "Medians suffer from the machine's load; min is the uncontended cost.", "", *lines, ""]
    atomic_write_bytes(out / "engines.md", "\n".join(md).encode())
    print(f"wrote {out / 'engines.json'} and {out / 'engines.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
