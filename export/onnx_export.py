"""``edge export``: every network of a model to ONNX + the ``model.json`` manifest (workstation side).

Custom ops become ``edge.ops`` nodes carrying model-local functions (H2's ``edge.kernels.onnx_functions``),
so onnxruntime runs them by inlining and TensorRT can swap in a plugin. Each export validates itself:
full ``onnx.checker``, a run in onnxruntime, and the max abs error vs PyTorch on fresh inputs.
Files are written atomically; ``model.json`` is written last, so a folder with a manifest is complete.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import platform
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnxruntime as ort
import torch

from edge.models import registry
from edge.models.registry import NetworkSpec
from edge.runtime.feeds import fresh_feeds
from edge.runtime.ort_backend import session
from edge.fileio import atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file

FORMAT = "edge-export/1"
DEFAULT_OPSET = 17


def to_onnx(spec: NetworkSpec, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Export one network (TorchScript exporter; custom ops as ``edge.ops`` nodes with local functions)."""
    names = list(spec.inputs)
    args = tuple(spec.inputs.values())
    from edge.ops import export_onnx
    return export_onnx(spec.module.eval(), args, None, input_names=names, output_names=list(spec.outputs),
                       dynamic_axes=spec.dynamic_axes or None, opset=opset)


def custom_ops(model: onnx.ModelProto) -> list[str]:
    return sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")})


def weights_sha256(weights: str | None, module: torch.nn.Module) -> str:
    """sha256 of the weights file, or of the parameters when the model was built without one (or from named
    weights such as the tracker's ``imagenet``)."""
    if weights and Path(weights).is_file():
        return sha256_file(weights)
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.inference_mode()
def validate(spec: NetworkSpec, net: dict, data: bytes, examples: dict[str, np.ndarray],
             rng: np.random.Generator) -> dict:
    """checker (full) + onnxruntime run + max abs error vs PyTorch on fresh inputs (batch 1 and 4 if dynamic)."""
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    sess = session(data, optimized_offline=False)
    dims_list = [{}]
    syms = {s for i in net["inputs"] for s in i["shape"] if isinstance(s, str)}
    if "batch" in syms:
        dims_list = [{"batch": 1}, {"batch": 4}]
    result = {"onnxruntime": ort.__version__, "cases": []}
    worst = 0.0
    for dims in dims_list:
        feeds = fresh_feeds(net, examples, rng, dims)
        ref = spec.module(*[torch.from_numpy(feeds[k]) for k in spec.inputs])
        ref = ref if isinstance(ref, (tuple, list)) else (ref,)
        got = sess.run(spec.outputs, feeds)
        errs = {n: float(np.max(np.abs(g - r.numpy()))) if g.size else 0.0
                for n, g, r in zip(spec.outputs, got, ref)}
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        result["cases"].append({"dims": dims, "input_shapes": shapes, "max_abs_err": errs})
        worst = max([worst, *errs.values()])
    result["max_abs_err"] = worst
    return result


def export_model(name: str | ModuleType, out_dir: str | Path, weights: str | None = None,
                 opset: int = DEFAULT_OPSET, seed: int | None = None, log=print,
                 model: torch.nn.Module | None = None) -> dict:
    """Export every network of ``name`` into ``out_dir``; returns the manifest (also ``model.json``).
    ``model`` reuses an already built model (then ``weights`` only names its file for the hash)."""
    named = set(getattr(registry.model_module(name), "NAMED_WEIGHTS", ()))   # e.g. the tracker's "imagenet"
    if weights and weights not in named and not Path(weights).is_file():
        raise FileNotFoundError(f"weights not found: {weights}")
    out = Path(out_dir)
    seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    model = registry.build(name, weights) if model is None else model.eval()
    specs = registry.networks(name, model)
    cfg = registry.config(name, model)
    registry.check_model(name, model, specs, cfg)          # the runtime's contract, before any export
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": FORMAT,
        "model": name if isinstance(name, str) else name.__name__,
        "module": registry.model_module(name).__name__,
        "opset": opset,
        "weights": {"path": str(weights) if weights else None, "sha256": weights_sha256(weights, model)},
        "config": cfg,
        "networks": {},
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                     "python": platform.python_version()},
        "validation_seed": seed,
    }
    for net_name, spec in specs.items():
        spec.module.eval()
        with torch.inference_mode():
            ref = spec.module(*spec.inputs.values())
        ref = tuple(ref) if isinstance(ref, (tuple, list)) else (ref,)
        net = registry.network_manifest(spec, ref)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            data = to_onnx(spec, opset).SerializeToString()
        examples = {k: v.detach().cpu().numpy() for k, v in spec.inputs.items()}
        net["validation"] = validate(spec, net, data, examples, rng)
        file = f"{net_name}.onnx"
        atomic_write_bytes(out / file, data)
        buf = io.BytesIO()
        np.savez(buf, **{f"in.{k}": v for k, v in examples.items()},
                 **{f"out.{k}": r.detach().cpu().numpy() for k, r in zip(spec.outputs, ref)})
        atomic_write_bytes(out / "examples" / f"{net_name}.npz", buf.getvalue())
        net.update(file=file, sha256=sha256_bytes(data), custom_ops=custom_ops(onnx.load_from_string(data)))
        manifest["networks"][net_name] = net
        log(f"exported {net_name}: {out / file} ({len(data) / 1e6:.2f} MB), "
            f"max abs err vs PyTorch {net['validation']['max_abs_err']:.3g} (onnxruntime, fresh inputs)")
    atomic_write_json(out / "model.json", manifest)
    log(f"manifest: {out / 'model.json'}")
    return manifest
