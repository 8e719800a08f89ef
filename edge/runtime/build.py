"""``edge build``: engines for a target from an export folder (torch-free; runs on the device).

Output folder: the engine files, ``model.json`` (the export manifest), ``examples/`` and, written last,
``fingerprint.json`` (ONNX sha256, target, precision, backend + version, device, plugin library sha256,
build time, per-network files + sha256, session settings, measurements). A rebuild whose inputs hash to
the same build key and whose files still verify is a cache hit and rebuilds nothing.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from edge.errors import UserError
from edge.runtime import fingerprint as fpr
from edge.runtime.ort_backend import SPIN_POLICY
from edge.fileio import atomic_copy, atomic_write_bytes, atomic_write_json, check_output, read_json, sha256_file
from edge.targets import get_target

PRECISIONS = ("fp32", "fp16", "int8")


def read_export(export_dir: Path) -> dict:
    manifest = read_json(export_dir / "model.json", "export manifest (model.json; run `edge export` first)")
    for name, net in manifest.get("networks", {}).items():
        path = export_dir / net["file"]
        if not path.is_file():
            raise FileNotFoundError(f"network {name!r}: {path} missing (re-run `edge export`)")
        if sha256_file(path) != net["sha256"]:
            raise UserError(f"{path} does not match its manifest sha256 (modified after export): re-run `edge export`")
    return manifest


def _source_files(export_dir: Path, manifest: dict, precision: str, backend: str) -> dict[str, str]:
    files = {}
    for name, net in manifest["networks"].items():
        files[net["file"]] = net["sha256"]
        if precision == "int8":
            flavour = "ort" if backend == "onnxruntime" else "trt"
            q = export_dir / "calibration" / f"{name}.int8.{flavour}.onnx"
            if not q.is_file():
                raise UserError(f"no int8 calibration for network {name!r} ({q} missing): run "
                                f"`edge calibrate {export_dir} --data VIDEO...` first")
            files[str(q.relative_to(export_dir))] = sha256_file(q)
        typed = export_dir / "calibration" / f"{name}.fp16.onnx"
        if precision == "fp16" and typed.is_file():
            files[str(typed.relative_to(export_dir))] = sha256_file(typed)
    return files


def _cache_hit(out_dir: Path, key: str) -> dict | None:
    try:
        old = fpr.read(out_dir)
        if old.build_key != key:
            return None
        fpr.verify_files(old, out_dir)
        fpr.verify_plugin(old, out_dir)
        return dict(old.raw)
    except (fpr.EngineMismatch, FileNotFoundError, ValueError, KeyError):
        return None


def build(export_dir: str | Path, target: str, precision: str, out_dir: str | Path, threads: int | None = None,
          roi_kernel: str = "auto", plugins: str | None = None, use_dla: bool = True, log=print) -> dict:
    """Build every network of an export for ``target``; returns the fingerprint (``cache_hit`` key added)."""
    export_dir, out_dir = Path(export_dir), Path(out_dir)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (have: {', '.join(PRECISIONS)})")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    tgt = get_target(target)
    manifest = read_export(export_dir)
    check_output(out_dir, "-o", folder=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(out_dir):
        return _build(export_dir, target, precision, out_dir, tgt, manifest, threads, roi_kernel, plugins,
                      use_dla, log)


@contextlib.contextmanager
def build_lock(out_dir: Path):
    """One build at a time into ``out_dir`` (a second one is refused with one line, not silently lost)."""
    lock = out_dir.parent / f".{out_dir.name}.lock"
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"-o {out_dir}: another `edge build` is writing this folder right now") from None
        yield
    finally:
        os.close(fd)


def _build(export_dir: Path, target: str, precision: str, out_dir: Path, tgt: dict, manifest: dict,
           threads: int | None, roi_kernel: str, plugins: str | None, use_dla: bool, log) -> dict:
    backend = tgt["backend"]
    sources = _source_files(export_dir, manifest, precision, backend)
    plugin_info, registered, trt, cache_name = None, {}, None, None
    if backend == "onnxruntime":
        import onnxruntime as ort
        backend_version, device = ort.__version__, fpr.cpu_device()
        threads = int(threads or os.cpu_count() or 1)
    else:
        from edge.runtime import build_trt
        from edge.runtime.trt_backend import gpu_device
        trt = build_trt.import_tensorrt_builder()
        backend_version, device = trt.__version__, gpu_device()
        if device is None:
            raise UserError(f"target {target} needs a CUDA GPU; none is usable here (use --target cpu)")
        if tgt.get("compute_capability") and device["compute_capability"] != tgt["compute_capability"]:
            raise UserError(f"target {target} is compute {tgt['compute_capability']} but this GPU is "
                            f"{device['name']} (compute {device['compute_capability']}): build on the target device")
        cache_name = build_trt.timing_cache_name(backend_version, device)
        plugins = plugins or os.environ.get("EDGE_PLUGIN_LIBRARY")
        needs_plugins = any(net.get("custom_ops") for net in manifest["networks"].values())
        if plugins:
            build_trt.load_plugin_library(plugins)
            plugin_info = {"path": str(Path(plugins).resolve()), "sha256": sha256_file(plugins)}
            registered = build_trt.registered_plugins(trt)
        elif needs_plugins:
            log("no plugin library given (--plugins / EDGE_PLUGIN_LIBRARY): custom ops use their ONNX "
                "function bodies (slow or unsupported in TensorRT)")
    key = fpr.build_key({"format": fpr.FORMAT, "sources": sources, "target": tgt, "precision": precision,
                         "backend": backend, "backend_version": backend_version, "device": device,
                         "plugin": plugin_info, "threads": threads, "roi_kernel": roi_kernel, "dla": use_dla})
    hit = _cache_hit(out_dir, key)
    if hit is not None:
        log(f"cache hit: {out_dir} is up to date (same ONNX, target, precision, backend and device); nothing rebuilt")
        return dict(hit, cache_hit=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    # build in a staging folder next to the output: a failed build leaves the old engines untouched
    stage = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.build-"))
    try:
        if cache_name and (out_dir / cache_name).is_file():   # this TensorRT version on this GPU only
            shutil.copy2(out_dir / cache_name, stage / cache_name)
        nets = {}
        for name, net in manifest["networks"].items():
            if backend == "onnxruntime":
                from edge.runtime.build_cpu import build_network
                from edge.runtime.probes import probed_output
                nets[name] = build_network(export_dir, stage, name, net, precision, threads, roi_kernel, log,
                                           probe_output=probed_output(manifest, name))
            else:
                nets[name] = _build_trt_network(trt, export_dir, stage, name, net, precision, tgt, registered,
                                                use_dla, stage / cache_name, plugin_info, log)
            log(f"built {name}: {', '.join(nets[name]['files'])} ({nets[name]['precision']}, "
                f"{nets[name]['kind']})")
        old = set()
        try:
            old = {f for e in fpr.read(out_dir).networks.values() for f in e.files}
        except (fpr.EngineMismatch, FileNotFoundError, ValueError):
            pass
        (out_dir / fpr.FILE).unlink(missing_ok=True)       # a half-replaced folder never looks valid
        new = {f for e in nets.values() for f in e["files"]}
        for f in new | ({cache_name} if cache_name and (stage / cache_name).is_file() else set()):
            os.replace(stage / f, out_dir / f)
        if cache_name:
            (out_dir / "timing.cache").unlink(missing_ok=True)   # the unkeyed cache of older builds
        for f in old - new:
            (out_dir / f).unlink(missing_ok=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    atomic_copy(export_dir / "model.json", out_dir / "model.json")
    if (export_dir / "examples").is_dir():
        for f in (export_dir / "examples").iterdir():
            atomic_copy(f, out_dir / "examples" / f.name)
    fp = {
        "format": fpr.FORMAT, "build_key": key, "source_dir": str(export_dir.resolve()),
        "model": manifest.get("model"), "target": target, "precision": precision, "backend": backend,
        "backend_version": backend_version, "device": device, "plugin_library": plugin_info,
        "onnx_sha256": {n: net["sha256"] for n, net in manifest["networks"].items()},
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "session": ({"intra_op_num_threads": threads, "inter_op_num_threads": 1,
                     "spin": SPIN_POLICY,
                     "execution_mode": "sequential",
                     "graph_optimization": "ORT_ENABLE_ALL applied offline; loaded with ORT_DISABLE_ALL"}
                    if backend == "onnxruntime" else {"roi_kernel": "plugin", "timing_cache": cache_name}),
        "networks": nets,
    }
    atomic_write_json(out_dir / fpr.FILE, fp)
    log(f"engines: {out_dir} (fingerprint {out_dir / fpr.FILE})")
    return dict(fp, cache_hit=False)


def prepare_trt_graph(export_dir: Path, name: str, net: dict, precision: str, plan: dict,
                      registered: dict[str, str], body_ops: tuple[str, ...] = ()) -> tuple[bytes, dict]:
    """The ONNX bytes TensorRT parses for one network, and what was done to them (``body_ops``: custom ops
    built from their function bodies instead of their plugins)."""
    from edge.runtime.build_trt import prepare_graph
    if precision == "int8":
        src = export_dir / "calibration" / f"{name}.int8.trt.onnx"
        if not src.is_file():
            raise UserError(f"no int8 calibration for network {name!r} ({src} missing): run "
                            f"`edge calibrate {export_dir} --data VIDEO...` first")
    else:
        src = export_dir / net["file"]
    model = onnx.load(str(src))
    if plan["graph"] == "fp16-typed":
        typed = export_dir / "calibration" / f"{name}.fp16.onnx"     # edge calibrate's, sensitive ops in fp32
        if typed.is_file():
            src, model = typed, onnx.load(str(typed))
        else:
            from edge.runtime.precision import to_fp16
            model = to_fp16(model, inline=False)
    model, to_plugin = prepare_graph(model, registered, body_ops)
    return model.SerializeToString(), {"source": str(src.relative_to(export_dir)), "plugins": to_plugin,
                                       "function_bodies": sorted(body_ops), "graph": plan["graph"]}


def _build_trt_network(trt, export_dir, out_dir, name, net, precision, tgt, registered, use_dla, timing_cache,
                       plugin_info, log) -> dict:
    """Build one network; where a plugin op also has a function body TensorRT can build (ConvLSTMCell), build
    both forms, time them on the example inputs in one interleaved run and keep the faster (as the CPU build
    does for the numba RoiPool split); the timings go into the fingerprint."""
    from edge.runtime import build_trt
    p = build_trt.plan(trt.__version__, tgt, precision, use_dla)
    graph, info = prepare_trt_graph(export_dir, name, net, precision, p, registered)
    engine, report = build_trt.build_engine(trt, graph, net, p, timing_cache, log)   # in the staging folder
    file = f"{name}.engine"
    atomic_write_bytes(out_dir / file, engine)
    entry = {"kind": "tensorrt", "precision": precision, "plan": p,
             "profile": build_trt.profile(net, static=p["static_profile"]), "build": report, **info}
    alternatives = tuple(op for op in info["plugins"] if op in build_trt.BODY_ALTERNATIVE_OPS)
    if alternatives:
        entry.update(_keep_faster_form(trt, export_dir, out_dir, name, net, precision, p, registered, alternatives,
                                       file, timing_cache, plugin_info, report, log))
    entry["files"] = {file: sha256_file(out_dir / file)}   # the kept form is always written as `file`
    return entry


def _keep_faster_form(trt, export_dir, out_dir, name, net, precision, p, registered, ops, file, timing_cache,
                      plugin_info, plugin_report, log) -> dict:
    """Build ``ops`` from their function bodies too and time both engines; returns the entry updates."""
    from edge.runtime import build_trt
    from edge.runtime.build_cpu import compare_ms
    from edge.runtime.feeds import load_examples
    from edge.runtime.ort_backend import net_specs
    from edge.runtime.trt_backend import TrtEngine

    body_file = f"{name}.body.engine"
    try:
        graph, info = prepare_trt_graph(export_dir, name, net, precision, p, registered, body_ops=ops)
        engine, report = build_trt.build_engine(trt, graph, net, p, timing_cache, log)
    except UserError as e:
        log(f"{name}: the function-body form of {', '.join(ops)} did not build ({e}): plugin kept")
        return {"custom_op_forms": {"ops": list(ops), "kept": "plugin", "function_body_error": str(e)}}
    atomic_write_bytes(out_dir / body_file, engine)
    ins, outs = net_specs(net)
    feeds = load_examples(export_dir, name)[0]
    lib = plugin_info["path"] if plugin_info else None
    engines = {}
    try:
        for form, f, rep in (("plugin", file, plugin_report), ("function_body", body_file, report)):
            engines[form] = TrtEngine(name, out_dir / f, ins, outs, lib, (rep.get("dla") or {}).get("core"))
        a, b = (engines[k].run(feeds) for k in ("plugin", "function_body"))
        diff = max((float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a if a[k].size), default=0.0)
        ms = compare_ms({k: (lambda e=e: e.run(feeds)) for k, e in engines.items()})
    finally:
        for e in engines.values():
            e.close()
    kept = "function_body" if ms["function_body"] < ms["plugin"] else "plugin"
    log(f"{name}: {', '.join(ops)} plugin {ms['plugin']:.3f} ms vs function body {ms['function_body']:.3f} ms "
        f"({precision}): {kept.replace('_', ' ')} kept")
    forms = {"ops": list(ops), "kept": kept, "timings_ms": {k: round(v, 4) for k, v in ms.items()},
             "max_abs_diff_plugin_vs_body": diff}
    if kept == "plugin":
        (out_dir / body_file).unlink()
        return {"custom_op_forms": forms}
    os.replace(out_dir / body_file, out_dir / file)
    return {"custom_op_forms": forms, "build": report, **info}
