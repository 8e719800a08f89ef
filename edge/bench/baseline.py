"""The baseline row: plain onnxruntime on the un-optimised export, i.e. what a user gets without this
package's build — a default ``InferenceSession`` (onnxruntime's own online optimisations, default threads)
on the exported ONNX as is (torch-free). One setting differs, for the benchmark's sake only: its worker
threads stop spinning when ``Run`` returns (``session.force_spinning_stop``; they still spin inside a run).
With onnxruntime's default they kept spinning into the next row's calls: measured here, the classifier
encoder of the row timed after it took 7.75 ms instead of 3.43 ms, while the plain row itself was no faster."""
from __future__ import annotations

from pathlib import Path

from edge.contract import TensorSpec
from edge.runtime.base import Engines
from edge.fileio import read_json
from edge.runtime.ort_backend import OrtEngine, session

ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
             "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


def plain_engine(name: str, path: str | Path) -> OrtEngine:
    """One exported network in a default CPU session (onnxruntime's online optimisations, its default
    threads; its workers stop spinning when a run returns: see the module docstring)."""
    sess = session(Path(path), threads=None, optimized_offline=False, spin="during_run")

    def specs(args) -> list[TensorSpec]:
        return [TensorSpec(a.name, tuple(a.shape), ORT_TYPES.get(a.type, "float32")) for a in args]
    return OrtEngine(name, sess, specs(sess.get_inputs()), specs(sess.get_outputs()))


def plain_engines(export_dir: str | Path) -> Engines:
    """Every network listed in ``export_dir/model.json`` in a default onnxruntime session."""
    export_dir = Path(export_dir)
    manifest = read_json(export_dir / "model.json", "export manifest")
    nets = manifest.get("networks") or {}
    if not nets:
        raise ValueError(f"export manifest {export_dir / 'model.json'} lists no networks")
    engines = {}
    for name, net in nets.items():
        path = export_dir / net.get("file", f"{name}.onnx")
        if not path.is_file():
            raise FileNotFoundError(f"exported network {name!r} missing: {path} (re-run edge export)")
        engines[name] = plain_engine(name, path)
    return Engines(engines, manifest, backend="onnxruntime (plain)", precision="fp32")
