"""Tracker parameters on validation sequences that are NOT the benchmark (JSON + Markdown).

Sequences are generated from the training split (``--split train``: training photos over the training videos)
or from textures in neither split (``--split holdout``: matplotlib's sample photos over the training videos),
never from the test split the benchmark (``bench/tracking.py``) uses, so tuning here cannot tune to it. Every
``--configs`` entry (a JSON list of ``TrackerParams`` overrides; ``{}`` = the model's defaults) runs on every
sequence, rows in turn sequence by sequence, through the torch-free ``SiameseTracker`` over an engine folder
(``--engines``, e.g. a ``edge build --target cpu --precision fp32`` of the export: identical to PyTorch and
faster) or the PyTorch reference (``--weights``). ``--csrt`` adds OpenCV CSRT for scale. ``--conditions``
runs the sequences again under camera conditions (``edge.bench.conditions``: night IR, shake, dropped frames,
...) and reports each condition's AUC and their mean.

    .venv/bin/python bench/tracker_tune.py --engines ENGINES --configs '[{}, {"scale_step": 1.1}]' \
        [--split train] [--count 24] [--length 100] [--seed 30000] [--conditions shake frame_drop_3] [--tag NAME]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.bench.tasks import summarize_sequences  # noqa: E402
from edge.eval import otb  # noqa: E402
from edge.fileio import atomic_write_bytes, atomic_write_json  # noqa: E402
from edge.tracking import SiameseTracker  # noqa: E402

SEEDS = {"train": 30000, "holdout": 50000}      # validation seeds (the benchmark: test split, seeds 0..)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def validation_sequences(cache: Path, split: str, count: int, length: int, seed: int) -> list:
    """Generated ``split`` sequences (OTB folders under ``cache``, made once) loaded into memory."""
    if split == "test":
        raise SystemExit("tracker_tune: the test split is the benchmark; tune on train or holdout")
    from edge.bench.data import load_sequences
    from edge.data.tracking_gen import generate_dataset
    folder = cache / f"{split}_s{seed}_n{count}_l{length}"
    if not (folder / ".complete").is_file():
        generate_dataset(folder, count=count, length=length, seed=seed, fmt="otb", split=split)
        (folder / ".complete").write_text("ok\n")
    return load_sequences([folder], log=log)


def run(makers: dict, seqs: list) -> dict:
    """{row: summary} (AUC, P@20, per attribute, FPS, per-sequence AUC), rows in turn per sequence (a sequence's
    ``index``, when a condition dropped frames the loop knows of, reaches the trackers as the gaps)."""
    evals = {n: {} for n in makers}
    times = {n: [] for n in makers}
    for i, s in enumerate(seqs):
        for n, make in makers.items():
            boxes, t = otb.run_sequence(make(), s.frames, s.gt[0], s.index)
            evals[n][s.name] = otb.evaluate(boxes, s.gt)
            times[n] += [float(x) for x in t[1:]]
        log(f"{i + 1}/{len(seqs)} {s.name} {','.join(s.attributes)}: " +
            ", ".join(f"{n} {evals[n][s.name]['auc']:.3f}" for n in makers))
    attrs = {s.name: s.attributes for s in seqs}
    out = {}
    for n in makers:
        t = summarize_sequences(evals[n], attrs)
        out[n] = {"auc": t["auc"], "precision20": t["precision20"],
                  "attributes": {a: v["auc"] for a, v in t["attributes"].items()},
                  "fps": len(times[n]) / sum(times[n]),
                  "sequences": {k: v["auc"] for k, v in t["sequences"].items()}}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default=None, help="engine folder (edge build); default: PyTorch --weights")
    ap.add_argument("--weights", default="imagenet", help="PyTorch rows: 'imagenet' (untrained) or a checkpoint")
    ap.add_argument("--configs", default="[{}]", help="JSON list of TrackerParams overrides, or @file.json")
    ap.add_argument("--split", choices=("train", "holdout"), default="train")
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--length", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None, help=f"first seed (default {SEEDS})")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--csrt", action="store_true", help="add OpenCV CSRT")
    ap.add_argument("--cache", default="bench/results/tracker_tune_data")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--conditions", nargs="*", default=[], help="camera conditions (edge.bench.conditions) to "
                    "run the sequences under, each as its own pass")
    ap.add_argument("--tag", default="tracker_tune")
    a = ap.parse_args(argv)
    from edge.bench import conditions as cond
    try:
        conds = cond.select(a.conditions) if a.conditions else []
    except ValueError as e:
        ap.error(str(e))
    import cv2
    cv2.setNumThreads(a.threads)
    text = Path(a.configs[1:]).read_text() if a.configs.startswith("@") else a.configs
    configs = json.loads(text)
    if isinstance(configs, dict):
        configs = [configs]
    if a.engines:
        from edge.runtime import load_engines
        engines = load_engines(a.engines, threads=a.threads)
    else:
        import torch
        torch.set_num_threads(a.threads)
        from edge.models.registry import torch_engines
        engines = torch_engines("tracker", weights=a.weights, threads=a.threads)
    seed = SEEDS[a.split] if a.seed is None else a.seed
    seqs = validation_sequences(Path(a.cache), a.split, a.count, a.length, seed)
    makers = {}
    for i, c in enumerate(configs):
        SiameseTracker(engines, c)                      # validate up front
        makers[f"c{i} {json.dumps(c, sort_keys=True)}"] = (lambda c=c: SiameseTracker(engines, c))
    if a.csrt:
        from edge.bench.anchors import OpenCVTracker
        makers["OpenCV CSRT"] = lambda: OpenCVTracker("CSRT")
    t0 = time.time()
    rows = run(makers, seqs)
    for c in conds:                     # the same sequences as that camera would give them (seeded per sequence)
        shown = [cond.apply_sequence(c, s, k) for k, s in enumerate(seqs)]
        log(f"condition {c.name}: {c.what}")
        for n, r in run(makers, shown).items():
            rows[n].setdefault("conditions", {})[c.name] = r["auc"]
        del shown
    for r in rows.values():
        if conds:
            r["conditions_mean"] = float(np.mean(list(r["conditions"].values())))
    rep = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "split": a.split, "seed": seed,
           "count": len(seqs), "length": a.length, "engines": a.engines or f"pytorch {a.weights}",
           "conditions": [c.name for c in conds], "seconds": round(time.time() - t0, 1), "rows": rows}
    out = Path(a.out)
    atomic_write_json(out / f"{a.tag}.json", rep)
    tags = sorted({t for r in rows.values() for t in r["attributes"]})
    lines = [f"# Tracker validation ({a.split} split, seeds {seed}.., {len(seqs)} x {a.length} frames, "
             f"{rep['date']})", "", "| row | AUC | P@20 | FPS | " + " | ".join(tags) + " |",
             "|---|---|---|---|" + "---|" * len(tags)]
    for n, r in rows.items():
        lines.append(f"| {n} | {r['auc']:.3f} | {r['precision20']:.3f} | {r['fps']:.1f} | " +
                     " | ".join(f"{r['attributes'].get(t, float('nan')):.3f}" for t in tags) + " |")
    if conds:
        names = [c.name for c in conds]
        lines += ["", "AUC under camera conditions (`edge.bench.conditions`):", "",
                  "| row | " + " | ".join(names) + " | mean |", "|---|" + "---|" * (len(names) + 1)]
        for n, r in rows.items():
            lines.append(f"| {n} | " + " | ".join(f"{r['conditions'][c]:.3f}" for c in names) +
                         f" | {r['conditions_mean']:.3f} |")
    md = "\n".join(lines) + "\n"
    atomic_write_bytes(out / f"{a.tag}.md", md.encode())
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
