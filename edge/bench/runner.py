"""Benchmark rows of one model through the same code: PyTorch reference, plain-onnxruntime baseline, engines.

Per model: (1) the task (tracking sequences / labelled clips) runs through the same runtime logic for
every row, rows in turn unit by unit, timed per frame for end-to-end FPS; the reference runs through
recording wrappers that keep a sample of the real inputs its networks saw (spread over the whole run);
(2) speed per network on exactly those inputs (warm-up, then trtexec's latency set), rows interleaved call
by call; (3) numerics against the reference's outputs on the same inputs; (4) a verdict against the
tolerances. Interleaving makes load from other processes hit every row alike. Torch-free (the reference
row's ``Engines`` are built by the caller).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from edge.bench import numerics, tolerances
from edge.runtime.record import recording
from edge.bench.stats import latency_stats
from edge.bench.timing import time_round_robin
from edge.contract import MODEL_NETWORKS as NETWORKS
from edge.runtime.base import Engines

TASK_KIND = {"tracker": "tracking", "classifier": "classification"}


@dataclass
class Subject:
    """One row: a set of engines and how to label it."""
    name: str
    engines: Engines
    backend: str
    precision: str
    source: str | None = None          # engine or export folder
    reference: bool = False
    baseline: bool = False


@dataclass
class Settings:
    threads: int = 2
    warmup_s: float = 0.3
    min_s: float = 1.0
    min_runs: int = 10
    max_runs: int = 500
    samples: int = 200                 # recorded inputs per network for speed + numerics
    tolerances: dict = field(default_factory=tolerances.load)

    def timing(self) -> dict:
        return dict(warmup_runs=2, warmup_s=self.warmup_s, min_runs=self.min_runs, min_s=self.min_s,
                    max_runs=self.max_runs)


def _speedup(ref: dict | None, row: dict | None, key: str = "median_ms") -> float | None:
    if not ref or not row or not row.get(key):
        return None
    return ref[key] / row[key]


def _ratios(base: dict, row: dict, nets: list[str]) -> dict:
    """Median-latency ratio per network and end-to-end FPS ratio of ``row`` over ``base`` (> 1 = faster)."""
    bs, rs = base["speed"], row["speed"]
    out = {n: _speedup(bs["networks"].get(n), rs["networks"].get(n)) for n in nets}
    if bs.get("end_to_end") and rs.get("end_to_end"):
        out["end_to_end"] = rs["end_to_end"]["fps"] / bs["end_to_end"]["fps"]
    return out


def bench_model(model: str, subjects: list[Subject], task, settings: Settings,
                fallback_feeds: Callable[[str], list[dict]] | None = None,
                log: Callable[[str], None] = print) -> dict:
    """Benchmark ``subjects`` (the first must be the reference) of ``model``; returns the model's report
    section ``{task_kind, networks, data, rows, notes}``."""
    if not subjects or not subjects[0].reference:
        raise ValueError("bench_model: the first subject must be the PyTorch reference")
    ref = subjects[0]
    nets = [n for n in NETWORKS.get(model, ()) if n in ref.engines.networks] or list(ref.engines.networks)
    notes: list[str] = []

    # 1. the task, rows in turn unit by unit (a sequence, a group of clips) so load from other processes
    #    hits every row alike; the reference runs through recorders that keep a sample of its real inputs
    rec_engines, recorders = recording(ref.engines, settings.samples)
    runs = [rec_engines] + [s.engines for s in subjects[1:]]
    partials: list[list] = [[] for _ in subjects]
    errors: dict[int, str] = {}
    if task is not None:
        log(f"[{model}] task on {task.description}: {len(subjects)} rows in turn, {task.units} units")
        for u in range(task.units):
            for k, engines in enumerate(runs):
                if k in errors:
                    continue
                try:
                    partials[k].append(task.run_unit(engines, u))
                except Exception as e:  # noqa: BLE001 - an engine that cannot run is a failed row
                    if k == 0:
                        raise
                    errors[k] = _error(e)
                    log(f"[{model}] {subjects[k].name}: FAILED ({errors[k]})")
    results = [task.finish(p) if task is not None and k not in errors else None for k, p in enumerate(partials)]
    feeds = {n: recorders[n].feeds for n in nets}
    for n in nets:
        if not feeds[n] and fallback_feeds is not None:
            feeds[n] = fallback_feeds(n)
            notes.append(f"{n}: timed and compared on export example inputs (no task data ran it)")
    nets = [n for n in nets if feeds[n]]
    if not nets:
        raise ValueError(f"{model}: no inputs to benchmark with (no task data and no export examples)")
    ref_out = {n: [ref.engines[n].run(f) for f in feeds[n]] for n in nets}

    # 2. speed per network: every row on the same recorded inputs, calls interleaved round-robin
    speeds = {}
    for n in nets:
        log(f"[{model}] {n}: timing {len(subjects)} rows round-robin on {len(feeds[n])} recorded inputs")
        speeds[n] = time_round_robin([s.engines[n] for s in subjects], feeds[n], **settings.timing())

    # 3. numerics on the same inputs; task metrics and end-to-end speed from step 1
    rows = []
    for k, s in enumerate(subjects):
        row = {"name": s.name, "backend": s.backend, "precision": s.precision, "source": s.source,
               "reference": s.reference, "baseline": s.baseline,
               "speed": {"networks": {n: v for n in nets if isinstance(v := speeds[n][k], dict)}}}
        err = errors.get(k) or next((_error(speeds[n][k]) for n in nets if isinstance(speeds[n][k], Exception)),
                                    None)
        if err is None:
            try:
                _measure(row, s, nets, feeds, ref_out, task, results[k], results[0])
            except Exception as e:  # noqa: BLE001
                err = _error(e)
        if err is not None:
            if s.reference:
                raise RuntimeError(f"the PyTorch reference failed: {err}")
            row["error"] = err
            log(f"[{model}] {s.name}: FAILED ({err})")
        rows.append(row)

    ref_row = rows[0]
    base_row = next((r for r in rows if r["baseline"] and not r.get("error")), None)
    for row in rows:
        row["speedup"] = _ratios(ref_row, row, nets)              # vs PyTorch
        if base_row is not None and not row["reference"]:
            row["vs_baseline"] = _ratios(base_row, row, nets)     # what the build adds over plain onnxruntime
        if row["reference"]:
            row["verdict"] = {"status": "ref", "failures": [], "checked": []}
            continue
        if row.get("error"):
            row["verdict"] = {"status": "fail", "failures": [f"did not run: {row['error']}"], "checked": []}
            continue
        rt, t = ref_row.get("task") or {}, row.get("task") or {}
        row["delta"] = {k: t[k] - rt[k] for k in ("auc", "precision20", "real_auc", "accuracy", "fps")
                        if isinstance(t.get(k), (int, float)) and isinstance(rt.get(k), (int, float))}
        row["verdict"] = tolerances.check(row, ref_row, settings.tolerances)
    return {"task_kind": TASK_KIND.get(model, model), "networks": nets,
            "data": task.description if task is not None else None, "rows": rows, "notes": notes,
            "samples": {n: len(feeds[n]) for n in nets}}


def _error(e: BaseException) -> str:
    msg = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {msg}"


def _measure(row: dict, s: Subject, nets: list[str], feeds: dict, ref_out: dict, task, result, ref_result) -> None:
    """Fill ``row`` with numerics vs the reference on the recorded inputs, task metrics, end-to-end speed."""
    if not s.reference:
        outs = {n: [s.engines[n].run(f) for f in feeds[n]] for n in nets}
        per_net = {n: numerics.compare(ref_out[n], outs[n]) for n in nets}
        row["numerics"] = numerics.summarize(per_net)
        row["numerics_detail"] = per_net
        decisions = []
        for n in nets:
            near = numerics.candidate_agreement(feeds[n], ref_out[n], outs[n])
            if near:
                row["numerics"][f"{n}_candidates"] = near
            for out_name, o in per_net[n].items():
                if o["top1_agreement"] is not None:     # a candidate pick counts by its box, a label exactly
                    scored = near and out_name == "scores"
                    decisions.append(near["top1_box_agreement"] if scored else o["top1_agreement"])
        row["numerics"]["decision_agreement"] = min(decisions) if decisions else None
    if result is not None:
        row["task"] = dict(result.metrics)
        e2e = latency_stats(result.frame_times)
        e2e["fps"] = e2e["throughput"]
        e2e["times_ms"] = [round(t * 1e3, 4) for t in result.frame_times]
        row["speed"]["end_to_end"] = e2e
        if not s.reference:
            row["task"].update(task.agreement(result, ref_result))
            clips = row["task"].get("prediction_agreement")    # labels of whole clips, end to end
            if clips is not None and row.get("numerics"):
                d = row["numerics"].get("decision_agreement")
                row["numerics"]["decision_agreement"] = clips if d is None else min(d, clips)


def overall(models: dict) -> str:
    """``fail`` if any row failed, else ``pass`` (rows without checks count as unchecked, not failed)."""
    statuses = [r["verdict"]["status"] for m in models.values() for r in m["rows"]]
    return "fail" if "fail" in statuses else "pass"
