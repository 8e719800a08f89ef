"""SINT reference tracker on generated sequences: OTB one-pass AUC / precision@20 / FPS vs a fixed-box baseline.

Runs the torch-free ``SiameseTracker`` over the PyTorch reference networks (and, with ``--engines DIR``, over
built engines, same runtime logic, same frames), with and without the first-frame box regression.
Writes JSON + Markdown.

    .venv/bin/python bench/tracker_reference.py [--count 4] [--length 100] [--engines out/engines/tracker]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from edge.data.tracking_gen import render_sequence
from edge.eval import otb
from edge.tracking import SiameseTracker


def evaluate_rows(name: str, engines, seqs, params: dict) -> dict:
    per, succ, prec, times = {}, [], [], []
    for s in seqs:
        boxes, t = otb.run_sequence(SiameseTracker(engines, params), s.frames, s.boxes[0])
        e = otb.evaluate(boxes, s.boxes)
        succ.append(e["success_curve"])
        prec.append(e["precision_curve"])
        times.extend(t[1:])
        per[s.name] = round(e["auc"], 3)
    return {"row": name, "params": params, "auc": float(np.mean(np.mean(succ, 0))),
            "precision20": float(np.mean(prec, 0)[20]), "fps": len(times) / float(np.sum(times)),
            "ms_per_update_median": float(np.median(times) * 1e3), "per_sequence_auc": per}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--length", type=int, default=100)
    ap.add_argument("--seed", type=int, default=100, help="first sequence seed (tests use others)")
    ap.add_argument("--engines", default=None, help="built engine folder (edge build) to run as well")
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--out", default="out/bench/tracker_reference")
    a = ap.parse_args()

    import torch
    from edge.models.registry import torch_engines
    torch.set_num_threads(a.torch_threads)
    seqs = [render_sequence(a.seed + i, a.length) for i in range(a.count)]
    rows = []
    # the fixed-box baseline: the first box held still
    succ = [otb.evaluate(np.repeat(s.boxes[:1], len(s.boxes), 0), s.boxes) for s in seqs]
    rows.append({"row": "fixed box (first box held)", "params": {},
                 "auc": float(np.mean(np.mean([e["success_curve"] for e in succ], 0))),
                 "precision20": float(np.mean([e["precision_curve"] for e in succ], 0)[20]), "fps": None,
                 "ms_per_update_median": None,
                 "per_sequence_auc": {s.name: round(e["auc"], 3) for s, e in zip(seqs, succ)}})
    backends = [("pytorch", torch_engines("tracker", threads=a.torch_threads))]
    if a.engines:
        from edge.runtime import load_engines
        eng = load_engines(a.engines)
        backends.append((f"{eng.backend} {eng.precision}", eng))
    for label, eng in backends:
        for reg in (True, False):
            rows.append(evaluate_rows(f"{label}, box regression {'on' if reg else 'off'}", eng, seqs,
                                      {"box_regression": reg}))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "params"}), flush=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "sequences": [s.name for s in seqs],
            "length": a.length, "cpu_count": os.cpu_count(), "torch_threads": a.torch_threads,
            "events": [s.events for s in seqs]}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    os.replace(tmp, out.with_suffix(".json"))
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    lines = ["| tracker | AUC | P@20 | FPS (update) | median ms |", "|---|---|---|---|---|"]
    lines += [f"| {r['row']} | {r['auc']:.3f} | {r['precision20']:.3f} | {fmt(r['fps'], '.1f')} | "
              f"{fmt(r['ms_per_update_median'], '.2f')} |" for r in rows]
    text = (f"SINT tracker, {a.count} generated sequences x {a.length} frames (seeds {a.seed}..), "
            f"{meta['date']}\n\n" + "\n".join(lines) + "\n")
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, out.with_suffix(".md"))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
