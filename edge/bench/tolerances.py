"""Pass/fail of a benchmark row against per-precision tolerances (``edge/tolerances.json``; torch-free)."""
from __future__ import annotations

from pathlib import Path

from edge.eval.paired import mean_difference_interval
from edge.fileio import read_json

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "tolerances.json"
KEYS = ("top1_agreement_min", "auc_delta_max", "precision20_delta_max", "accuracy_delta_max", "min_cosine",
        "alarm_events_delta_max")


def load(path: str | Path | None = None) -> dict[str, dict]:
    """Default tolerances, with the precisions/keys given in ``path`` (same layout) overriding them."""
    tol = _read(DEFAULT_FILE)
    if path is not None:
        for precision, rules in _read(Path(path)).items():
            tol.setdefault(precision, {}).update(rules)
    return tol


def _read(path: Path) -> dict[str, dict]:
    data = read_json(path, "tolerances file")
    data = {k: v for k, v in data.items() if not k.startswith("_")}
    for precision, rules in data.items():
        if not isinstance(rules, dict):
            raise ValueError(f"tolerances file {path}: {precision!r} must map rule names to numbers")
        unknown = set(rules) - set(KEYS)
        if unknown:
            raise ValueError(f"tolerances file {path}: unknown rule(s) {sorted(unknown)} for {precision!r} "
                             f"(known: {', '.join(KEYS)})")
        for k, v in rules.items():
            if v is not None and not isinstance(v, (int, float)):
                raise ValueError(f"tolerances file {path}: {precision}.{k} must be a number or null")
    return data


LOOSEST_FIRST = ("int8", "fp16", "fp32")


def resolve(precision: str, tol: dict) -> str:
    """The rules a precision is held to; a mixed engine (``fp32+int8``: some networks kept in float) gets
    those of its lowest precision."""
    if precision in tol or "+" not in precision:
        return precision
    parts = precision.split("+")
    return next((p for p in LOOSEST_FIRST if p in parts and p in tol), precision)


def check(row: dict, reference: dict, tol: dict[str, dict]) -> dict:
    """Verdict of ``row`` against ``reference`` for the row's precision:
    ``{"status": "pass" | "fail" | "unchecked", "failures": [...], "checked": [...]}``.

    ``row``/``reference`` carry ``precision``, ``numerics`` (``decision_agreement`` or ``top1_agreement``,
    ``min_cosine``) and ``task`` (``auc``, ``precision20``, ``accuracy``, ``alarm_events``); a metric missing on either side is
    not checked.
    """
    precision = resolve(row.get("precision") or "fp32", tol)
    if precision not in tol:
        return {"status": "fail", "checked": [],
                "failures": [f"no tolerances for precision {precision!r} (have: {', '.join(sorted(tol))})"]}
    rules, fails, checked, notes = tol[precision], [], [], []
    num, task, ref_task = row.get("numerics") or {}, row.get("task") or {}, reference.get("task") or {}

    def at_least(value, limit, what):
        if limit is not None and value is not None:
            checked.append(what)
            if value < limit:
                fails.append(f"{what} {value:.4f} < {limit}")

    def within(key, limit, what):
        a, b = task.get(key), ref_task.get(key)
        if limit is not None and a is not None and b is not None:
            checked.append(what)
            if abs(a - b) > limit + 1e-12:
                noise = closed_loop_noise(task, ref_task, key)
                if noise is None:
                    fails.append(f"{what} delta {a - b:+.4f} exceeds {limit}")
                else:
                    notes.append(f"{what} delta {a - b:+.4f} exceeds {limit} but is not significant: {noise}")

    # decisions: class labels exactly (on identical step inputs and per clip end to end); a tracker's best
    # candidate by its box (the same pick when its IoU with PyTorch's is >= 0.5: neighbours nearly coincide)
    agreement = num.get("decision_agreement", num.get("top1_agreement"))
    at_least(agreement, rules.get("top1_agreement_min"), "top-1 agreement")
    at_least(num.get("min_cosine"), rules.get("min_cosine"), "min cosine")
    within("auc", rules.get("auc_delta_max"), "success AUC")
    within("precision20", rules.get("precision20_delta_max"), "precision@20")
    within("accuracy", rules.get("accuracy_delta_max"), "top-1 accuracy")
    within("alarm_events", rules.get("alarm_events_delta_max"), "false alarm events")
    status = "fail" if fails else ("pass" if checked else "unchecked")
    out = {"status": status, "failures": fails, "checked": checked}
    if notes:
        out["notes"] = notes
    return out


#: closed-loop tracking metrics: per-sequence values exist, and one sequence can flip on a small difference
PER_SEQUENCE = ("auc", "precision20")


def closed_loop_noise(task: dict, ref_task: dict, key: str) -> str | None:
    """Why a tracking metric's delta beyond its tolerance is noise, or None when it is not (then it fails).

    A tracker runs closed loop: a difference far below what changes a decision on identical inputs (checked
    by the agreement rule) can still send one sequence down another path, and with a dozen sequences that one
    path moves the mean by more than the tolerance. So a delta beyond the tolerance fails unless the 95 %
    paired bootstrap interval of the mean per-sequence change (same sequences, pairs kept) contains 0; the
    note names the interval and the sequence that moved most."""
    if key not in PER_SEQUENCE:
        return None
    mine, ref = task.get("sequences") or {}, ref_task.get("sequences") or {}
    names = [n for n in ref if n in mine and mine[n].get(key) is not None and ref[n].get(key) is not None]
    if len(names) < 2:
        return None
    d = [mine[n][key] - ref[n][key] for n in names]
    lo, hi = mean_difference_interval(d)
    if not lo <= 0.0 <= hi:
        return None
    worst = max(range(len(d)), key=lambda i: abs(d[i]))
    return (f"95 % paired bootstrap interval [{lo:+.3f}, {hi:+.3f}] over {len(d)} sequences contains 0; "
            f"{names[worst]} moved most ({d[worst]:+.3f})")
