"""Benchmark report: JSON (full numbers) and a Markdown table (what a README shows); atomic writes."""
from __future__ import annotations

import math
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from edge.fileio import atomic_write_bytes, atomic_write_json


def host_info() -> dict:
    """Date, CPU model (``lscpu``), logical CPUs, onnxruntime version."""
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), cpu)
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import onnxruntime
        ort = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        ort = None
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "cpus": os.cpu_count(), "python": platform.python_version(), "onnxruntime": ort}


def clean(obj):
    """JSON-safe copy: non-finite floats become null (strict JSON has no NaN/Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return clean(obj.item())
    return obj


def _f(v, fmt: str = "{:.3f}", none: str = "—") -> str:
    return none if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def _delta(v) -> str:
    return "" if v is None else f" ({v:+.3f})"


def markdown(report: dict) -> str:
    """One table per model: speed per network (median ms and speed-up vs PyTorch), end-to-end FPS, numerics,
    task metric with delta to PyTorch, verdict."""
    host = report.get("host", {})
    lines = [f"# edge bench — {host.get('date', '')}", "",
             f"CPU: {host.get('cpu', '?')}, {report.get('settings', {}).get('threads', '?')} threads "
             f"(of {host.get('cpus', '?')} logical CPUs); onnxruntime {host.get('onnxruntime', '?')}. "
             "Network columns: median latency per call in ms (speed-up vs PyTorch = PyTorch median / row median, "
             "same recorded inputs, rows timed round-robin). E2E FPS: whole runtime per frame on the task data "
             "(x = vs PyTorch); E2E vs plain ORT: what `edge build` adds over a default onnxruntime session on "
             "the un-optimised export.", ""]
    for model, m in report.get("models", {}).items():
        nets = m.get("networks", [])
        real = m.get("task_kind") == "tracking" and any((r.get("task") or {}).get("real_auc") is not None
                                                        for r in m.get("rows", []))
        task_cols = (["AUC", "Prec@20"] + (["Real AUC"] if real else [])) if m.get("task_kind") == "tracking" \
            else ["Top-1 acc", "Alarms/h (held-back)"]
        head = (["Row", "Backend", "Precision"] + [f"{n} ms (x)" for n in nets]
                + ["E2E FPS (x)", "E2E vs plain ORT"] + task_cols + ["Top-1 agree", "Max abs err", "Min cos", "Verdict"])
        lines += [f"## {model}", ""]
        if m.get("data"):
            lines += [f"Data: {m['data']}", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in m.get("rows", []):
            speed, up = row.get("speed", {}), row.get("speedup", {})
            cells = [row["name"], row.get("backend", ""), row.get("precision", "")]
            for n in nets:
                st = speed.get("networks", {}).get(n)
                cells.append(f"{_f(st and st.get('median_ms'), '{:.2f}')} ({_f(up.get(n), '{:.1f}x', '—')})"
                             if st else "—")
            e2e = speed.get("end_to_end")
            cells.append(f"{_f(e2e and e2e.get('fps'), '{:.1f}')} ({_f(up.get('end_to_end'), '{:.1f}x', '—')})"
                         if e2e else "—")
            cells.append(_f((row.get("vs_baseline") or {}).get("end_to_end"), "{:.2f}x"))
            task, delta = row.get("task") or {}, row.get("delta") or {}
            keys = (["auc", "precision20"] + (["real_auc"] if real else [])) if m.get("task_kind") == "tracking" \
                else ["accuracy"]
            for k in keys:
                cells.append(_f(task.get(k)) + _delta(delta.get(k)) if task.get(k) is not None else "—")
            if m.get("task_kind") != "tracking":        # false alarms on held-back real footage (edge.bench.alarms)
                cells.append(f"{_f(task.get('alarm_events_per_hour'), '{:.0f}')} ({task['alarm_events']} in "
                             f"{task.get('alarm_footage_s', 0):.0f} s)" if task.get("alarm_events") is not None else "—")
            num = row.get("numerics") or {}
            near = next((v for k, v in num.items() if k.endswith("_candidates") and isinstance(v, dict)), None)
            agree = _f(num.get("top1_agreement"), "{:.2%}")
            if near and num.get("top1_agreement") is not None:
                agree += f" (box IoU≥{near['min_iou']}: {near['top1_box_agreement']:.0%})"
            if task.get("prediction_agreement") is not None:
                agree += f" (clips {task['prediction_agreement']:.1%})"
            cells += [agree, _f(num.get("max_abs_err"), "{:.2e}"),
                      _f(num.get("min_cosine"), "{:.5f}")]
            v = row.get("verdict") or {}
            status = v.get("status", "ref")
            cells.append(status + (": " + "; ".join(v["failures"]) if v.get("failures") else "")
                         + (" (" + "; ".join(v["notes"]) + ")" if v.get("notes") else ""))
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines += attribute_table(m) + real_table(m) + conditions_table(m)
        for note in m.get("notes", []):
            lines += ["", f"- {note}"]
        lines.append("")
    lines.append(f"Overall: **{report.get('status', '?')}**")
    return "\n".join(lines) + "\n"


def attribute_table(section: dict) -> list[str]:
    """Markdown lines: success AUC per attribute tag (columns) for every tracker row with tagged sequences."""
    rows = [r for r in section.get("rows", []) if ((r.get("task") or {}).get("attributes"))]
    if not rows:
        return []
    tags = sorted({t for r in rows for t in r["task"]["attributes"]})
    counts = {t: next(r["task"]["attributes"][t]["sequences"] for r in rows if t in r["task"]["attributes"])
              for t in tags}
    out = ["", "AUC per attribute (sequences):", "",
           "| Row | " + " | ".join(f"{t} ({counts[t]})" for t in tags) + " |", "|---|" + "---|" * len(tags)]
    for r in rows:
        a = r["task"]["attributes"]
        out.append(f"| {r['name']} | " + " | ".join(_f((a.get(t) or {}).get("auc")) for t in tags) + " |")
    return out


def conditions_table(section: dict) -> list[str]:
    """``edge bench --conditions``: AUC per row under each camera condition (real-footage AUC after a slash)."""
    conds = section.get("conditions")
    if not conds:
        return []
    names = list(conds)
    rows = list(next(iter(conds.values()))["rows"])
    lines = ["", "Under camera conditions (`edge.bench.conditions`; AUC, and real-footage AUC after the slash when "
             "the real shots ran; reported, not judged):", "",
             "| Row | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for r in rows:
        cells = []
        for c in names:
            m = conds[c]["rows"].get(r) or {}
            cell = "—" if m.get("auc") is None else f"{m['auc']:.3f}"
            if m.get("real_auc") is not None:
                cell += f" / {m['real_auc']:.3f}"
            cells.append(cell)
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    lines += [""] + [f"- `{c}`: {v['what']}" for c, v in conds.items()]
    return lines


def real_table(section: dict) -> list[str]:
    """Markdown lines: AUC / success at IoU 0.5 per real-footage shot, then the means, for every tracker row that
    has them (``edge.bench.tasks.real_metrics`` in the row's ``task``)."""
    rows = [r for r in section.get("rows", []) if (r.get("task") or {}).get("real_sequences")]
    if not rows:
        return []
    names = list(rows[0]["task"]["real_sequences"])
    out = ["", "Real footage, per shot (AUC / success at IoU 0.5, on the frames with a hand-drawn box; reported, "
           "not judged: a few shots move too much between runs for a tolerance):", "",
           "| Row | " + " | ".join(names) + " | mean AUC | mean P@20 |", "|---|" + "---|" * (len(names) + 2)]
    for r in rows:
        t = r["task"]
        seq = t["real_sequences"]
        out.append(f"| {r['name']} | " + " | ".join(
            f"{seq[n]['auc']:.3f} / {seq[n]['success50']:.2f}" if n in seq else "—" for n in names)
            + f" | {t['real_auc']:.3f} | {t['real_precision20']:.3f} |")
    return out


def write(report: dict, json_path: str | Path | None = None, md_path: str | Path | None = None) -> None:
    """Write the JSON and/or Markdown report atomically (temporary file + rename)."""
    if json_path:
        atomic_write_json(json_path, clean(report))
    if md_path:
        atomic_write_bytes(md_path, markdown(report).encode())
