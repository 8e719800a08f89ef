"""The tracker on the hard generated benchmark, against the first release's tracker and OpenCV's trackers, in
one run (JSON + Markdown + plots).

Rows, run in turn sequence by sequence (load from other processes hits every row alike), every one through
``edge.eval.otb`` (got10k's one-pass evaluation):
- ``PyTorch (shipped tracker)``: ``--weights`` (default: what ``edge export tracker`` ships, ``build_tracker()``:
  today the frozen ImageNet SINT with the IoU head and the motion prior), the reference of the engine rows;
- ``PyTorch release tracker``: the frozen ImageNet SINT with the first release's tracker parameters (``RELEASE``:
  no IoU head, scale step 1.05, no motion prior): the tracker before issue 10, the base of its "+0.10" goal;
- ``PyTorch untrained (ImageNet)``: today's tracker logic on the untrained networks, only when ``--weights`` are
  other weights (e.g. ``edge/weights/tracker_adapters.pt``);
- ``cpu fp32`` / ``cpu int8``: ``edge export`` -> ``edge calibrate`` -> ``edge build --target cpu`` of the
  ``--weights`` tracker, through the same torch-free ``SiameseTracker``;
- ``OpenCV CSRT / KCF / MIL`` (``edge.bench.anchors``): what a user would pick instead (no pass/fail).

AUC, precision@20, FPS (update calls only; frames decoded beforehand) overall, per attribute and on the
scale-variation subset; the goals of issue 10 checked at the end. Every row uses ``--threads`` threads.

Then the same rows on **real footage** (``edge.bench.real_tracking``: clips of the installed asset packages with
boxes drawn by hand on some frames, ``edge/data/real_tracking.json``; scored on those frames only; skipped when
the clips are not installed, ``--no-real``): a few sequences, so read them per sequence, not as a ranking.

    .venv/bin/python bench/tracking.py [--count 24] [--length 100] [--threads 1] [--weights PATH] [--no-int8]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.bench import anchors  # noqa: E402
from edge.bench import data as bench_data  # noqa: E402
from edge.bench.report import clean, host_info, real_table  # noqa: E402
from edge.bench.stats import latency_stats  # noqa: E402
from edge.bench.tasks import real_metrics, summarize_sequences  # noqa: E402
from edge.eval import otb  # noqa: E402
from edge.fileio import atomic_write_bytes, atomic_write_json  # noqa: E402
from edge.tracking import SiameseTracker  # noqa: E402


# the first release's tracker (before issue 10): template cosine only, scale step 1.05, search centred on the box,
# no re-detection
RELEASE = {"head_weight": 0.0, "scale_step": 1.05, "motion_lr": 0.0, "redetect_frames": 0, "chase_edge": 0.0}
RELEASE_ROW = "PyTorch release tracker"
REF_ROW = "PyTorch (shipped tracker)"
UNTRAINED_ROW = "PyTorch untrained (ImageNet)"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def prepare_engines(work: Path, weights: str | None, int8: bool, threads: int, reuse: bool) -> dict:
    """Export (+ calibrate) + build the tracker with the real CLI; returns {row name: Engines}."""
    from edge.cli import main as edge
    from edge.runtime import load_engines
    exp = work / "export" / "tracker"
    if not (reuse and (exp / "model.json").is_file()):
        argv = ["export", "tracker", "-o", str(exp)] + (["--weights", weights] if weights else [])
        if edge(argv) != 0:
            raise SystemExit("edge export failed")
    precisions = ["fp32"]
    if int8:
        if not (reuse and (exp / "calibration" / "report.json").is_file()):
            edge(["calibrate", str(exp), "--flavours", "ort", "--no-fp16", "--quiet"])
        if (exp / "calibration" / "report.json").is_file():
            precisions.append("int8")
    out = {}
    for p in precisions:
        eng = work / "engines" / f"tracker-cpu-{p}"
        if not (reuse and (eng / "fingerprint.json").is_file()):
            if edge(["build", str(exp), "--target", "cpu", "--precision", p, "-o", str(eng)]) != 0:
                raise SystemExit(f"edge build {p} failed")
        out[f"cpu {p} (edge build)"] = load_engines(eng, threads=threads)
    return out


def run_rows(makers: dict, seqs: list) -> dict:
    """{row: {name: (evaluation, update times, boxes)}}, rows in turn per sequence."""
    res = {name: {} for name in makers}
    for i, s in enumerate(seqs):
        for name, make in makers.items():
            boxes, t = otb.run_sequence(make(), s.frames, s.gt[0])
            ev = otb.evaluate(boxes, s.gt)
            ev["fps"] = (len(t) - 1) / float(np.sum(t[1:]))
            res[name][s.name] = (ev, [float(x) for x in t[1:]], boxes)
        log(f"sequence {i + 1}/{len(seqs)} {s.name} {','.join(s.attributes)}: " + ", ".join(
            f"{n} {res[n][s.name][0]['auc']:.2f}" for n in makers))
    return res


def summarize(per_seq: dict, seqs: list) -> dict:
    evals = {n: v[0] for n, v in per_seq.items()}
    task = summarize_sequences(evals, {s.name: s.attributes for s in seqs})
    times = [x for v in per_seq.values() for x in v[1]]
    e2e = latency_stats(times)
    task["fps"] = e2e["fps"] = e2e["throughput"]
    return {"task": task, "speed": {"end_to_end": e2e}}


def real_section(res: dict, seqs: list) -> dict:
    """The real sequences (frames, scored frames, tags) and per row ``edge.bench.tasks.real_metrics`` of its runs
    (scored on the frames with a drawn box)."""
    return {"sequences": {s.name: {"frames": len(s.frames), "scored": int(np.isfinite(s.gt[1:, 0]).sum()),
                                   "attributes": list(s.attributes)} for s in seqs},
            "rows": {n: real_metrics({s.name: (per[s.name][2], s.gt) for s in seqs}) for n, per in res.items()}}


def goals(rows: dict) -> list[dict]:
    """Issue 10's goals, each with the numbers it compares."""
    g = []
    t = {n: r["task"] for n, r in rows.items()}
    csrt = t.get("OpenCV CSRT")
    base = t.get(RELEASE_ROW)
    ours = [n for n in rows if n == REF_ROW or n.startswith("cpu ")]
    for n in ours:
        if csrt:
            g.append({"goal": f"{n}: AUC >= CSRT's", "value": t[n]["auc"], "target": csrt["auc"],
                      "met": t[n]["auc"] >= csrt["auc"]})
            sv, csv = (t[n]["attributes"].get("SV") or {}).get("auc"), (csrt["attributes"].get("SV") or {}).get("auc")
            if sv is not None and csv is not None:
                g.append({"goal": f"{n}: scale-variation AUC >= CSRT's", "value": sv, "target": csv, "met": sv >= csv})
            fps, cfps = rows[n]["speed"]["end_to_end"]["fps"], rows["OpenCV CSRT"]["speed"]["end_to_end"]["fps"]
            if not n.startswith("PyTorch"):
                g.append({"goal": f"{n}: FPS >= 3x CSRT's", "value": fps, "target": 3 * cfps, "met": fps >= 3 * cfps})
        if base:
            g.append({"goal": f"{n}: AUC >= {RELEASE_ROW} + 0.10", "value": t[n]["auc"], "target": base["auc"] + 0.10,
                      "met": t[n]["auc"] >= base["auc"] + 0.10})
    ref = t.get(REF_ROW)
    for n, lim in (("cpu fp32 (edge build)", 0.0), ("cpu int8 (edge build)", 0.03)):
        if ref and n in t:
            d = abs(t[n]["auc"] - ref["auc"])
            g.append({"goal": f"{n}: |AUC - {REF_ROW}| <= {lim}", "value": d, "target": lim,
                      "met": d <= lim + (1e-9 if lim == 0 else 0)})
    return g


def markdown(rep: dict) -> str:
    h = rep["host"]
    rows = rep["rows"]
    tags = sorted({a for r in rows.values() for a in r["task"]["attributes"]})
    lines = [f"# Tracker on the hard generated benchmark — {h['date']}", "",
             f"CPU: {h['cpu']}, {rep['settings']['threads']} thread(s) per row (of {h['cpus']}). Data: "
             f"{rep['data']}. Rows run in turn sequence by sequence; FPS = tracker update calls only.", "",
             "| Row | AUC | P@20 | SV AUC | FPS | vs CSRT FPS | box IoU vs the shipped tracker in PyTorch | note |",
             "|---|---|---|---|---|---|---|---|"]
    csrt_fps = (rows.get("OpenCV CSRT") or {}).get("speed", {}).get("end_to_end", {}).get("fps")
    for n, r in rows.items():
        t, fps = r["task"], r["speed"]["end_to_end"]["fps"]
        sv = (t["attributes"].get("SV") or {}).get("auc")
        agree = r.get("box_iou_vs_reference")
        lines.append(f"| {n} | {t['auc']:.3f} | {t['precision20']:.3f} | {'—' if sv is None else f'{sv:.3f}'} | "
                     f"{fps:.1f} | {'—' if not csrt_fps else f'{fps / csrt_fps:.2f}x'} | "
                     f"{'—' if agree is None else f'{agree:.4f}'} | {r.get('label', '')} |")
    lines += ["", "AUC per attribute (number of sequences):", "",
              "| Row | " + " | ".join(f"{a} ({rep['attribute_counts'][a]})" for a in tags) + " |",
              "|---|" + "---|" * len(tags)]
    for n, r in rows.items():
        a = r["task"]["attributes"]
        lines.append(f"| {n} | " + " | ".join(f"{a[x]['auc']:.3f}" if x in a else "—" for x in tags) + " |")
    lines += ["", "Attributes: " + "; ".join(f"{k} {v}" for k, v in rep["attribute_names"].items()), ""]
    if rep["goals"]:
        lines += ["Goals (issue 10):", ""] + [
            f"- {'met' if x['met'] else 'NOT met'}: {x['goal']} ({x['value']:.3f} vs {x['target']:.3f})"
            for x in rep["goals"]]
    for note in rep["notes"]:
        lines.append(f"- {note}")
    real = rep.get("real")
    if real:
        names = list(real["sequences"])
        lines += ["", f"## Real footage ({len(names)} sequences, boxes drawn by hand; "
                  f"{sum(v['scored'] for v in real['sequences'].values())} frames scored)"]
        lines += real_table({"rows": [{"name": n, "task": m} for n, m in real["rows"].items()]})
        lines += ["", "Few sequences: read them one by one, not as a ranking.", ""] + [
            f"- {x}: {v['frames']} frames, {v['scored']} scored, {', '.join(v['attributes'])}"
            for x, v in real["sequences"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=bench_data.GEN_TRACKING["count"])
    ap.add_argument("--length", type=int, default=bench_data.GEN_TRACKING["length"])
    ap.add_argument("--seed", type=int, default=bench_data.GEN_TRACKING["seed"])
    ap.add_argument("--weights", default=None, help="tracker weights: a checkpoint or 'imagenet' (default: what "
                    "`edge export tracker` ships)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--no-engines", action="store_true", help="PyTorch and OpenCV rows only")
    ap.add_argument("--no-anchors", action="store_true", help="skip the OpenCV rows")
    ap.add_argument("--params", default=None, help="tracker parameters (JSON) for every SINT row")
    ap.add_argument("--no-real", action="store_true", help="skip the real-footage sequences")
    ap.add_argument("--reuse", action="store_true", help="keep exports/engines already in --work")
    ap.add_argument("--work", default="bench/results/tracking_work")
    ap.add_argument("--out", default="bench/results", help="tracking.json / tracking.md / tracking_plots/")
    ap.add_argument("--tag", default="tracking")
    a = ap.parse_args(argv)
    import json

    import cv2
    import torch
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    from edge.data.tracking_gen import ATTRIBUTES
    from edge.models.registry import torch_engines
    from edge.models.sint import DEFAULT_WEIGHTS, UNTRAINED
    a.weights = a.weights or (str(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.is_file() else UNTRAINED)
    work, out = Path(a.work), Path(a.out)
    params = json.loads(a.params) if a.params else None
    data = bench_data.generated_sequences(work / "data", a.count, a.length, a.seed)
    seqs = bench_data.load_sequences([data], log=log)
    untrained = torch_engines("tracker", weights=UNTRAINED, threads=a.threads)
    engines = {REF_ROW: untrained if a.weights == UNTRAINED
               else torch_engines("tracker", weights=a.weights, threads=a.threads)}
    if a.weights != UNTRAINED:
        engines[UNTRAINED_ROW] = untrained
    if not a.no_engines:
        engines.update(prepare_engines(work, a.weights, not a.no_int8, a.threads, a.reuse))
    makers = {n: (lambda e=e: SiameseTracker(e, params)) for n, e in engines.items()}
    makers[RELEASE_ROW] = lambda: SiameseTracker(untrained, {**(params or {}), **RELEASE})
    notes = []
    for kind in () if a.no_anchors else anchors.ANCHORS:
        make, why = anchors.factory(kind)
        if make is None:
            notes.append(f"anchor OpenCV {kind} skipped: {why}")
        else:
            makers[f"OpenCV {kind}"] = lambda k=kind: anchors.OpenCVTracker(k)
    log(f"{len(seqs)} sequences, {sum(len(s.frames) for s in seqs)} frames; rows: {', '.join(makers)}")
    res = run_rows(makers, seqs)
    rows = {n: summarize(res[n], seqs) for n in makers}
    ref = res[REF_ROW]
    for n in makers:
        ious = np.concatenate([otb.iou(res[n][s.name][2][1:], ref[s.name][2][1:]) for s in seqs])
        rows[n]["box_iou_vs_reference"] = float(ious.mean())
        if n.startswith("OpenCV"):
            rows[n]["label"] = anchors.LABEL
            rows[n]["anchor"] = True
    counts = {t: sum(t in s.attributes for s in seqs) for t in ATTRIBUTES}
    rep = {"host": host_info(), "settings": {"threads": a.threads, "params": params, "weights": a.weights},
           "data": f"{len(seqs)} generated sequences x {a.length} frames (seeds {a.seed}.., {data})",
           "attribute_counts": counts, "attribute_names": ATTRIBUTES, "rows": rows, "notes": notes}
    rep["goals"] = goals(rows)
    if not a.no_real:
        from edge.bench.real_tracking import real_sequences
        real = real_sequences(log=log)
        if real:
            log(f"real footage: {len(real)} sequences")
            rep["real"] = real_section(run_rows(makers, real), real)
    rep = clean(rep)
    atomic_write_json(out / f"{a.tag}.json", rep)
    atomic_write_bytes(out / f"{a.tag}.md", markdown(rep).encode())
    from edge.bench import plots
    as_rows = [{"name": n, **r, "reference": n == REF_ROW} for n, r in rows.items()]
    plots.otb_curves("tracker", as_rows, out / f"{a.tag}_plots" / "otb.png")
    plots.attribute_bars("tracker", as_rows, out / f"{a.tag}_plots" / "attributes.png")
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
