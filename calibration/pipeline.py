"""``edge calibrate`` end to end: calibration set (made or reused) -> per network Q/DQ graphs for each backend
flavour with the sensitivity fallback, an fp16-typed graph, CPU latency fp32 vs int8, and ``report.json``.

Outputs in ``DIR/calibration/`` (all written atomically):
  ``<network>.int8.ort.onnx``, ``<network>.int8.trt.onnx``, ``<network>.fp16.onnx``,
  ``calibset-<key>.npz`` (the reusable calibration set), ``ranges/<network>.<method>.<key>.json``,
  ``report.json`` -- ``report["networks"][name]["int8_pays"]`` says whether int8 beat fp32 on this CPU.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from pathlib import Path
from typing import Callable, Sequence

import onnx
import onnxruntime as ort

from edge.fileio import atomic_write_json, read_json
from edge.runtime.precision import PAYS_RATIO, int8_pays
from edge.timing import median_ms

from .collect import collect, task_of
from .dataset import data_key, find_sources, load_set, save_set, split
from .fallback import Tolerance, compare, run_all, search, session
from .fp16 import write_fp16
from .quantize import FLAVOURS, METHODS, qdq_summary

REPORT_FORMAT = "edge-calibration-report/1"
# outputs the tolerance is checked on, where not all are consumed downstream: the classifier encoder's
# ``attention`` map is only drawn for display (edge.classify.runtime.attention_map); ``features`` feed the step.
CHECKED_OUTPUTS = {"classifier": {"encoder": ("features",)}}
# default tolerances (mean correlation with fp32): the encoder's features feed a recurrent cell whose logits
# have small margins; 0.99 gave 92 % top-1 agreement with PyTorch, 0.998 gave 98 % (bench/calibration.py)
DEFAULT_TOLERANCE = {"*": 0.99, "classifier.encoder": 0.998}


def cpu_runners(path: str | Path, name: str, net: dict, feeds: dict, threads: int = 2) -> dict[str, Callable]:
    """The CPU engine forms ``edge build`` chooses between: the whole graph in onnxruntime, and (graphs with
    ``edge.ops::RoiPool``) onnxruntime segments with the numba ROI kernel between them."""
    from edge.runtime.ort_backend import SplitEngine, net_specs
    from edge.runtime.ort_backend import session as ort_session
    from edge.runtime.split import has_roi_pool, split_at_roi_pool
    sess = session(path, threads)
    f = {i.name: feeds[i.name] for i in sess.get_inputs()}
    out = {"whole": lambda: sess.run(None, f)}
    model = onnx.load(str(path))
    if has_roi_pool(model):
        ins, outs = net_specs(net)
        stages, segs = split_at_roi_pool(model)
        sessions = {k: ort_session(m.SerializeToString(), threads, optimized_offline=False) for k, m in segs.items()}
        eng = SplitEngine(name, stages, sessions, ins, outs)
        out["split"] = lambda: eng.run(feeds)
    return out


def measure_speed(src: Path, int8: Path, name: str, net: dict, feeds: dict, threads: int = 2) -> dict:
    """fp32 vs int8 on this CPU, each in its best engine form; ``int8_pays`` if int8 wins by PAYS_RATIO."""
    runners = {f"fp32_{k}": fn for k, fn in cpu_runners(src, name, net, feeds, threads).items()}
    runners.update({f"int8_{k}": fn for k, fn in cpu_runners(int8, name, net, feeds, threads).items()})
    lat = median_ms(runners, warmup_runs=5, warmup_s=0.0, min_runs=25, max_runs=25, min_s=0.0, settle=0, block=1)
    fp32 = min(v for k, v in lat.items() if k.startswith("fp32"))
    best8 = min(v for k, v in lat.items() if k.startswith("int8"))
    return {"latency_ms": {k: round(v, 3) for k, v in lat.items()}, "fp32_ms": round(fp32, 3),
            "int8_ms": round(best8, 3), "int8_speedup": round(fp32 / best8, 3),
            "int8_pays": int8_pays(best8, fp32), "threads": threads,
            "how": "onnxruntime CPU (whole graph; and segments + numba ROI kernel where the graph has RoiPool), "
                   "median of 25 interleaved runs after 5 warm-up, held-out calibration sample 0; "
                   "fp32_ms / int8_ms = the faster form of each"}


def calibration_set(export_dir: Path, manifest: dict, data: Sequence[str], frames: int, seed: int,
                    progress: bool, say: Callable[[str], None]) -> tuple[dict, str, Path, bool]:
    """(samples per network, key, path, reused?)"""
    sources = find_sources(data)
    nets = {n: v.get("sha256", "") for n, v in manifest["networks"].items()}
    key = data_key(sources, frames, seed, {"model": manifest.get("model"), "networks": nets})
    path = export_dir / "calibration" / f"calibset-{key}.npz"
    if path.is_file():
        calib, _ = load_set(path, key)
        say(f"reusing calibration set {path}")
        return calib, key, path, True
    calib = collect(export_dir, manifest, sources, frames, seed, progress)
    save_set(path, calib, key, {"model": manifest.get("model"), "seed": seed, "frames": frames,
                                "data": [str(s.path) for s in sources]})
    say(f"calibration set: {', '.join(f'{n} {len(v)}' for n, v in calib.items())} samples -> {path}")
    return calib, key, path, False


def calibrate(export_dir: str | Path, data: Sequence[str], frames: int = 96, method: str = "percentile", seed: int = 0,
              tolerance: Tolerance | dict[str, Tolerance] | None = None, flavours: Sequence[str] = ("ort", "trt"), fp16: bool = True,
              keep_float: Sequence[str] = (), networks: Sequence[str] | None = None, progress: bool = True,
              say: Callable[[str], None] = print) -> dict:
    export_dir = Path(export_dir)
    manifest = read_json(export_dir / "model.json", "export manifest (run edge export first)")
    if "networks" not in manifest:
        raise ValueError(f"{export_dir / 'model.json'} is not an edge export manifest (no 'networks')")
    if method not in METHODS:
        raise ValueError(f"unknown --method {method!r} (have: {', '.join(METHODS)})")
    bad = [f for f in flavours if f not in FLAVOURS]
    if bad:
        raise ValueError(f"unknown flavour(s) {bad} (have: {', '.join(FLAVOURS)})")
    task = task_of(manifest)
    names = list(networks or manifest["networks"])
    unknown = [n for n in names if n not in manifest["networks"]]
    if unknown:
        raise ValueError(f"no network(s) {unknown} in {export_dir} (have: {', '.join(manifest['networks'])})")
    if tolerance is None:   # defaults: per task.network where measured, else "*"
        tols = {"*": Tolerance(DEFAULT_TOLERANCE["*"])}
        tols.update({k.split(".", 1)[1]: Tolerance(v) for k, v in DEFAULT_TOLERANCE.items()
                     if k.startswith(f"{task}.")})
    else:
        tols = tolerance if isinstance(tolerance, dict) else {"*": tolerance}
    tol_of = {n: tols.get(n, tols.get("*", Tolerance())) for n in names}
    tol_of = {n: t if t.outputs else dataclasses.replace(t, outputs=CHECKED_OUTPUTS.get(task, {}).get(n))
              for n, t in tol_of.items()}
    bad = [k for k in tols if k != "*" and k not in manifest["networks"]]
    if bad:
        raise ValueError(f"--tolerance names unknown network(s) {bad} (have: {', '.join(manifest['networks'])})")
    out = export_dir / "calibration"
    calib, key, set_path, reused = calibration_set(export_dir, manifest, data, frames, seed, progress, say)

    report = {"format": REPORT_FORMAT, "model": manifest.get("model"), "task": task, "method": method,
              "seed": seed, "frames": frames, "data": [str(d) for d in data], "calibration_set": set_path.name,
              "calibration_set_reused": reused, "tolerance": {n: t.__dict__ for n, t in tol_of.items()}, "pays_ratio": PAYS_RATIO,
              "onnxruntime": ort.__version__, "onnx": onnx.__version__,
              "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "networks": {}}
    for name in names:
        src = export_dir / manifest["networks"][name].get("file", f"{name}.onnx")
        cal, held = split(calib[name])
        ranges = out / "ranges" / f"{name}.{method}.{key}.json"
        entry = {"source": src.name, "samples": {"calibration": len(cal), "held_out": len(held)}, "int8": {},
                 "files": {}}
        t0 = time.perf_counter()
        ranking = None
        for fl in flavours:
            dst = out / f"{name}.int8.{fl}.onnx"
            e = search(src, dst, fl, method, ranges, cal, held, tol_of[name], keep_float,
                       progress=lambda m: say(f"  {name}: {m}"), ranking=ranking)
            ranking = ranking or e["sensitivity"] or None
            e["backend"] = FLAVOURS[fl].backend
            e["qdq"] = qdq_summary(onnx.load(str(dst)))
            entry["int8"][fl] = e
            entry["files"][f"int8_{fl}"] = dst.name
            kept = [k["node"] for k in e["kept_float"]]
            t = tol_of[name]
            say(f"{name} int8 {fl}: corr vs fp32 {t.value(e['all_quantized']):.4f} (all int8) -> "
                f"{t.value(e['final']):.4f}, {len(kept)} layer(s) kept float"
                + ("" if e["tolerance_met"] else " -- TOLERANCE NOT MET"))
        if fp16:
            dst = out / f"{name}.fp16.onnx"
            e = write_fp16(src, dst)
            e["accuracy"] = compare(run_all(session(src), held), run_all(session(dst), held))
            entry["fp16"] = e
            entry["files"]["fp16"] = dst.name
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        if "ort" in flavours:
            sp = measure_speed(src, out / f"{name}.int8.ort.onnx", name, manifest["networks"][name], held[0])
            entry["speed"] = sp
            entry["int8_speedup"], entry["int8_pays"] = sp["int8_speedup"], sp["int8_pays"]
            say(f"{name}: fp32 {sp['fp32_ms']:.2f} ms, int8 {sp['int8_ms']:.2f} ms on this CPU -> "
                f"x{sp['int8_speedup']:.2f}" + ("" if sp["int8_pays"] else " (int8 does not pay here: keep fp32)"))
        report["networks"][name] = entry
    old = out / "report.json"
    if networks and old.is_file():  # a subset run keeps the other networks' entries
        try:
            prev = read_json(old, "calibration report")
            if prev.get("format") == REPORT_FORMAT:
                report["networks"] = {**{k: v for k, v in prev.get("networks", {}).items() if k not in names},
                                      **report["networks"]}
        except ValueError:
            pass
    atomic_write_json(out / "report.json", report)
    say(f"report: {out / 'report.json'}")
    return report
