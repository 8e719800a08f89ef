"""Does the classifier cry wolf? PyTorch vs the CPU engines, in one run: false alarm events on held-back real
footage (edge run's streaming protocol), top-1 and ECE (before / after the shipped temperature) on labelled test
clips, and `edge run` on bikes.mp4 counting its action_start events (issue 11's repro).

    .venv/bin/python bench/classifier_alarms.py [--work bench/results/classifier_alarms] [--clips 240]
        [--no-int8] [--reuse] [--weights edge/weights/classifier.pt]

Engines: `edge export classifier` -> `edge build --target cpu` fp32, and int8 after `edge calibrate` on
training/validation footage only (bigbuckbunny.mp4 + carphone_pristine.mp4: never the held-back files).
Rows run on one thread each (nice it). Writes ``bench/results/classifier_alarms.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edge.bench.alarms import AlarmTask, load_held_back
from edge.bench.data import generated_clips, load_clips
from edge.classify import decision as dec
import edge
from edge.fileio import atomic_write_bytes, atomic_write_json


def clip_logits(engines, clips) -> np.ndarray:
    """Logits per labelled clip through a classifier session (flow + encoder per frame, one window of the
    last T frames from zero; the frame before them only seeds the flow), as ``edge bench``'s task does."""
    from edge.classify.runtime import ClassifierRuntime
    from edge.stream.sources import Frame
    out = []
    for clip in clips:
        T = min(len(clip.frames) - 1, engines.config.window)
        rt = ClassifierRuntime(engines, window=T, stride=T, sample_fps=0)   # clips are at the model's clock
        sess = rt.session()
        sess.prime(clip.frames[-(T + 1)])
        for j, image in enumerate(clip.frames[-T:]):
            frame = Frame(0, j, float(j), image, 0.0)
            rt.step([(sess, sess.prepare(frame), frame)])
        out.append(np.asarray(sess.last.logits).reshape(-1))
    return np.stack(out)


def row(name: str, engines, clips, footage) -> dict:
    t0 = time.time()
    cfg = engines.config
    cal = dec.Calibration.from_config(cfg.calibration)
    labels = np.array([c.label for c in clips])
    lg = clip_logits(engines, clips)
    decider = dec.Decider(cfg.classes, cal, dec.load_alarm_rules(cfg.alarms, cfg.classes) if cfg.alarms else None)
    decisions = [decider.decide(z) for z in lg]
    alarm = AlarmTask(footage, "held-back").run(engines)
    m = alarm.metrics
    res = {"name": name, "backend": engines.backend, "precision": engines.precision,
           "top1": float((lg.argmax(1) == labels).mean()), "clips": int(len(labels)),
           "top1_after_open_set": float(np.mean([(not d.rejected) and d.index == y
                                                 for d, y in zip(decisions, labels)])),
           "rejected_clips": int(sum(d.rejected for d in decisions)),
           "ece_before": dec.expected_calibration_error(dec.softmax(lg), labels),
           "ece_after": dec.expected_calibration_error(dec.softmax(lg, cal.temperature), labels),
           "temperature": cal.temperature, "ood_rule": cal.ood.rule,
           "alarm_events": m["alarm_events"], "alarm_events_per_hour": m["alarm_events_per_hour"],
           "alarm_footage_s": m["alarm_footage_s"], "alarm_footage": m["alarm_footage"],
           "alarm_windows": m["alarm_windows"], "window_labels": alarm.outputs,
           "predictions": lg.argmax(1).tolist(), "seconds": round(time.time() - t0, 1)}
    print(f"[{name}] top-1 {res['top1']:.3f}  ECE {res['ece_before']:.3f} -> {res['ece_after']:.3f}  "
          f"alarms {res['alarm_events']} in {res['alarm_footage_s']:.0f} s ({res['seconds']} s)", flush=True)
    return res


def edge_run(engine_dir: Path, source: Path, events: Path) -> dict:
    """`edge run --source SOURCE --classifier ENGINE --events E` in a subprocess; action_start counts."""
    p = subprocess.run([sys.executable, "-m", "edge.cli", "run", "--source", str(source), "--classifier",
                        str(engine_dir), "--events", str(events), "--status-interval", "0"],
                       capture_output=True, text=True, timeout=1200)
    recs = [json.loads(ln) for ln in events.read_text().splitlines()] if events.is_file() else []
    starts = [r for r in recs if r["type"] == "action_start"]
    frames = [r for r in recs if r["type"] == "frame"]
    return {"command": f"edge run --source {source.name} --classifier {engine_dir} --events {events}",
            "exit_code": p.returncode, "frames": len(frames),
            "action_starts": [(r["label"], r["frame"], round(r.get("score") or 0, 3), r.get("alarm")) for r in starts],
            "alarm_starts": sum(1 for r in starts if r.get("alarm")),
            "max_label_score": max((r["label_score"] or 0 for r in frames), default=None),
            "labels": {lab: sum(1 for r in frames if r["label"] == lab) for lab in {r["label"] for r in frames}}}


def markdown(rep: dict) -> str:
    lines = [f"# Classifier false alarms — {rep['date']}", "",
             f"Labelled test clips: {rep['clips']}. Held-back real footage: {rep['footage']}. "
             "Alarm events = action_start of an alarm class (take, put_back, sit_down, fall) through edge run's "
             "streaming protocol (window of T features every stride frames, calibrated score, open-set rule, "
             "per-class hysteresis). One thread per row.", "",
             "| row | top-1 | top-1 after open-set | ECE before | ECE after (T) | alarm events | alarms / h | "
             "top-1 agreement vs PyTorch | same windows vs PyTorch |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rep["rows"]:
        lines.append(f"| {r['name']} | {r['top1']:.3f} | {r['top1_after_open_set']:.3f} | {r['ece_before']:.3f} | "
                     f"{r['ece_after']:.3f} ({r['temperature']:.2f}) | {r['alarm_events']} | "
                     f"{r['alarm_events_per_hour']:.0f} | {r.get('top1_agreement', 1.0):.2%} | "
                     f"{r.get('window_agreement', 1.0):.2%} |")
    lines += ["", "Per video (PyTorch row): " + "; ".join(
        f"{k}: {v['frames']} frames, alarms {v['alarms']}, all starts {v['action_starts']}"
        for k, v in rep["rows"][0]["alarm_footage"].items())]
    for r in rep.get("edge_run", []):
        lines += ["", f"`{r['command']}`: exit {r['exit_code']}, {r['frames']} frames, action_start events "
                      f"{len(r['action_starts'])} (alarms {r['alarm_starts']}): {r['action_starts']}; "
                      f"window labels {r['labels']}; max label_score {r['max_label_score']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="bench/results/classifier_alarms")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--clips", type=int, default=240, help="labelled test clips (edge.data.actions test split)")
    ap.add_argument("--weights", default=None, help="classifier checkpoint (default: the committed one)")
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="keep the export/engines already in --work")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    work, out = Path(a.work), Path(a.out)
    exp = work / "export"
    if not (a.reuse and (exp / "model.json").is_file()):
        edge.export("classifier", exp, weights=a.weights, log=print)
    builds = {"fp32": work / "engines" / "cpu-fp32"}
    if not a.no_int8:                  # int8 calibrated on training/validation footage only (never held back)
        from edge.assets import video_clip
        if not (a.reuse and (exp / "calibration").is_dir()):
            edge.calibrate(exp, [video_clip("bigbuckbunny.mp4"), video_clip("carphone_pristine.mp4")],
                           flavours=("ort",), fp16=False, log=print)
        builds["int8"] = work / "engines" / "cpu-int8"
    for p, eng in builds.items():
        if not (a.reuse and (eng / "fingerprint.json").is_file()):
            edge.build(exp, "cpu", p, eng, log=print)
    from edge.models.registry import torch_engines
    from edge.runtime import load_engines
    clips = load_clips(generated_clips(work / "data", "test", a.clips), json.loads(
        (exp / "model.json").read_text())["config"]["classes"])
    footage = load_held_back()
    rows = [row("pytorch", torch_engines("classifier", weights=a.weights, threads=1), clips, footage)]
    for p, eng in builds.items():
        rows.append(row(f"edge build cpu {p}", load_engines(eng, threads=1), clips, footage))
    ref = rows[0]
    for r in rows[1:]:
        r["top1_agreement"] = float(np.mean(np.array(r["predictions"]) == np.array(ref["predictions"])))
        r["window_agreement"] = float(np.mean([x == y for x, y in zip(r["window_labels"], ref["window_labels"])]))
        r["same_alarm_count"] = r["alarm_events"] == ref["alarm_events"]
    runs = []
    from edge.data.real_sources import held_back_videos
    for source, path in held_back_videos():
        runs.append(edge_run(builds["fp32"], path, work / f"events_{path.stem}.jsonl"))
        print(f"[edge run {path.name}] action_start events {len(runs[-1]['action_starts'])}", flush=True)
    rep = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "clips": len(clips),
           "footage": ", ".join(f"{f.name} ({len(f.frames)} frames, {len(f.frames) / f.fps:.0f} s)" for f in footage),
           "rows": rows, "edge_run": runs}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "classifier_alarms.json", rep)
    atomic_write_bytes(out / "classifier_alarms.md", markdown(rep).encode())
    print(markdown(rep))
    ok = all(r["same_alarm_count"] and r["top1_agreement"] >= (0.97 if "int8" in r["name"] else 0.99)
             for r in rows[1:])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
