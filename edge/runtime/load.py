"""``load_engines(ENGINE_DIR) -> Engines`` (torch-free).

The fingerprint is checked **before** TensorRT is touched: files present and unmodified (sha256), the
plugin library present and unchanged, then device and backend version. Any mismatch raises
``EngineMismatch`` (a ``UserError``: one line naming the fix; ``edge`` exits with code 2).
"""
from __future__ import annotations

from pathlib import Path

from edge.runtime import fingerprint as fpr
from edge.runtime.base import Engines
from edge.runtime.fileio import read_json


def load_engines(engine_dir: str | Path, target: str | None = None, threads: int | None = None) -> Engines:
    """Load every network of an engine folder built by ``edge build``."""
    engine_dir = Path(engine_dir)
    fp = fpr.read(engine_dir)
    if target is not None and fp.get("target") != target:
        raise fpr.EngineMismatch(f"{engine_dir} was built for target {fp.get('target')!r}, not {target!r}: "
                                 f"{fpr.rebuild_hint(dict(fp, target=target), engine_dir)}")
    fpr.verify_files(fp, engine_dir)
    fpr.verify_plugin(fp, engine_dir)
    manifest = read_json(engine_dir / "model.json", "engine manifest")
    backend = fp.get("backend")
    nets = {}
    if backend == "onnxruntime":
        import onnxruntime as ort
        from edge.runtime.ort_backend import load_network
        fpr.check_backend_version(fp, engine_dir, ort.__version__, "onnxruntime")
        fpr.check_cpu_device(fp, engine_dir)
        sess = fp.get("session", {})
        threads = threads or sess.get("intra_op_num_threads")
        # fingerprints before the spin policy recorded a bool
        spin = sess.get("spin") or ("always" if sess.get("allow_spinning") else "never")
        for name, entry in fp["networks"].items():
            nets[name] = load_network(engine_dir, name, entry, manifest["networks"][name], threads, spin=spin)
    elif backend == "tensorrt":
        from edge.runtime.ort_backend import net_specs as specs
        from edge.runtime.trt_backend import TrtEngine, gpu_device, tensorrt_version
        fpr.check_gpu_device(fp, engine_dir, gpu_device())
        fpr.check_backend_version(fp, engine_dir, tensorrt_version(), "TensorRT")
        plugin = (fp.get("plugin_library") or {}).get("path")
        for name, entry in fp["networks"].items():
            ins, outs = specs(manifest["networks"][name])
            (file,) = entry["files"]
            dla = (entry.get("build") or {}).get("dla") or {}
            nets[name] = TrtEngine(name, engine_dir / file, ins, outs, plugin, dla.get("core"))
    else:
        raise fpr.EngineMismatch(f"{engine_dir}: unknown backend {backend!r}: {fpr.rebuild_hint(fp, engine_dir)}")
    # what the networks were built as (an int8 build keeps a network fp32 where int8 does not pay)
    precisions = {e.get("precision") or fp["precision"] for e in fp["networks"].values()} or {fp["precision"]}
    return Engines(nets, manifest, backend=backend, precision="+".join(sorted(precisions)))
