"""``edge demo``: the main job on a fresh machine (``make demo``), everything under ``out/demo/``.

Stages, each a call of the public API (``edge.api``) with its log in ``out/demo/logs/``: export both
sample models -> calibrate (int8) -> build CPU engines (fp32, int8) -> ``edge.run`` on the real clip
``bikes.mp4`` with both models (overlay video + events; in a fresh process, so the device loop runs without
torch, as on a device) -> ``edge.bench`` (PyTorch reference, plain onnxruntime baseline, engines) -> a short
table. Exit code 0 when every stage ran, 1 when one failed; benchmark rows outside their tolerance are
printed as FAIL lines (``edge bench`` alone exits 1).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

MODELS = ("tracker", "classifier")
# bikes.mp4 (640x272) has scene cuts (frames 30, 71-76, 97-103, 137, 187, 242); the demo runs the longest
# continuous shot, frames 187-241 (the camera pans along a parked bike, pedestrians walk in front of it),
# with the init box on the bike's grey bag in frame 187 (hand-checked)
BIKES_SEGMENT = (187, 55)          # first frame, frames
BIKES_INIT_BOX = "293,53,69,84"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--reuse", action="store_true",
                   help="keep exports, calibration and engines already in the output folder")
    p.add_argument("--no-int8", action="store_true", help="skip calibration and int8 engines")
    p.add_argument("--frames", type=int, default=None, help="frames of the bikes.mp4 shot for edge run (default all 55)")
    p.add_argument("--bench", default="quick", choices=("quick", "full"),
                   help="quick: 12 of the 24 generated sequences, 60 clips, 200 recorded inputs per network, at most 400 frames per held-back video (default); full: edge bench defaults")


@dataclass
class Demo:
    out: Path
    reuse: bool = False
    stages: list = field(default_factory=list)     # (name, status, seconds, detail)
    failed: bool = False

    def log_path(self, name: str) -> Path:
        return self.out / "logs" / f"{name}.log"

    def stage(self, name: str, fn: Callable, *args, ok: Callable[[object], bool] = lambda r: True, **kwargs):
        """Run ``fn(*args, log=..., **kwargs)`` with its log in ``logs/<name>.log``; records the stage.
        Returns its result, or None when it raised (the stage failed; the demo goes on)."""
        log = self.log_path(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"[demo] {name}", flush=True)
        t0 = time.perf_counter()
        with open(log, "w") as f:
            def say(msg: str) -> None:
                f.write(f"{msg}\n")
                f.flush()
            try:
                result = fn(*args, log=say, **kwargs)
                status = "ok" if ok(result) else "check failed"
            except Exception as e:  # noqa: BLE001 - a failed stage is reported, the demo goes on
                f.write(traceback.format_exc())
                result, status = None, f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        dt = time.perf_counter() - t0
        self.stages.append((name, status, dt, str(log)))
        print(f"[demo] {name}: {status} in {dt:.0f} s (log {log})", flush=True)
        if status.startswith("failed"):
            self.failed = True
        return result

    def skip(self, name: str, why: str) -> None:
        print(f"[demo] {name}: skipped ({why})", flush=True)
        self.stages.append((name, "skipped", 0.0, why))


def _exists(path: Path, marker: str) -> bool:
    return (path / marker).is_file()


def run(args: argparse.Namespace) -> int:
    import edge.api as api
    t_start = time.perf_counter()
    out = Path(args.out)
    if not args.reuse:   # a fresh run: no stale export/calibration/engines from an earlier one
        for sub in ("export", "engines", "run", "bench"):
            shutil.rmtree(out / sub, ignore_errors=True)
    for sub in ("export", "engines", "run", "bench", "data", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    d = Demo(out, args.reuse)

    # 1. export both sample models
    exports = {}
    for m in MODELS:
        path = out / "export" / m
        if args.reuse and _exists(path, "model.json"):
            d.skip(f"export-{m}", f"reusing {path}")
        elif d.stage(f"export-{m}", api.export, m, path) is None:
            continue
        exports[m] = path

    # 2. calibration (int8)
    calibrated = {}
    for m, path in exports.items():
        if args.no_int8:
            break
        if args.reuse and (path / "calibration" / "report.json").is_file():
            d.skip(f"calibrate-{m}", f"reusing {path / 'calibration'}")
            calibrated[m] = True
            continue
        cal = d.stage(f"calibrate-{m}", api.calibrate, path, flavours=("ort",), fp16=False,
                      ok=lambda c: not c.tolerance_missed)
        calibrated[m] = cal is not None     # missed tolerances are reported in the log, engines still usable

    # 3. CPU engines: fp32, and int8 when calibrated
    engines: dict[str, dict[str, Path]] = {m: {} for m in MODELS}
    for m, path in exports.items():
        for precision in ("fp32", "int8"):
            if precision == "int8" and not calibrated.get(m):
                continue
            eng = out / "engines" / f"{m}-cpu-{precision}"
            if args.reuse and _exists(eng, "fingerprint.json"):
                d.skip(f"build-{m}-{precision}", f"reusing {eng}")
                engines[m][precision] = eng
            elif d.stage(f"build-{m}-{precision}", api.build, path, "cpu", precision, eng) is not None:
                engines[m][precision] = eng

    # 4. the loop on a real clip with both models (best precision built)
    run_info = _run_loop(d, engines, args.frames)

    # 5. benchmark every engine against PyTorch and the plain-onnxruntime baseline
    all_engines = [p for m in MODELS for p in engines[m].values()]
    bench_json = out / "bench" / "report.json"
    ran_bench = False
    if all_engines:
        # 12 of the 24 hard tracking sequences (every attribute in 4-5 of them) and at most 400 frames of each
        # held-back real video (bikes.mp4 whole, demo.mp4's first 16 s) keep the demo in budget. Numerics on 200
        # recorded inputs per network (edge bench's default), not 60: the int8 search network's best box agrees
        # with PyTorch's on 98.6 % of all its calls in that run, and 60 samples hold 2 misses (0.967 < 0.97)
        # about one run in five. The anchors a user would pick, CSRT and KCF; not MIL (the slowest, 17 FPS here,
        # about 2 of the demo's 14 minutes on an AVX2 machine once 9 real shots came in, and random run to run)
        quick = dict(max_clips=60, samples=200, duration=1.5, max_sequences=12, max_frames=400,
                     anchors=("CSRT", "KCF")) \
            if args.bench == "quick" else {}
        rep = d.stage("bench", api.bench, all_engines, json=bench_json, markdown=out / "bench" / "report.md",
                      plots=out / "bench" / "plots", cache=out / "data", ok=lambda r: r.passed, **quick)
        ran_bench = rep is not None
    wall = time.perf_counter() - t_start
    print(summary(d, bench_json if ran_bench else None, run_info, wall), flush=True)
    return 1 if d.failed else 0


def _run_in_child(kwargs: dict):
    """``edge.run`` in this (fresh) process: the device loop without torch in memory."""
    import edge.api
    return edge.api.run(**kwargs)


def run_fresh(log=None, **kwargs):  # noqa: ARG001 - a demo stage (its log holds nothing: see the summary)
    """``edge.api.run(**kwargs)`` in a fresh Python process (spawned); returns its ``RunSummary``."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(_run_in_child, kwargs).result()


def _run_loop(d: Demo, engines: dict, frames: int | None) -> dict:
    """``edge.run`` on the continuous shot of bikes.mp4 with the tracker and the classifier (int8 where built,
    else fp32)."""
    from edge.assets import video_clip
    clip = _segment(video_clip("bikes.mp4"), *BIKES_SEGMENT, d.out / "data" / "bikes_shot.mp4")
    pick = {m: engines[m].get("int8") or engines[m].get("fp32") for m in MODELS}
    if not any(pick.values()):
        d.skip("run", "no engines were built")
        return {}
    video, events = d.out / "run" / "bikes_overlay.mp4", d.out / "run" / "bikes_events.jsonl"
    video.parent.mkdir(parents=True, exist_ok=True)
    kw = dict(sources=str(clip), out_video=str(video), events=str(events), max_frames=frames)
    if pick["tracker"]:
        kw.update(tracker=str(pick["tracker"]), init_box=BIKES_INIT_BOX)
    if pick["classifier"]:
        kw["classifier"] = str(pick["classifier"])
    res = d.stage("run", run_fresh, **kw)
    if res is None:
        return {}
    s = res.streams[0]
    return {"video": res.videos[0] if res.videos else None, "events": res.events_path,
            "engines": {m: str(p) for m, p in pick.items() if p}, "processed": s.processed, "captured": s.captured,
            "fps": s.fps, "alarms": res.alarms(), "torch_imported": "yes" if res.torch_imported else "no"}


def _segment(src: Path, start: int, count: int, dst: Path) -> Path:
    """Frames ``start .. start + count - 1`` of ``src`` as their own clip (mp4v), written once."""
    if dst.is_file():
        return dst
    import cv2
    from edge.data.sequences import read_video
    frames = read_video(src, start, start + count)
    if not frames:
        raise FileNotFoundError(f"{src}: no frames {start}..{start + count - 1}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.tmp{dst.suffix}")
    w = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, frames[0].shape[1::-1])
    for f in frames:
        w.write(f)
    w.release()
    tmp.replace(dst)
    return dst


def _fmt(v, f="{:.1f}"):
    return "—" if v is None else f.format(v)


def summary(d: Demo, bench_json: Path | None, run_info: dict, wall: float) -> str:
    """The short table: per engine FPS, speed-up vs PyTorch, accuracy vs PyTorch; then where things are."""
    lines = ["", "=" * 78, f"edge demo finished in {wall / 60:.1f} min", ""]
    lines.append("Stages: " + ", ".join(f"{n} {s}" + (f" {t:.0f}s" if t else "") for n, s, t, _ in d.stages))
    rep = None
    if bench_json and bench_json.is_file():
        rep = json.loads(bench_json.read_text())
    if rep:
        lines += ["", f"{'model':<11}{'row':<24}{'FPS':>7}{'vs PyTorch':>12}  {'accuracy vs PyTorch':<34}{'verdict':>8}"]
        for model, sec in rep["models"].items():
            for r in sec["rows"]:
                e2e = (r.get("speed") or {}).get("end_to_end") or {}
                up = (r.get("speedup") or {}).get("end_to_end")
                lines.append(f"{model:<11}{r['name'][:23]:<24}{_fmt(e2e.get('fps')):>7}"
                             f"{_fmt(up, '{:.1f}x'):>12}  {_accuracy(model, r):<34}{r['verdict']['status']:>8}")
        lines.append(f"(FPS = end to end on the benchmark data; bench overall: {rep['status']})")
        for model, sec in rep["models"].items():
            for r in sec["rows"]:
                if r["verdict"]["status"] == "fail":
                    lines.append(f"FAIL {model} {r['name']}: {'; '.join(r['verdict']['failures'])}")
    if run_info.get("fps") is not None:
        lines += ["", f"edge run on bikes.mp4 frames {BIKES_SEGMENT[0]}-{sum(BIKES_SEGMENT) - 1} (tracker + classifier, {', '.join(Path(p).name for p in run_info['engines'].values())}): "
                      f"{run_info['processed']}/{run_info['captured']} frames at {run_info['fps']:.1f} FPS end to end "
                      f"(decode, flow, tracker, classifier); action alarms: {run_info.get('alarms', '?')}; "
                      f"torch imported: {run_info.get('torch_imported', '?')}"]
    lines += ["", "Where things are:"]
    for label, path in (("overlay video", run_info.get("video")), ("events", run_info.get("events")),
                        ("bench report", bench_json if bench_json and bench_json.is_file() else None),
                        ("bench tables", d.out / "bench" / "report.md"), ("bench plots", d.out / "bench" / "plots"),
                        ("logs", d.out / "logs")):
        if path and Path(path).exists():
            lines.append(f"  {label:<14}{path}")
    failed = [f"{n} ({s}, log {detail})" for n, s, _, detail in d.stages if s.startswith("failed")]
    if failed:
        lines.append("  FAILED: " + "; ".join(failed))
    lines.append("=" * 78)
    return "\n".join(lines)


def _accuracy(model: str, r: dict) -> str:
    t = r.get("task") or {}
    real = f", real {t['real_auc']:.3f}" if t.get("real_auc") is not None else ""
    if r.get("reference"):
        if "auc" in t:
            return f"AUC {t['auc']:.3f}, prec@20 {t['precision20']:.3f}{real}"
        return f"top-1 {t['accuracy']:.3f}" if "accuracy" in t else "reference"
    if r.get("anchor") and "auc" in t:
        return f"AUC {t['auc']:.3f}{real}"
    num, delta = r.get("numerics") or {}, r.get("delta") or {}
    parts = []
    if num.get("top1_agreement") is not None:
        parts.append(f"agree {num['top1_agreement']:.1%}")
        near = num.get("search_candidates")
        clips = (r.get("task") or {}).get("prediction_agreement")
        if near:
            parts[-1] += f" (box {near['top1_box_agreement']:.0%})"
        elif clips is not None:
            parts[-1] += f" (clips {clips:.0%})"
    if "auc" in delta:
        parts.append(f"AUC {delta['auc']:+.3f}")
    if "real_auc" in delta:
        parts.append(f"real {delta['real_auc']:+.3f}")
    if "accuracy" in delta:
        parts.append(f"top-1 {delta['accuracy']:+.3f}")
    return ", ".join(parts) or "—"
