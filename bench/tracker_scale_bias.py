"""Score-vs-candidate-scale bias of the SINT tracker on targets of known size (JSON + Markdown).

A test-split photo texture is pasted over two frames of a real clip at known size: ``height`` px in frame a
(template) and ``ratio`` x that in frame b. In frame b, boxes at the true centre with sizes ``step**k`` x the
true size (k = -K..K, default step 2**(1/8), 0.5x..2x) are scored in the crop the tracker takes around the true
box (``around 1.0``: a tracker that followed perfectly) and around a box already 1.5x too large (``around
1.5``: does the score pull an inflated box back? and 0.7x too small). Reports the mean score per k and the distribution of the
best k (0 = true size; > 0 = the bigger box wins).

    .venv/bin/python bench/tracker_scale_bias.py [--weights imagenet|PATH] [--targets 24] [--tag untrained]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.data.tracking_gen import known_size_pair  # noqa: E402
from edge.eval.scale_bias import scale_profile  # noqa: E402
from edge.fileio import atomic_write_bytes, atomic_write_json  # noqa: E402
from edge.tracking import SiameseTracker  # noqa: E402

RATIOS = (0.5, 1.0, 2.0)
AROUND = (0.7, 1.0, 1.5)


def measure(engines, params: dict | None, targets: int, step: float, k_max: int, height: float,
            seed: int = 1000) -> dict:
    rows = {}
    for ratio in RATIOS:
        for around in AROUND:
            prof = []
            for i in range(targets):
                fa, ba, fb, bb = known_size_pair(seed + i, ratio, height)
                prof.append(scale_profile(SiameseTracker(engines, params), fa, ba, fb, bb, step, k_max, around))
            best = np.array([p["best_k"] for p in prof])
            scores = np.array([p["scores"] for p in prof])
            rows[f"ratio {ratio} around {around}"] = {
                "ratio": ratio, "around": around, "best_k": best.tolist(),
                "median_best_k": float(np.median(best)), "mean_best_k": float(best.mean()),
                "within_one_step": float(np.mean(np.abs(best) <= 1)),
                "bigger_wins": float(np.mean(best > 1)), "smaller_wins": float(np.mean(best < -1)),
                "mean_scores": scores.mean(0).tolist()}
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="'imagenet' (untrained), a checkpoint, or default (shipped)")
    ap.add_argument("--targets", type=int, default=24)
    ap.add_argument("--step", type=float, default=2 ** (1 / 8))
    ap.add_argument("--k-max", type=int, default=8)
    ap.add_argument("--height", type=float, default=48.0, help="target height in the template frame (px)")
    ap.add_argument("--params", default=None, help="tracker parameters as JSON (TrackerParams fields)")
    ap.add_argument("--tag", default=None, help="name of the result files (default from --weights)")
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args(argv)
    import json

    import torch
    torch.set_num_threads(1)
    from edge.models.registry import torch_engines
    engines = torch_engines("tracker", weights=a.weights, threads=1)
    params = json.loads(a.params) if a.params else None
    t0 = time.time()
    rows = measure(engines, params, a.targets, a.step, a.k_max, a.height)
    tag = a.tag or ("untrained" if a.weights == "imagenet" else Path(a.weights).stem if a.weights else "default")
    rep = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "weights": a.weights or "default",
           "params": params, "targets": a.targets, "step": a.step, "k_max": a.k_max, "height": a.height,
           "seconds": round(time.time() - t0, 1), "rows": rows}
    out = Path(a.out)
    atomic_write_json(out / f"tracker_scale_bias_{tag}.json", rep)
    ks = list(range(-a.k_max, a.k_max + 1))
    lines = [f"# SINT score vs candidate scale ({tag}, {rep['date']})", "",
             f"{a.targets} targets of known size (test-split photos over bikes.mp4, {a.height:.0f} px tall in the "
             f"template frame), boxes at the true centre sized step**k x the truth (step {a.step:.4f}). "
             "`around`: size of the box the search crop is taken around, relative to the truth.", "",
             "| target ratio b/a | around | median best k | within 1 step | bigger wins | smaller wins | "
             "mean score k=-K / 0 / +K |", "|---|---|---|---|---|---|---|"]
    for r in rows.values():
        s = r["mean_scores"]
        lines.append(f"| {r['ratio']} | {r['around']} | {r['median_best_k']:+.1f} | {r['within_one_step']:.0%} | "
                     f"{r['bigger_wins']:.0%} | {r['smaller_wins']:.0%} | {s[0]:.3f} / {s[len(ks) // 2]:.3f} / "
                     f"{s[-1]:.3f} |")
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(out / f"tracker_scale_bias_{tag}.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
