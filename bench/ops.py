"""Benchmark of the custom ops' CPU faces vs the PyTorch reference (a script, not a test).

RoiPool at the tracker's sizes (256 candidate boxes on the MobileNetV2 maps of the 160 px crop the SINT
model uses and of a 192 px crop) and at the probe sizes of shared/REFERENCE.md:
PyTorch reference (``roi_pool_math``), the eager torch op (numba inside, what training uses), onnxruntime
running the exported ``edge.ops::RoiPool`` function body, onnxruntime's own one-node ``MaxRoiPool``, and
the numba kernel (``edge.kernels.roi_pool.cpu``; default = parallel unless the machine is oversubscribed,
plus forced 2-thread and 1-thread columns). ConvLSTMCell: PyTorch reference, onnxruntime function
body, and a numba prototype (im2col + BLAS GEMM + fused gates; kept here, shipped only if it wins).

Every candidate is checked against the reference before timing. 2 threads everywhere, warm-up, median of
many runs. Writes ``bench/results/ops.json`` and ``ops.md`` (atomically) and prints the table.
Decision rule (issue 2): the CPU engine uses numba for RoiPool only where it is >= 2x faster than
onnxruntime's MaxRoiPool (``numba_speedup``, ``use_numba``); the record the build step reads is
``edge.kernels.roi_pool.cpu.MEASURED_SPEEDUP`` / ``should_use_numba`` (copied from this JSON).

    .venv/bin/python bench/ops.py [--quick] [--out bench/results]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

THREADS = 2
os.environ.setdefault("NUMBA_NUM_THREADS", str(THREADS))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # numpy GEMM of the numba cell prototype: no 2nd pool

import numba  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from numba import njit, prange  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from edge.kernels.convlstm.reference import convlstm_cell_math  # noqa: E402
from edge.kernels.convlstm.torch_op import ConvLSTMCell  # noqa: E402
from edge.ops import export_onnx  # noqa: E402
from edge.kernels.roi_pool import cpu as roi_cpu  # noqa: E402
from edge.kernels.roi_pool.reference import roi_pool_math  # noqa: E402
from edge.kernels.roi_pool.torch_op import RoiPool, roi_pool as torch_op_roi_pool  # noqa: E402

# name, C, H(=W), spatial_scale, pooled, image side, tracker size?
ROI_SIZES = [
    ("sint160 stride8", 32, 20, 1 / 8, (4, 4), 160, True),
    ("sint160 stride16", 96, 10, 1 / 16, (4, 4), 160, True),
    ("crop192 stride8 4x4", 32, 24, 1 / 8, (4, 4), 192, True),
    ("crop192 stride8 7x7", 32, 24, 1 / 8, (7, 7), 192, True),
    ("crop192 stride16 4x4", 96, 12, 1 / 16, (4, 4), 192, True),
    ("crop192 stride16 7x7", 96, 12, 1 / 16, (7, 7), 192, True),
    ("probe C96 32x32 4x4", 96, 32, 1 / 4, (4, 4), 128, False),
    ("probe C96 32x32 7x7", 96, 32, 1 / 4, (7, 7), 128, False),
    ("probe C320 16x16 7x7", 320, 16, 1 / 4, (7, 7), 64, False),
]
NUM_ROIS = 256
# name, N, Cx, Ch, H(=W), k
CELL_SIZES = [
    ("classifier step 32/32 10x10", 1, 32, 32, 10, 3),
    ("64/64 7x7", 1, 64, 64, 7, 3),
    ("64/64 4x4", 1, 64, 64, 4, 3),
]
MIN_SPEEDUP = roi_cpu.MIN_SPEEDUP


def measure(cands: dict, quick: bool) -> tuple[dict, dict]:
    """Median and min ms per candidate. Candidates are interleaved round by round, so a load change on
    the shared machine hits all of them alike; slow ones (the torch reference) get fewer runs."""
    runs, budget = (10, 0.1) if quick else (60, 0.6)
    est = {}
    for k, f in cands.items():           # warm-up (and numba compile), then a per-candidate run count
        start = time.perf_counter()
        for _ in range(3 if quick else 10):
            t = time.perf_counter()
            f()
            est[k] = time.perf_counter() - t
            if t - start > budget:       # slow candidate: a short warm-up is enough
                break
    count = {k: int(min(runs, max(5, budget / max(e, 1e-6)))) for k, e in est.items()}
    times: dict[str, list[float]] = {k: [] for k in cands}
    for r in range(max(count.values())):
        for k, f in cands.items():
            if r < count[k]:
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
    return ({k: statistics.median(v) * 1e3 for k, v in times.items()},
            {k: min(v) * 1e3 for k, v in times.items()})


def one_thread(fn):
    def run():
        numba.set_num_threads(1)
        try:
            return fn()
        finally:
            numba.set_num_threads(THREADS)
    return run


def session(model_bytes: bytes) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def max_roi_pool_model(pooled, scale) -> bytes:
    node = helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"], pooled_shape=list(pooled), spatial_scale=scale)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, None),
                                            helper.make_tensor_value_info("rois", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10).SerializeToString()


def candidate_boxes(rng: np.random.Generator, side: float, count: int) -> np.ndarray:
    """SINT-like candidates: radial offsets around a centred box x scales {0.7071, 1, 1.4142}."""
    base = rng.uniform(0.3, 0.45) * side
    ang = rng.uniform(0, 2 * np.pi, count)
    rad = rng.uniform(0, 0.2 * side, count)
    s = rng.choice([0.7071, 1.0, 1.4142], count)
    w, h = base * s, base * s * rng.uniform(0.8, 1.25)
    cx, cy = side / 2 + rad * np.cos(ang), side / 2 + rad * np.sin(ang)
    return np.stack([np.zeros(count), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32)


def bench_roi(rng, quick: bool) -> list[dict]:
    rows = []
    for name, c, hw, scale, pooled, side, tracker in ROI_SIZES:
        x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
        rois = candidate_boxes(rng, side, NUM_ROIS)
        xt, rt = torch.from_numpy(x), torch.from_numpy(rois)
        fn_sess = session(export_onnx(RoiPool(pooled, scale), (xt, rt), None, ["x", "rois"], ["y"],
                                      {"rois": {0: "R"}, "y": {0: "R"}}).SerializeToString())
        mrp_sess = session(max_roi_pool_model(pooled, scale))
        cands = {
            "torch_reference": lambda: roi_pool_math(xt, rt, pooled, scale),
            "torch_op_eager": lambda: torch_op_roi_pool(xt, rt, pooled, scale),
            "ort_function": lambda: fn_sess.run(None, {"x": x, "rois": rois})[0],
            "ort_max_roi_pool": lambda: mrp_sess.run(None, {"X": x, "rois": rois})[0],
            "numba": lambda: roi_cpu.roi_pool(x, rois, pooled, scale),      # default: what the engine runs
            "numba_2threads": lambda: roi_cpu.roi_pool(x, rois, pooled, scale, parallel=True),
            "numba_1thread": lambda: roi_cpu.roi_pool(x, rois, pooled, scale, parallel=False),
        }
        want = cands["torch_reference"]().numpy()
        for k, f in cands.items():
            got = f()
            got = got.numpy() if isinstance(got, torch.Tensor) else got
            if not np.array_equal(got, want):
                raise SystemExit(f"{name}: {k} differs from the reference")
        with torch.inference_mode():
            ms, best = measure(cands, quick)
        speedup = ms["ort_max_roi_pool"] / ms["numba"]
        rows.append(dict(name=name, channels=c, height=hw, width=hw, spatial_scale=scale,
                         pooled_shape=list(pooled), rois=NUM_ROIS, tracker_size=tracker, ms=ms, min_ms=best,
                         numba_speedup_min=round(best["ort_max_roi_pool"] / best["numba"], 2),
                         numba_speedup=round(speedup, 2), use_numba=bool(speedup >= MIN_SPEEDUP),
                         vs_torch_reference={k: round(ms["torch_reference"] / v, 2) for k, v in ms.items()}))
        print(f"  roi {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in ms.items()), file=sys.stderr)
    return rows


# ---- numba ConvLSTM prototype (benchmark only; see module docstring) ----
@njit(parallel=True, cache=True, fastmath=False)
def _im2col(x, h, k, cols):
    cx, ch, hh, ww = x.shape[0], h.shape[0], x.shape[1], x.shape[2]
    p = k // 2
    for ci in prange(cx + ch):
        for ky in range(k):
            for kx in range(k):
                row = (ci * k + ky) * k + kx
                for y in range(hh):
                    sy = y + ky - p
                    for xx in range(ww):
                        sx = xx + kx - p
                        v = np.float32(0.0)
                        if 0 <= sy < hh and 0 <= sx < ww:
                            v = x[ci, sy, sx] if ci < cx else h[ci - cx, sy, sx]
                        cols[row, y * ww + xx] = v


@njit(parallel=True, cache=True, fastmath=False)
def _gates(z, b, c, h_out, c_out):
    ch, hw = c.shape[0], c.shape[1]
    for j in prange(ch):
        for q in range(hw):
            zi, zf = z[j, q] + b[j], z[ch + j, q] + b[ch + j]
            zo, zg = z[2 * ch + j, q] + b[2 * ch + j], z[3 * ch + j, q] + b[3 * ch + j]
            i = 1.0 / (1.0 + np.exp(-zi))
            f = 1.0 / (1.0 + np.exp(-zf))
            o = 1.0 / (1.0 + np.exp(-zo))
            cn = f * c[j, q] + i * np.tanh(zg)
            c_out[j, q] = cn
            h_out[j, q] = o * np.tanh(cn)


def numba_cell(x, h, c, w2d, b, k):
    n, cx, hh, ww = x.shape
    ch = h.shape[1]
    cols = np.empty((w2d.shape[1], hh * ww), np.float32)
    h_out = np.empty_like(h)
    c_out = np.empty_like(c)
    for i in range(n):
        _im2col(x[i], h[i], k, cols)
        z = w2d @ cols                                     # numpy BLAS GEMM
        _gates(z, b, c[i].reshape(ch, -1), h_out[i].reshape(ch, -1), c_out[i].reshape(ch, -1))
    return h_out, c_out


def bench_cell(rng, quick: bool) -> list[dict]:
    rows = []
    for name, n, cx, ch, hw, k in CELL_SIZES:
        cell = ConvLSTMCell(cx, ch, k)
        with torch.no_grad():
            cell.weight.normal_(0, 0.05)
            cell.bias.normal_(0, 0.1)
        feeds = [rng.standard_normal((n, cc, hw, hw)).astype(np.float32) for cc in (cx, ch, ch)]
        tx = [torch.from_numpy(a) for a in feeds]
        model = export_onnx(cell, tuple(tx), None, ["x", "h", "c"], ["h_next", "c_next"], None)
        sess = session(model.SerializeToString())
        w2d = cell.weight.detach().numpy().reshape(4 * ch, -1).copy()
        b = cell.bias.detach().numpy().copy()
        cands = {
            "torch_reference": lambda: convlstm_cell_math(*tx, cell.weight, cell.bias),
            "ort_function": lambda: sess.run(None, dict(zip(["x", "h", "c"], feeds))),
            "numba_prototype": lambda: numba_cell(*feeds, w2d, b, k),
            "numba_prototype_1thread": one_thread(lambda: numba_cell(*feeds, w2d, b, k)),
        }
        with torch.inference_mode():
            want = [t.numpy() for t in cands["torch_reference"]()]
            for key in ("ort_function", "numba_prototype"):
                for g, w in zip(cands[key](), want):
                    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=f"{name}: {key}")
            ms, best = measure(cands, quick)
        speedup = ms["ort_function"] / min(ms["numba_prototype"], ms["numba_prototype_1thread"])
        rows.append(dict(name=name, batch=n, in_channels=cx, hidden=ch, height=hw, width=hw, kernel=k, ms=ms,
                         min_ms=best,
                         numba_speedup=round(speedup, 2), ship_numba=bool(speedup >= MIN_SPEEDUP),
                         vs_torch_reference={k_: round(ms["torch_reference"] / v, 2) for k_, v in ms.items()}))
        print(f"  cell {name}: " + ", ".join(f"{k_} {v:.3f}" for k_, v in ms.items()), file=sys.stderr)
    return rows


def markdown(result: dict) -> str:
    lines = [f"# Custom-op CPU benchmark ({result['meta']['date']})", "",
             f"{result['meta']['method']}", "", "## RoiPool (256 boxes, ms, median)", "",
             "| size | C | map | pooled | torch ref | torch op (eager) | ORT function | ORT MaxRoiPool | numba "
             "| numba 2 / 1 thread | numba vs ORT (median; min) | use numba |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["roi_pool"]:
        m = r["ms"]
        lines.append(f"| {r['name']} | {r['channels']} | {r['height']}x{r['width']} | "
                     f"{r['pooled_shape'][0]}x{r['pooled_shape'][1]} | {m['torch_reference']:.3f} | "
                     f"{m['torch_op_eager']:.3f} | {m['ort_function']:.3f} | {m['ort_max_roi_pool']:.3f} | "
                     f"{m['numba']:.3f} | {m['numba_2threads']:.3f} / {m['numba_1thread']:.3f} | "
                     f"{r['numba_speedup']:.1f}x; "
                     f"{r['numba_speedup_min']:.1f}x | {'yes' if r['use_numba'] else 'no'} |")
    lines += ["", "## ConvLSTMCell (ms, median)", "",
              "| size | torch ref | ORT function | numba prototype (2 / 1 thread) | numba vs ORT | ship numba |",
              "|---|---|---|---|---|---|"]
    for r in result["convlstm"]:
        m = r["ms"]
        lines.append(f"| {r['name']} | {m['torch_reference']:.3f} | {m['ort_function']:.3f} | "
                     f"{m['numba_prototype']:.3f} / {m['numba_prototype_1thread']:.3f} | "
                     f"{r['numba_speedup']:.2f}x | {'yes' if r['ship_numba'] else 'no'} |")
    d = result["decision"]
    lines += ["", f"Decision: RoiPool numba at tracker sizes: {d['roi_pool_numba_at_tracker_sizes']}; "
                  f"ConvLSTMCell numba shipped: {d['convlstm_numba']}.", ""]
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few runs (smoke check, numbers not meaningful)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    numba.set_num_threads(THREADS)
    rng = np.random.default_rng(args.seed)
    load_start = list(os.getloadavg())
    roi_rows = bench_roi(rng, args.quick)
    cell_rows = bench_cell(rng, args.quick)
    result = {
        "meta": {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "machine": platform.platform(), "cpu_count": os.cpu_count(), "threads": THREADS,
                 "load_average_start": load_start, "load_average_end": list(os.getloadavg()),
                 "quick": args.quick,
                 "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__, "onnx": onnx.__version__,
                              "numba": numba.__version__, "numpy": np.__version__},
                 "method": (f"{THREADS} threads (torch, numba, ORT intra-op) unless noted; warm-up, then "
                            "candidates interleaved round by round, median (and min) of up to "
                            f"{'10' if args.quick else '60'} runs each (slow ones fewer, >= 5); every candidate "
                            "checked against the PyTorch reference first (RoiPool: exact). "
                            "numba_speedup = ORT MaxRoiPool median / numba median.")},
        "roi_pool": roi_rows,
        "convlstm": cell_rows,
        "decision": {
            "rule": f"use numba where numba_speedup (ORT MaxRoiPool ms / numba ms) >= {MIN_SPEEDUP}",
            "roi_pool_numba_at_tracker_sizes": all(r["use_numba"] for r in roi_rows if r["tracker_size"]),
            "roi_pool_measured_speedup": {f"{r['channels']},{r['height']},{r['width']},{r['pooled_shape'][0]},"
                                          f"{r['pooled_shape'][1]}": r["numba_speedup"] for r in roi_rows},
            "convlstm_numba": any(r["ship_numba"] for r in cell_rows),
        },
    }
    out = Path(args.out)
    write_atomic(out / "ops.json", json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    write_atomic(out / "ops.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
