"""``load_engines(ENGINE_DIR) -> Engines`` (torch-free).

The fingerprint is checked **before** TensorRT is touched: files present and unmodified (sha256), the
plugin library present and unchanged, then device and backend version. Any mismatch raises
``EngineMismatch`` (a ``UserError``: one line naming the fix; ``edge`` exits with code 2).
"""
from __future__ import annotations

from pathlib import Path

from edge.contract import ContractError, Manifest
from edge.fileio import read_json
from edge.runtime import fingerprint as fpr
from edge.runtime.base import Engines


def load_manifest(folder: str | Path, what: str = "engine manifest") -> Manifest:
    """The typed ``model.json`` of an export or engine folder (one-line error when missing or malformed)."""
    path = Path(folder) / "model.json"
    return Manifest.from_dict(read_json(path, what), str(path))


def load_engines(engine_dir: str | Path, target: str | None = None, threads: int | None = None,
                 kind: str | None = None) -> Engines:
    """Load every network of an engine folder built by ``edge build``; ``kind`` (``tracker`` /
    ``classifier``) refuses another model's engines with one line."""
    engine_dir = Path(engine_dir)
    fp = fpr.read(engine_dir)
    if target is not None and fp.target != target:
        raise fpr.EngineMismatch(f"{engine_dir} was built for target {fp.target!r}, not {target!r}: "
                                 f"{fpr.rebuild_hint(dict(fp.raw, target=target), engine_dir)}")
    try:
        manifest = load_manifest(engine_dir)
    except ContractError as e:
        raise fpr.EngineMismatch(f"{e}; {fpr.rebuild_hint(fp, engine_dir)}") from None
    if kind is not None and manifest.kind != kind:
        raise fpr.EngineMismatch(f"{engine_dir} holds {manifest.kind} engines "
                                 f"({', '.join(manifest.networks)}), not {kind} engines")
    missing = [n for n in manifest.networks if n not in fp.networks]
    if missing:
        raise fpr.EngineMismatch(f"{engine_dir}: fingerprint has no network(s) {missing}: "
                                 f"{fpr.rebuild_hint(fp, engine_dir)}")
    fpr.verify_files(fp, engine_dir)
    fpr.verify_plugin(fp, engine_dir)
    nets, composites = {}, {}
    if fp.backend == "onnxruntime":
        import onnxruntime as ort
        from edge.runtime.ort_backend import load_network, probed_engine, session
        from edge.runtime.probes import PROBED, probed_output
        fpr.check_backend_version(fp, engine_dir, ort.__version__, "onnxruntime")
        fpr.check_cpu_device(fp, engine_dir)
        threads = threads or fp.session.threads
        for name, plan in fp.networks.items():
            nets[name] = load_network(engine_dir, name, plan, manifest.networks[name], threads, spin=fp.session.spin)
            emb = probed_output(manifest, name) if plan.probed_file else None
            if emb:
                composites[PROBED] = probed_engine(nets[name], session(engine_dir / plan.probed_file, threads,
                                                                       spin=fp.session.spin), emb)
    elif fp.backend == "tensorrt":
        from edge.runtime.trt_backend import TrtEngine, gpu_device, tensorrt_version
        fpr.check_gpu_device(fp, engine_dir, gpu_device())
        fpr.check_backend_version(fp, engine_dir, tensorrt_version(), "TensorRT")
        plugin = (fp.plugin_library or {}).get("path")
        for name, plan in fp.networks.items():
            net = manifest.networks[name]
            (file,) = plan.files
            dla = (plan.raw.get("build") or {}).get("dla") or {}
            nets[name] = TrtEngine(name, engine_dir / file, list(net.inputs), list(net.outputs), plugin,
                                   dla.get("core"))
    else:
        raise fpr.EngineMismatch(f"{engine_dir}: unknown backend {fp.backend!r}: {fpr.rebuild_hint(fp, engine_dir)}")
    # what the networks were built as (an int8 build keeps a network fp32 where int8 does not pay)
    return Engines(nets, manifest, backend=fp.backend, precision=fp.network_precisions,
                   composites=composites, threads=threads if fp.backend == "onnxruntime" else None)
