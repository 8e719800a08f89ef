"""Torch-free device runtime: engines behind one interface (``Engine.run(feeds) -> dict``).

``load_engines(ENGINE_DIR)`` loads what ``edge build`` wrote (onnxruntime on CPU, TensorRT on GPU) after
checking its fingerprint; a mismatch raises ``EngineMismatch`` (one line naming the fix; exit code 2).
"""
from edge.runtime.base import Engine, Engines, TensorSpec


def load_engines(engine_dir, target=None, threads=None) -> Engines:
    """Load every network of an engine folder (see ``edge.runtime.load.load_engines``)."""
    from edge.runtime.load import load_engines as _load
    return _load(engine_dir, target=target, threads=threads)


__all__ = ["Engine", "Engines", "TensorSpec", "load_engines"]
