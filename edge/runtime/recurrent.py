"""A recurrent ``step`` engine unrolled over a window on the host (torch-free).

The classifier's ConvLSTM is exported as one step (``features``, ``h``, ``c`` -> ``h_next``, ``c_next``,
``logits``; ``edge.contract``) and looped here, never inside the engine (loops inside TensorRT are a known source
of failures). One home for that loop: ``edge.classify.runtime`` runs it in-process, and ``edge serve`` runs it
inside the server (the served ``<model>_window`` model) so a remote window costs one request, not T.
"""
from __future__ import annotations

import numpy as np

from edge.runtime.base import Engine

#: the composite network ``edge serve`` offers next to a classifier's own: a whole window in one call
WINDOW = "window"


def zero_state(step: Engine, name: str, batch: int, features: np.ndarray) -> np.ndarray:
    """Zeros for state input ``name`` (``h`` or ``c``) of ``step``: batch ``batch``, dynamic dims from the
    features (spatial size follows the features, as the ConvLSTM's does)."""
    spec = next(s for s in step.inputs if s.name == name)
    shape = [int(d) if isinstance(d, int) and d > 0 else None for d in spec.shape]
    shape[0] = batch
    for i in range(1, len(shape)):
        if shape[i] is None:
            shape[i] = features.shape[i]
    return np.zeros(shape, np.dtype(spec.dtype))


def unroll(step: Engine, features: np.ndarray) -> np.ndarray:
    """``features`` [B, T, C, H, W] through ``step`` from the zero state, oldest first -> the last step's
    ``logits`` [B, K]."""
    features = np.asarray(features)
    if features.ndim != 5 or features.shape[1] < 1:
        raise ValueError(f"window features must be [B, T, C, H, W] with T >= 1, got shape {list(features.shape)}")
    b = features.shape[0]
    h = zero_state(step, "h", b, features[:, 0])
    c = zero_state(step, "c", b, features[:, 0])
    logits = None
    for t in range(features.shape[1]):
        out = step.run({"features": np.ascontiguousarray(features[:, t]), "h": h, "c": c})
        h, c, logits = out["h_next"], out["c_next"], out["logits"]
    return logits
