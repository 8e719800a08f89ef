"""Benchmark figures with matplotlib (Agg, no display): OTB success/precision curves per row, latency
histograms per network, FPS by backend/precision. Each figure is written atomically."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from edge.fileio import atomic_write_bytes


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def _label(row: dict) -> str:
    return row["name"]


def otb_curves(model: str, rows: list[dict], path: Path) -> Path | None:
    """Success (IoU threshold) and precision (centre error px) curves, AUC and precision@20 in the legend."""
    rows = [r for r in rows if (r.get("task") or {}).get("success_curve")]
    if not rows:
        return None
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in rows:
        t = r["task"]
        s, p = np.asarray(t["success_curve"]), np.asarray(t["precision_curve"])
        style = (dict(lw=2.2, color="black") if r.get("reference")
                 else dict(lw=1.2, ls="--") if r.get("anchor") else dict(lw=1.4))
        a.plot(np.linspace(0, 1, len(s)), s, label=f"{_label(r)} [{t['auc']:.3f}]", **style)
        b.plot(np.arange(len(p)), p, label=f"{_label(r)} [{t['precision20']:.3f}]", **style)
    a.set(title=f"{model}: success plot (OPE)", xlabel="overlap threshold", ylabel="success rate",
          xlim=(0, 1), ylim=(0, 1.02))
    b.set(title=f"{model}: precision plot (OPE)", xlabel="location error threshold (px)",
          ylabel="precision", xlim=(0, len(p) - 1), ylim=(0, 1.02))
    b.axvline(20, color="grey", lw=0.8, ls=":")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left" if ax is a else "lower right")
    return _save(fig, path)


def latency_histograms(model: str, rows: list[dict], networks: list[str], path: Path) -> Path | None:
    """One panel per network: histogram of per-call latency (ms) for every row, log-spaced bins."""
    nets = [n for n in networks if any(n in (r.get("speed") or {}).get("networks", {}) for r in rows)]
    if not nets:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(nets), figsize=(5.2 * len(nets), 3.8), squeeze=False)
    for ax, net in zip(axes[0], nets):
        samples = {_label(r): np.asarray(r["speed"]["networks"][net]["times_ms"]) for r in rows
                   if net in r["speed"]["networks"] and r["speed"]["networks"][net].get("times_ms")}
        if not samples:
            continue
        lo = max(min(float(v.min()) for v in samples.values()), 1e-3)
        hi = max(float(v.max()) for v in samples.values())
        bins = np.geomspace(lo, hi * 1.001 if hi > lo else lo * 2, 40)
        for name, v in samples.items():
            ax.hist(v, bins=bins, alpha=0.55, label=f"{name} (median {np.median(v):.2f} ms)")
        ax.set_xscale("log")
        from matplotlib.ticker import NullFormatter
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(title=f"{model} / {net}: latency per call", xlabel="ms (log)", ylabel="calls")
        ax.legend(fontsize=7)
    return _save(fig, path)


def fps_bars(report: dict, path: Path) -> Path | None:
    """End-to-end FPS of every row of every model, grouped by model, labelled backend/precision."""
    entries = [(model, r) for model, m in report.get("models", {}).items() for r in m.get("rows", [])
               if ((r.get("speed") or {}).get("end_to_end") or {}).get("fps")]
    if not entries:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(entries) + 1.2))
    labels = [f"{m}: {r['name']} ({r.get('backend', '')}, {r.get('precision', '')})" for m, r in entries]
    fps = [r["speed"]["end_to_end"]["fps"] for _, r in entries]
    colors = ["#444444" if r.get("reference") else "#4c72b0" if r.get("baseline") else "#55a868" if r.get("anchor")
              else "#dd8452"
              for _, r in entries]
    y = np.arange(len(fps))[::-1]
    bars = ax.barh(y, fps, color=colors)
    ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set(xlabel="frames per second, end to end (grey: PyTorch, blue: plain onnxruntime, orange: engines, "
                  "green: OpenCV, what a user would pick instead)",
           title="FPS by backend / precision")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def attribute_bars(model: str, rows: list[dict], path: Path) -> Path | None:
    """Success AUC per attribute tag, one bar per row (OTB's per-attribute comparison)."""
    rows = [r for r in rows if (r.get("task") or {}).get("attributes")]
    if not rows:
        return None
    tags = sorted({t for r in rows for t in r["task"]["attributes"]})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(tags) + 2), 4))
    width = 0.8 / len(rows)
    x = np.arange(len(tags))
    for k, r in enumerate(rows):
        a = r["task"]["attributes"]
        ax.bar(x + (k - (len(rows) - 1) / 2) * width, [(a.get(t) or {}).get("auc", np.nan) for t in tags], width,
               label=_label(r), hatch="//" if r.get("anchor") else None)
    ax.set_xticks(x, [f"{t} ({(rows[0]['task']['attributes'].get(t) or {}).get('sequences', '?')})" for t in tags])
    ax.set(title=f"{model}: success AUC per attribute (hatched: OpenCV, what a user would pick instead)",
           ylabel="AUC", ylim=(0, 1))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def write_all(report: dict, out_dir: str | Path) -> list[str]:
    """All figures for ``report`` into ``out_dir``; returns the written paths."""
    out_dir = Path(out_dir)
    written = []
    for model, m in report.get("models", {}).items():
        rows = m.get("rows", [])
        for p in (otb_curves(model, rows, out_dir / f"{model}_otb.png"),
                  attribute_bars(model, rows, out_dir / f"{model}_attributes.png"),
                  latency_histograms(model, rows, m.get("networks", []), out_dir / f"{model}_latency.png")):
            if p:
                written.append(str(p))
    p = fps_bars(report, out_dir / "fps.png")
    if p:
        written.append(str(p))
    return written
