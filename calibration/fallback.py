"""Sensitivity fallback: keep the most harmful quantized layers in float until the outputs match fp32.

1. Quantize everything; score the outputs on held-out calibration samples against the fp32 graph.
2. If the tolerance fails, measure each candidate layer alone (only that layer quantized) -> its harm.
3. Keep the k most harmful layers in float, smallest k that meets the tolerance (doubling, then bisection).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from edge.runtime.ort_backend import session as ort_session

from .quantize import candidate_layers, quantize


@dataclass(frozen=True)
class Tolerance:
    """Accepted when the mean centred cosine (correlation) with fp32 of every checked output is >= ``cosine``
    (and, if set, the largest relative error max|q - f| / max|f| per sample stays <= ``max_rel_err``).
    ``outputs`` limits the check to the outputs the rest of the system consumes (default: all)."""
    cosine: float = 0.99
    max_rel_err: float | None = None
    outputs: tuple[str, ...] | None = None

    def value(self, score: dict) -> float:
        per = score["outputs"]
        names = [n for n in (self.outputs or per) if n in per] or list(per)
        return min(per[n]["corr_mean"] for n in names)

    def accepts(self, score: dict) -> bool:
        ok = self.value(score) >= self.cosine
        if self.max_rel_err is not None:
            per = score["outputs"]
            names = [n for n in (self.outputs or per) if n in per] or list(per)
            ok = ok and max(per[n]["max_rel_err"] for n in names) <= self.max_rel_err
        return ok


def session(model: str | Path | bytes, threads: int = 2) -> ort.InferenceSession:
    """A calibration-side CPU session (onnxruntime's online optimisations, ``threads`` intra-op)."""
    return ort_session(Path(model) if isinstance(model, str) else model, threads, optimized_offline=False)


def run_all(sess: ort.InferenceSession, samples: Sequence[dict]) -> list[dict[str, np.ndarray]]:
    names = [o.name for o in sess.get_outputs()]
    feeds = [i.name for i in sess.get_inputs()]
    return [dict(zip(names, sess.run(None, {k: s[k] for k in feeds}))) for s in samples]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    return float(a @ b / max(na * nb, 1e-30))


def compare(ref: Sequence[dict], got: Sequence[dict]) -> dict:
    """Agreement of ``got`` with ``ref`` (lists of output dicts, same samples), per output:

    ``corr`` = cosine of the mean-centred outputs (Pearson correlation; scores near a common offset, e.g.
    sums of cosines, need the centring to show a changed ranking), ``cosine`` = plain cosine,
    ``max_rel_err`` = max|q - f| / max|f|, ``top1`` = argmax agreement (last axis). The overall ``cosine``
    is the worst output's mean centred correlation.
    """
    per = {}
    for name in ref[0]:
        corr, cos, rel, top = [], [], [], []
        for r, g in zip(ref, got):
            a = r[name].astype(np.float64)
            b = g[name].astype(np.float64)
            fa, fb = a.ravel(), b.ravel()
            cos.append(_cos(fa, fb))
            corr.append(_cos(fa - fa.mean(), fb - fb.mean()) if fa.size > 1 else cos[-1])
            rel.append(float(np.abs(fa - fb).max() / max(np.abs(fa).max(), 1e-12)) if fa.size else 0.0)
            if a.size > 1:
                top.append(float(np.mean(a.reshape(-1, a.shape[-1]).argmax(-1) == b.reshape(-1, b.shape[-1]).argmax(-1))))
        per[name] = {"corr_mean": float(np.mean(corr)), "corr_min": float(np.min(corr)),
                     "cosine_mean": float(np.mean(cos)), "max_rel_err": float(np.max(rel)),
                     "top1": float(np.mean(top)) if top else 1.0}
    return {"cosine": min(p["corr_mean"] for p in per.values()),
            "max_rel_err": max(p["max_rel_err"] for p in per.values()), "outputs": per}


def search(model_path: str | Path, out_path: str | Path, flavour: str, method: str, ranges_path: str | Path,
           calib: Sequence[dict], held: Sequence[dict], tol: Tolerance = Tolerance(),
           keep_float: Sequence[str] = (), progress: Callable[[str], None] | None = None,
           scan_samples: int = 8, ranking: dict | None = None) -> dict:
    """Write the Q/DQ graph of ``flavour`` that meets ``tol`` on ``held``; return the report entry.
    The per-layer scan scores on the first ``scan_samples`` held-out samples; every decision on all of them.
    ``ranking`` (the ``sensitivity`` of an earlier flavour's entry) skips the scan and reuses that order."""
    say = progress or (lambda _m: None)
    model_path = Path(model_path)
    model = onnx.load(str(model_path))
    ref = run_all(session(model_path), held)

    with tempfile.TemporaryDirectory(prefix="edge-calib-") as tmp:
        def score(exclude=(), only=None, n: int | None = None) -> dict:
            p = Path(tmp) / "variant.onnx"
            q = quantize(model_path, p, flavour, method, ranges_path, calib, exclude=list(keep_float) + list(exclude),
                         only=only)
            return compare(ref[:n], run_all(session(q.SerializeToString()), held[:n]))

        full = score()
        entry = {"flavour": flavour, "method": method, "tolerance": tol.__dict__, "all_quantized": full,
                 "kept_float": [{"node": n, "reason": "requested (--keep-float)"} for n in keep_float],
                 "sensitivity": {}}
        exclude: list[str] = []
        final = full
        if not tol.accepts(full):
            cands = [n for n in candidate_layers(model) if n.name not in keep_float]
            say(f"{flavour}: all-int8 correlation {tol.value(full):.4f} < {tol.cosine}: "
                + ("reusing the per-layer ranking" if ranking else f"measuring {len(cands)} layers one at a time"))
            harm = {}
            if ranking:
                harm = {k: (1.0 - v["cosine_alone"], v["op"]) for k, v in ranking.items()
                        if k in {n.name for n in cands}}
                entry["ranking_from"] = "an earlier flavour's per-layer scan"
            for n in cands if not harm else ():
                s = score(only=[n.name], n=scan_samples)
                harm[n.name] = (1.0 - tol.value(s), n.op_type)
            order = sorted(harm, key=lambda k: -harm[k][0])
            entry["sensitivity"] = {k: {"op": harm[k][1], "cosine_alone": 1.0 - harm[k][0]} for k in order}
            tried = {}

            def ok(k: int) -> bool:
                if k not in tried:
                    tried[k] = score(exclude=order[:k])
                return tol.accepts(tried[k])

            lo, hi = 0, 1
            while hi < len(order) and not ok(hi):
                lo, hi = hi, min(2 * hi, len(order))
            if hi >= len(order) and not ok(len(order)):
                hi = len(order)
                entry["tolerance_met"] = False
            else:
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (lo, mid) if ok(mid) else (mid, hi)
            exclude = order[:hi]
            final = tried.get(hi) or score(exclude=exclude)
            for name in exclude:
                entry["kept_float"].append({
                    "node": name, "op": harm[name][1],
                    "reason": f"quantized alone it drops output cosine to {1.0 - harm[name][0]:.4f}; "
                              f"rank {order.index(name) + 1} of {len(order)} by harm"})
        entry.setdefault("tolerance_met", tol.accepts(final))
        entry["final"] = final
        entry["checked"] = tol.value(final)
        q = quantize(model_path, out_path, flavour, method, ranges_path, calib, exclude=list(keep_float) + exclude)
        onnx.checker.check_model(q, full_check=True)
        entry["file"] = Path(out_path).name
    return entry
