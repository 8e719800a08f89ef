"""GPU check of both CUDA kernels, in one call (a script, not a test): on a machine with an NVIDIA GPU, nvcc,
PyTorch with CUDA and compute-sanitizer (no TensorRT needed).

1. builds both launchers (kernels/*/*.cu) for this GPU's architecture: a shared library for ctypes
   (bench/gpu/kernels_shim.cu) and a stand-alone driver for compute-sanitizer (bench/gpu/kernels_driver.cu);
   ptxas registers / spills per kernel;
2. runs them on the GPU over the named edge cases the host tests use (edge.kernels.cases) against the PyTorch
   reference on the GPU: RoiPool exact, ConvLSTM fp32 within 1e-5, fp16 (half I/O, fp32 cell state) within
   1e-3 (float64 reference on the same inputs; TF32 off);
3. runs the same cases under ``compute-sanitizer --tool memcheck`` and ``--tool racecheck``;
4. times the ConvLSTM kernel against PyTorch's cuDNN conv + pointwise gates at our classifier's and Ego-RNN's
   sizes (fp32 with TF32 off, and fp16), and RoiPool at the tracker's sizes (CUDA events, warm-up, rows
   interleaved, medians).

Writes ``OUT/gpu_kernels.json`` and ``.md`` (atomically) and prints the table. Exit code 0 when every check
passed, 1 when one failed, 2 when there is no GPU (one line; ``--compile-only`` needs nvcc only).

    python bench/gpu_kernels.py [--out bench/results] [--arch 90] [--compile-only] [--no-sanitizer] [--quick]

Runs from a source checkout (imports ``kernels`` from the repository root; the package need not be installed).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from kernels import build_tools  # noqa: E402
from kernels.cases import (CELL_BENCH_SIZES, CELL_CASES, HUGE_POOLED, ROI_CASES, CellCase, cell_inputs,  # noqa: E402
                           huge_rois, make_rois)

GPU_DIR = Path(__file__).resolve().parent / "gpu"
SOURCES = [build_tools.KERNELS_DIR / "roi_pool" / "roi_pool.cu", build_tools.KERNELS_DIR / "convlstm" / "convlstm.cu"]
SEED = 20261201
TOL = {"fp32": 1e-5, "fp16": 1e-3}
BUDGET_S = 7 * 60             # stop timing rows (never checks) when the run approaches 8 minutes


class NoGpu(Exception):
    """No usable CUDA GPU (or no PyTorch with CUDA) on this machine."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder for the JSON and Markdown")
    p.add_argument("--build-dir", type=Path, default=None, help="build folder (default: OUT/gpu_build)")
    p.add_argument("--arch", default=None, help="sm architecture to build for, e.g. 90 (default: this GPU's)")
    p.add_argument("--compile-only", action="store_true",
                   help="build the library and the sanitizer driver, write the case files and stop (no GPU needed)")
    p.add_argument("--no-sanitizer", action="store_true", help="skip the compute-sanitizer runs")
    p.add_argument("--quick", action="store_true", help="fewer timing rounds")
    p.add_argument("--list-cases", action="store_true", help="print the named cases and exit")
    a = p.parse_args(argv)
    if a.arch is not None and not a.arch.isdigit():
        p.error(f"--arch must be digits like 87 or 90, got {a.arch!r}")
    if a.compile_only and a.arch is None:
        p.error("--compile-only needs --arch (there may be no GPU to ask)")
    return a


def case_names() -> list[str]:
    """Every named case the checks run, in order: RoiPool fp32/fp16, the clamped boxes, ConvLSTM fp32/fp16."""
    roi = [f"roi/{c.name}/{d}" for c in ROI_CASES for d in ("fp32", "fp16")] + ["roi/huge_boxes/fp32"]
    cell = [f"cell/{c.name}/{d}" for c in CELL_CASES for d in ("fp32", "fp16")]
    return roi + cell


def case_inputs():
    """(name, kind, dtype, arrays, dims) for every case, numpy float32, deterministic (SEED)."""
    rng = np.random.default_rng(SEED)
    for c in ROI_CASES:
        n, ch, h, w = c.shape
        x = rng.standard_normal(c.shape).astype(np.float32)
        rois = make_rois(rng, c.rois, n, h, w, c.spatial_scale)
        for d in ("fp32", "fp16"):
            xd = (x * 100).astype(np.float16).astype(np.float32) if d == "fp16" else x
            yield f"roi/{c.name}/{d}", "roi", d, (xd, rois), (n, ch, h, w, c.rois, *c.pooled, c.spatial_scale)
    x = rng.standard_normal((2, 3, 9, 13)).astype(np.float32)
    rois = huge_rois(2)
    yield "roi/huge_boxes/fp32", "roi", "fp32", (x, rois), (2, 3, 9, 13, len(rois), *HUGE_POOLED, 1.0)
    for c in CELL_CASES:
        arrays = cell_inputs(rng, c)
        for d in ("fp32", "fp16"):
            if d == "fp16":      # x, h, W, B rounded to half; c stays float32
                arrays = tuple(a if i == 2 else a.astype(np.float16).astype(np.float32) for i, a in enumerate(arrays))
            yield f"cell/{c.name}/{d}", "cell", d, arrays, c[1:]


def write_manifest(folder: Path) -> Path:
    """The driver's manifest + one raw float32 file per case (the same inputs the PyTorch check uses)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (name, kind, dtype, arrays, dims) in enumerate(case_inputs()):
        f = folder / f"case{i:03d}.f32"
        np.concatenate([a.ravel() for a in arrays]).astype(np.float32).tofile(f)
        half = int(dtype == "fp16")
        lines.append(" ".join([kind, name.replace("/", ":"), str(half), *map(str, dims), str(f)]))
    manifest = folder / "manifest.txt"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def build(arch: str, build_dir: Path) -> dict:
    """Both launchers compiled once for sm_<arch> (ptxas per kernel), linked into the shared library (ctypes)
    and the sanitizer driver."""
    t = time.perf_counter()
    objects, text = [], ""
    for src in SOURCES:
        obj, out = build_tools.nvcc_link([src], build_dir, src.stem, [arch], kind="object")
        objects.append(obj)
        text += out
    lib, _ = build_tools.nvcc_link([GPU_DIR / "kernels_shim.cu", *objects], build_dir, "edge_kernels", [arch])
    driver, _ = build_tools.nvcc_link([GPU_DIR / "kernels_driver.cu", *objects], build_dir, "edge_kernels_driver",
                                      [arch], kind="exe")
    ptxas = [{k: r[k] for k in ("kernel", "arch", "registers", "spill_stores", "spill_loads", "stack_bytes")}
             for r in build_tools.ptxas_report(text)]
    return {"arch": f"sm_{arch}", "library": str(lib), "driver": str(driver), "ptxas": ptxas,
            "seconds": round(time.perf_counter() - t, 1)}


def torch_cuda():
    """PyTorch with a usable CUDA device, or NoGpu with the reason."""
    try:
        import torch
    except ImportError:
        raise NoGpu("PyTorch is not installed") from None
    if not torch.cuda.is_available():
        raise NoGpu(f"PyTorch {torch.__version__} sees no CUDA device")
    return torch


# -- GPU checks -----------------------------------------------------------------------------------------------
def _load(lib_path: str):
    import ctypes
    lib = ctypes.CDLL(lib_path)
    p, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    lib.edge_roi_pool.argtypes = [i, p, p, p, i, i, i, i, i, i, i, f, p]
    lib.edge_convlstm.argtypes = [i, p, p, p, p, p, p, p, i, i, i, i, i, i, p]
    return lib


def _roi(torch, lib, half, x, rois, dims):
    n, c, h, w, r, ph, pw, scale = dims
    out = torch.empty((r, c, ph, pw), dtype=x.dtype, device="cuda")
    err = lib.edge_roi_pool(half, x.data_ptr(), rois.data_ptr(), out.data_ptr(), n, c, h, w, r, ph, pw, scale,
                            torch.cuda.current_stream().cuda_stream)
    return out, err


def _cell(torch, lib, half, x, h, c, wt, b, dims, out=None):
    n, cx, ch, hh, ww, k = dims
    ho, co = out or (torch.empty((n, ch, hh, ww), dtype=x.dtype, device="cuda"),
                     torch.empty((n, ch, hh, ww), dtype=torch.float32, device="cuda"))
    err = lib.edge_convlstm(half, x.data_ptr(), h.data_ptr(), c.data_ptr(), wt.data_ptr(), b.data_ptr(),
                            ho.data_ptr(), co.data_ptr(), n, cx, ch, hh, ww, k, torch.cuda.current_stream().cuda_stream)
    return ho, co, err


def check_cases(torch, lib) -> list[dict]:
    from kernels.convlstm.reference import convlstm_cell_math
    from kernels.roi_pool.reference import roi_pool_math
    rows = []
    for name, kind, dtype, arrays, dims in case_inputs():
        half = int(dtype == "fp16")
        tdt = torch.float16 if half else torch.float32
        row = {"case": name}
        if kind == "roi":
            x = torch.from_numpy(arrays[0]).cuda().to(tdt)
            rois = torch.from_numpy(arrays[1]).cuda()
            out, err = _roi(torch, lib, half, x, rois, dims)
            torch.cuda.synchronize()
            with torch.device("cuda"):
                ref = roi_pool_math(x.float(), rois, dims[5:7], dims[7]).to(tdt)
            mismatched = int((out != ref).sum()) if err == 0 else None
            row.update(launch=err, mismatched=mismatched, ok=err == 0 and mismatched == 0)
        else:
            x, h, c, wt, b = (torch.from_numpy(a).cuda() for a in arrays)
            xs = [t.to(tdt) for t in (x, h, wt, b)]
            ho, co, err = _cell(torch, lib, half, xs[0], xs[1], c, xs[2], xs[3], dims)
            torch.cuda.synchronize()
            h_ref, c_ref = convlstm_cell_math(*(t.double() for t in (x, h, c, wt, b)))
            tol = TOL[dtype]
            def excess(got, want, ctol):     # max |got - want| / (atol + rtol |want|): <= 1 passes
                return float(((got.double() - want).abs() / (ctol + ctol * want.abs())).max())
            eh, ec = (excess(ho, h_ref, tol), excess(co, c_ref, TOL["fp32"])) if err == 0 else (None, None)
            row.update(launch=err, h_err_over_tol=eh, c_err_over_tol=ec,
                       h_max_abs_err=float((ho.double() - h_ref).abs().max()) if err == 0 else None,
                       ok=err == 0 and eh <= 1.0 and ec <= 1.0)
        rows.append(row)
    return rows


def run_sanitizer(driver: str, manifest: Path) -> dict:
    """memcheck and racecheck over every case in the stand-alone driver."""
    tool = shutil.which("compute-sanitizer") or next(
        (str(p) for p in (Path("/usr/local/cuda/bin/compute-sanitizer"),
                          Path("/usr/local/cuda/compute-sanitizer/compute-sanitizer")) if p.is_file()), None)
    if tool is None:
        return {"ok": False, "error": "compute-sanitizer not found"}
    out = {}
    for name, extra in (("memcheck", ["--leak-check", "full"]), ("racecheck", ["--racecheck-report", "all"])):
        t = time.perf_counter()
        proc = subprocess.run([tool, "--tool", name, "--error-exitcode", "10", *extra, driver, str(manifest)],
                              capture_output=True, text=True, timeout=240)
        text = proc.stdout + proc.stderr
        summary = [ln.strip() for ln in text.splitlines() if "SUMMARY" in ln]
        out[name] = {"returncode": proc.returncode, "summary": summary, "seconds": round(time.perf_counter() - t, 1),
                     "ok": proc.returncode == 0, "tail": text.splitlines()[-12:]}
    out["ok"] = all(v["ok"] for v in out.values() if isinstance(v, dict))
    return out


def _time(torch, fns: dict, quick: bool) -> dict:
    """Median µs per call of each callable: CUDA events around blocks of calls, blocks interleaved."""
    rounds, per = (5, 10) if quick else (15, 20)
    for f in fns.values():
        for _ in range(5):
            f()
    torch.cuda.synchronize()
    samples = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(per):
                f()
            b.record()
            b.synchronize()
            samples[k].append(a.elapsed_time(b) * 1e3 / per)
    return {k: round(statistics.median(v), 2) for k, v in samples.items()}


def time_cells(torch, lib, quick: bool, deadline: float) -> list[dict]:
    import torch.nn.functional as F
    torch.backends.cudnn.benchmark = True
    rows, rng = [], np.random.default_rng(SEED + 1)
    for name, n, cx, ch, hw, k in CELL_BENCH_SIZES:
        case = CellCase(name, n, cx, ch, hw, hw, k)
        x, h, c, wt, b = (torch.from_numpy(a).cuda() for a in cell_inputs(rng, case))
        for dtype in ("fp32", "fp16"):
            if time.perf_counter() > deadline:
                rows.append({"size": name, "dtype": dtype, "skipped": "time budget"})
                continue
            half = int(dtype == "fp16")
            tdt = torch.float16 if half else torch.float32
            xs, hs, ws, bs = (t.to(tdt) for t in (x, h, wt, b))

            outs = (torch.empty_like(hs), torch.empty_like(c))    # preallocated: the kernel alone

            def ours():
                _cell(torch, lib, half, xs, hs, c, ws, bs, case[1:], outs)

            def pytorch():
                z = F.conv2d(torch.cat([xs, hs], 1), ws, bs, padding=k // 2)
                zi, zf, zo, zg = z.chunk(4, 1)
                c2 = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zg)
                return torch.sigmoid(zo) * torch.tanh(c2), c2

            torch.backends.cudnn.allow_tf32 = False
            ms = _time(torch, {"edge_kernel_us": ours, "pytorch_cudnn_us": pytorch}, quick)
            row = {"size": name, "dtype": dtype, **ms,
                   "speedup_vs_pytorch": round(ms["pytorch_cudnn_us"] / ms["edge_kernel_us"], 2)}
            if dtype == "fp32":          # what PyTorch does by default on Ampere+ (TF32 convolutions), for scale
                torch.backends.cudnn.allow_tf32 = True
                row["pytorch_cudnn_tf32_us"] = _time(torch, {"t": pytorch}, quick)["t"]
                torch.backends.cudnn.allow_tf32 = False
            rows.append(row)
    return rows


def time_roi_pool(torch, lib, quick: bool, deadline: float) -> list[dict]:
    from kernels.roi_pool.reference import roi_pool_math
    rows, rng = [], np.random.default_rng(SEED + 2)
    for c in ROI_CASES:
        if not c.name.startswith("sint") or time.perf_counter() > deadline:
            continue
        n, ch, h, w = c.shape
        x = torch.from_numpy(rng.standard_normal(c.shape).astype(np.float32)).cuda()
        rois = torch.from_numpy(make_rois(rng, c.rois, n, h, w, c.spatial_scale)).cuda()
        dims = (n, ch, h, w, c.rois, *c.pooled, c.spatial_scale)

        def reference():
            with torch.device("cuda"):
                roi_pool_math(x, rois, c.pooled, c.spatial_scale)

        ms = _time(torch, {"edge_kernel_us": lambda: _roi(torch, lib, 0, x, rois, dims),
                           "pytorch_reference_us": reference}, quick)
        rows.append({"size": c.name, "rois": c.rois, "dtype": "fp32", **ms})
    return rows


# -- report ---------------------------------------------------------------------------------------------------
def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def markdown(rep: dict) -> str:
    lines = [f"# bench/gpu_kernels.py — {rep['date']}", "", f"Device: {rep.get('device', {}).get('name', 'none')} "
             f"({rep['build']['arch']}); status: **{rep['status']}**", "",
             "| kernel | arch | registers | spill stores | spill loads |", "|---|---|---|---|---|"]
    for r in rep["build"]["ptxas"]:
        lines.append(f"| `{r['kernel'].split('(')[0]}` | {r['arch']} | {r['registers']} | {r['spill_stores']} | "
                     f"{r['spill_loads']} |")
    if rep.get("checks"):
        bad = [r["case"] for r in rep["checks"] if not r["ok"]]
        lines += ["", f"Correctness vs PyTorch on the GPU: {len(rep['checks']) - len(bad)}/{len(rep['checks'])} "
                      f"cases pass" + (f"; failed: {', '.join(bad)}" if bad else "")]
    if rep.get("sanitizer"):
        for tool in ("memcheck", "racecheck"):
            s = rep["sanitizer"].get(tool)
            if s:
                lines.append(f"- compute-sanitizer {tool}: {'ok' if s['ok'] else 'FAILED'} ({'; '.join(s['summary'])})")
    if rep.get("timing"):
        lines += ["", "| ConvLSTM size | dtype | edge kernel µs | PyTorch cuDNN µs | speed-up | cuDNN TF32 µs |",
                  "|---|---|---|---|---|---|"]
        for r in rep["timing"]["convlstm"]:
            if "skipped" in r:
                continue
            lines.append(f"| {r['size']} | {r['dtype']} | {r['edge_kernel_us']} | {r['pytorch_cudnn_us']} | "
                         f"{r['speedup_vs_pytorch']}x | {r.get('pytorch_cudnn_tf32_us', '')} |")
        lines += ["", "| RoiPool size | rois | edge kernel µs | PyTorch reference µs |", "|---|---|---|---|"]
        for r in rep["timing"]["roi_pool"]:
            lines.append(f"| {r['size']} | {r['rois']} | {r['edge_kernel_us']} | {r['pytorch_reference_us']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list_cases:
        print("\n".join(case_names()))
        return 0
    start = time.perf_counter()
    rep = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
           "cases": case_names()}
    torch = None
    if not args.compile_only:
        try:
            torch = torch_cuda()
        except NoGpu as e:
            print(f"bench/gpu_kernels.py: no CUDA GPU here ({e}): run it on a machine with an NVIDIA GPU, or "
                  f"use --compile-only --arch N", file=sys.stderr)
            return 2
        major, minor = torch.cuda.get_device_capability()
        rep["device"] = {"name": torch.cuda.get_device_name(), "compute_capability": f"{major}.{minor}",
                         "torch": torch.__version__, "cuda": torch.version.cuda,
                         "cudnn": torch.backends.cudnn.version()}
        args.arch = args.arch or f"{major}{minor}"
    if build_tools.find_nvcc() is None:
        print("bench/gpu_kernels.py: nvcc not found (install the CUDA toolkit or set CUDA_HOME)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    build_dir = args.build_dir or args.out / "gpu_build"
    rep["build"] = build(args.arch, build_dir)
    manifest = write_manifest(build_dir / "cases")
    rep["manifest"] = str(manifest)
    ok = True
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        lib = _load(rep["build"]["library"])
        rep["checks"] = check_cases(torch, lib)
        ok = all(r["ok"] for r in rep["checks"])
        if not args.no_sanitizer:
            rep["sanitizer"] = run_sanitizer(rep["build"]["driver"], manifest)
            ok = ok and rep["sanitizer"]["ok"]
        deadline = start + BUDGET_S
        rep["timing"] = {"convlstm": time_cells(torch, lib, args.quick, deadline),
                         "roi_pool": time_roi_pool(torch, lib, args.quick, deadline)}
    rep["status"] = "compiled" if torch is None else ("pass" if ok else "fail")
    rep["seconds"] = round(time.perf_counter() - start, 1)
    _write(args.out / "gpu_kernels.json", json.dumps(rep, indent=1) + "\n")
    md = markdown(rep)
    _write(args.out / "gpu_kernels.md", md)
    print(md)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
