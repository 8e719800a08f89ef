"""A/B of ``bench/pipeline.py`` between two source trees on the same engines, rounds interleaved.

    python bench/pipeline_ab.py --base /tmp/main_src --tracker ENGINE_DIR --classifier ENGINE_DIR
                                [--streams 1 4] [--frames 120] [--rounds 3] [--out bench/results]

``--base`` is another checkout of the package (e.g. ``git archive main | tar -x -C /tmp/main_src``; its
``kernels/`` is linked as ``edge/kernels`` when missing, as the editable install maps it), the candidate is
this tree. Each round runs ``bench/pipeline.py`` once per tree (one repeat, no live or PyTorch rows) in a
fresh process, alternating which goes first; medians over rounds of end-to-end FPS and CPU ms per frame (end
to end and of the stages alone) per stream count, with the 1-min load average before every run. On a shared
machine interleaving is what makes the two comparable; the absolute numbers still move with the load.
Writes ``pipeline_ab.json`` and ``pipeline_ab.md`` (atomically) into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.fileio import atomic_write_bytes, atomic_write_json  # noqa: E402


def run_tree(tree: Path, args, out: Path) -> dict:
    kernels = tree / "edge" / "kernels"
    if tree != ROOT and not kernels.exists() and (tree / "kernels").is_dir():   # this tree: the editable install
        kernels.symlink_to(tree / "kernels")
    cmd = [sys.executable, str(tree / "bench" / "pipeline.py"), "--tracker", args.tracker, "--classifier",
           args.classifier, "--frames", str(args.frames), "--streams", *map(str, args.streams), "--repeats", "1",
           "--live-fps", "--reference-frames", "0", "--out", str(out)]
    load = os.getloadavg()[0]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tree))
    if p.returncode != 0:
        raise RuntimeError(f"{tree}: bench/pipeline.py failed: {p.stderr.strip().splitlines()[-1:]}")
    rows = json.loads((out / "pipeline.json").read_text())["rows"]
    return {"load": round(load, 2), "rows": {r["streams"]: {
        "fps": r["e2e_fps"], "cpu_ms_e2e": r["cpu_ms_per_frame_e2e"],
        "cpu_ms_alone": round(sum(r["cpu_ms_per_frame_alone"].values()), 3),
        "cpu_ms_alone_by_stage": r["cpu_ms_per_frame_alone"]} for r in rows}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the other source tree (the reference side)")
    ap.add_argument("--tracker", required=True)
    ap.add_argument("--classifier", required=True)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args(argv)
    args.tracker, args.classifier = str(Path(args.tracker).resolve()), str(Path(args.classifier).resolve())
    trees = {"base": Path(args.base).resolve(), "candidate": ROOT}
    runs: dict[str, list] = {k: [] for k in trees}
    tmp = Path(tempfile.mkdtemp(prefix="edge-pipeline-ab-"))
    for r in range(args.rounds):
        order = list(trees) if r % 2 == 0 else list(trees)[::-1]
        for k in order:
            res = run_tree(trees[k], args, tmp / k)
            runs[k].append(res)
            print(f"round {r + 1} {k}: load {res['load']}, " + ", ".join(
                f"{n} stream(s) {v['fps']:.1f} fps, {v['cpu_ms_e2e']:.1f} / {v['cpu_ms_alone']:.1f} CPU ms/frame"
                for n, v in res["rows"].items()), flush=True)
    summary = {}
    for k, rs in runs.items():
        summary[k] = {n: {m: round(float(np.median([x["rows"][n][m] for x in rs])), 3)
                          for m in ("fps", "cpu_ms_e2e", "cpu_ms_alone")} for n in args.streams}
    ratio = {n: {"fps": round(summary["candidate"][n]["fps"] / summary["base"][n]["fps"], 3),
                 "cpu_ms_alone": round(summary["candidate"][n]["cpu_ms_alone"] / summary["base"][n]["cpu_ms_alone"], 3)}
             for n in args.streams}
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "trees": {k: str(v) for k, v in trees.items()},
            "engines": {"tracker": args.tracker, "classifier": args.classifier}, "frames": args.frames,
            "rounds": args.rounds, "cores": os.cpu_count()}
    out = Path(args.out)
    atomic_write_json(out / "pipeline_ab.json", {"meta": meta, "runs": runs, "median": summary, "ratio": ratio})
    lines = [f"# `edge run` pipeline A/B ({meta['date']}, {args.rounds} interleaved rounds, {args.frames} frames "
             f"per stream, {meta['cores']} cores)", "", f"base `{trees['base']}`, candidate `{ROOT}`; load average "
             f"before each run: " + ", ".join(f"{k} {[x['load'] for x in v]}" for k, v in runs.items()), "",
             "| streams | base FPS | candidate FPS | x | base CPU ms/frame alone | candidate | x "
             "| base e2e CPU | candidate |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n in args.streams:
        b, c = summary["base"][n], summary["candidate"][n]
        lines.append(f"| {n} | {b['fps']:.1f} | {c['fps']:.1f} | {ratio[n]['fps']:.2f} | {b['cpu_ms_alone']:.2f} | "
                     f"{c['cpu_ms_alone']:.2f} | {ratio[n]['cpu_ms_alone']:.2f} | {b['cpu_ms_e2e']:.2f} "
                     f"| {c['cpu_ms_e2e']:.2f} |")
    atomic_write_bytes(out / "pipeline_ab.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines[4:]))
    print(f"wrote {out / 'pipeline_ab.json'} and {out / 'pipeline_ab.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
