"""``edge bench`` end to end: load engine folders, group them by model, add the PyTorch reference and the
plain-onnxruntime baseline, run :func:`edge.bench.runner.bench_model`, write the reports."""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edge.bench import data as bench_data
from edge.bench import plots, report, runner, tolerances
from edge.bench.runner import Subject
from edge.errors import UserError
from edge.runtime.base import Engines


def load_engine_dir(path: str | Path, threads: int | None) -> Engines:
    from edge.runtime import load_engines
    return load_engines(path, threads=threads)


def export_dir_of(engine_dir: Path, explicit: Sequence[str], model: str) -> Path | None:
    """The un-optimised export an engine was built from: ``--export`` (matching model) or the fingerprint."""
    from edge.runtime.load import load_manifest
    for d in explicit:
        try:
            if load_manifest(d, "export manifest").kind == model:
                return Path(d)
        except (FileNotFoundError, ValueError, UserError):
            raise FileNotFoundError(f"--export {d}: no readable model.json (run edge export)") from None
    from edge.runtime import fingerprint
    try:
        src = fingerprint.read(engine_dir).source_dir
    except (UserError, FileNotFoundError):     # no readable fingerprint: no source info
        src = None
    for cand in ([Path(src), engine_dir / src] if src else []):
        if (cand / "model.json").is_file():
            return cand
    return None


def row_name(path: Path, engines: Engines, taken: set[str]) -> str:
    name = path.name or str(path)
    if name in taken:
        name = f"{name} ({engines.backend}/{engines.precision})"
    taken.add(name)
    return name


def make_task(model: str, engines: Engines, data: Sequence[str], cache: str, max_sequences: int | None,
              max_frames: int | None, max_clips: int | None, log: Callable[[str], None],
              tracker_params: dict | None = None):
    """The task of ``model`` on the given data (default: generated), or (None, reason) if it cannot run;
    ``tracker_params`` for every tracker row."""
    clips = [d for d in data if bench_data.is_clip_folder(d)]
    seqs = [d for d in data if not bench_data.is_clip_folder(d)]
    for d in data:
        if not Path(d).exists():
            raise FileNotFoundError(f"--data {d} does not exist")
    try:
        if model == "tracker":
            from edge.bench.tasks import TrackerTask
            real = []
            if not seqs:
                log("[tracker] generating OTB-format sequences (cached)")
                seqs = [str(bench_data.generated_sequences(cache))]
                from edge.bench.real_tracking import real_sequences   # + real footage, hand-drawn boxes
                real = real_sequences(log=lambda m: log(f"[tracker] {m}"), max_frames=max_frames)
            loaded = bench_data.load_sequences(seqs, max_sequences, max_frames, log)
            if not loaded:
                raise ValueError(f"no OTB/GOT-10k sequences found in {', '.join(seqs)}")
            frames = sum(len(s.frames) for s in loaded)
            desc = f"{len(loaded)} sequences, {frames} frames ({', '.join(seqs)})"
            if real:
                drawn = sum(int(np.isfinite(s.gt[1:, 0]).sum()) for s in real)
                desc += (f"; real footage: {len(real)} shots of the offline clips, {drawn} frames with hand-drawn "
                         f"boxes (edge/data/real_tracking.json; Real AUC column)")
            if tracker_params:
                desc += f"; tracker parameters {json.dumps(tracker_params, sort_keys=True)}"
            return TrackerTask(loaded, desc, real, tracker_params), None
        if model == "classifier":
            from edge.bench.tasks import ClassifierTask
            classes = engines.config.classes
            if not clips:
                log("[classifier] generating labelled test clips (cached)")
                clips = [str(bench_data.generated_clips(cache))]
            loaded = [c for d in clips for c in bench_data.load_clips(d, classes)][:max_clips]
            from edge.bench.alarms import with_alarms   # + false alarms on held-back real footage
            return with_alarms(ClassifierTask(loaded, f"{len(loaded)} labelled clips ({', '.join(clips)})"),
                               max_frames, log), None
    except ImportError as e:
        return None, f"task not run: {e}"
    return None, f"no task metrics for model {model!r}"


def reference_weights_sha256(source, weights: str | None) -> str | None:
    """The weights hash ``edge export`` writes into ``model.json``, for the reference model built here."""
    try:
        from edge.export.onnx_export import weights_sha256
        from edge.models import registry
    except ImportError:  # pragma: no cover - export side missing
        return None
    return weights_sha256(weights, registry.build(source, weights))


def run_suite(engine_dirs: Sequence[str], data: Sequence[str] = (), tolerances_file: str | None = None,
              export_dirs: Sequence[str] = (), baseline: bool = True, threads: int = 2, duration: float = 1.0,
              samples: int = 200, max_sequences: int | None = None, max_frames: int | None = None,
              max_clips: int | None = None, cache: str = "out/bench/data", json_path: str | None = None,
              md_path: str | None = None, plots_dir: str | None = None,
              log: Callable[[str], None] = print, anchors: Sequence[str] | bool = True,
              conditions: Sequence[str] = (), tracker_params: dict | None = None) -> tuple[dict, str]:
    """Benchmark every model found in ``engine_dirs``; returns (report, "pass" | "fail"). ``conditions``
    (``edge.bench.conditions``): the tracker rows again on the same data as those cameras would give it
    (reported, not judged). ``anchors``: the OpenCV trackers beside the tracker rows (True: all of
    ``edge.bench.anchors.ANCHORS``; False or empty: none)."""
    from edge.bench import anchors as anchor_rows
    from edge.bench import conditions as camera
    conds = camera.select(conditions) if conditions else []      # an unknown name fails before any work
    kinds = anchor_rows.ANCHORS if anchors is True else anchor_rows.check_kinds(anchors or ())
    tol = tolerances.load(tolerances_file)
    settings = runner.Settings(threads=threads, min_s=duration, samples=samples, tolerances=tol)
    groups: dict[str, list[tuple[Path, Engines]]] = {}
    for d in engine_dirs:
        engines = load_engine_dir(d, threads)
        groups.setdefault(engines.kind, []).append((Path(d), engines))

    models = {}
    for model, items in groups.items():
        first_dir, first = items[0]
        manifest = first.manifest
        weights = manifest.weights.get("path")
        from edge.models.registry import MODELS, torch_engines  # lazily: torch only for the reference row
        source = manifest.model if manifest.model in MODELS else manifest.module or model
        log(f"[{model}] PyTorch reference: {source} (weights: {weights or 'default'})")
        if source not in MODELS:
            try:
                source = importlib.import_module(source)
            except ImportError as e:
                raise ValueError(f"model module {source!r} of the engines is not importable here ({e})") from None
        subjects = [Subject("pytorch", torch_engines(source, weights=weights, threads=threads), "pytorch", "fp32",
                            reference=True)]
        notes = []
        export = export_dir_of(first_dir, export_dirs, model)
        if baseline:
            if export is None:
                notes.append("baseline row skipped: export folder unknown (pass --export EXPORT_DIR)")
            else:
                from edge.bench.baseline import plain_engines
                subjects.append(Subject("onnxruntime-plain", plain_engines(export), "onnxruntime (plain)", "fp32",
                                        source=str(export), baseline=True))
        taken: set[str] = {s.name for s in subjects}
        for path, engines in items:
            subjects.append(Subject(row_name(path, engines, taken), engines, engines.backend, engines.precision,
                                    source=str(path)))
        task, why = make_task(model, first, data, cache, max_sequences, max_frames, max_clips, log,
                              tracker_params)
        if why:
            notes.append(why)
            log(f"[{model}] {why}")

        def fallback(net: str, export=export):
            if export is None:
                return []
            from edge.runtime.feeds import load_examples
            try:
                return [load_examples(export, net)[0]]
            except FileNotFoundError:
                return []
        section = runner.bench_model(model, subjects, task, settings, fallback, log)
        ref_hash = reference_weights_sha256(source, weights)
        for row, s in zip(section["rows"], subjects):
            got = s.engines.manifest.weights.get("sha256")
            if not row["reference"] and ref_hash and got and got != ref_hash:
                msg = (f"built from other weights than the PyTorch reference (export sha256 {got[:12]}, "
                       f"reference {ref_hash[:12]}): re-export, or rebuild from the same weights")
                row["verdict"] = {**row["verdict"], "status": "fail",
                                  "failures": [msg, *row["verdict"].get("failures", [])]}
        section["notes"] = notes + section["notes"]
        if kinds and model == "tracker" and task is not None:     # OpenCV CSRT/KCF/MIL, same sequences
            anchor_rows.add_to_section(section, task.sequences, log, real=task.real, kinds=kinds)
        if conds and model == "tracker" and task is not None:
            section["conditions"] = camera.tracker_section(conds, subjects, task, kinds, log)
        models[model] = section

    status = runner.overall(models)
    rep = {"host": report.host_info(), "status": status,
           "settings": {"threads": threads, "duration_s": duration, "samples": samples,
                        "warmup_s": settings.warmup_s, "tolerances": tol},
           "models": models}
    if plots_dir:
        rep["plots"] = plots.write_all(rep, plots_dir)
    report.write(rep, json_path, md_path)
    return rep, status
