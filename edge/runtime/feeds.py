"""Inputs for validation, timing and tests, from the example inputs saved by ``edge export`` (torch-free).

``DIR/examples/<network>.npz`` holds the PyTorch example inputs (``in.<name>``) and reference outputs
(``out.<name>``). Fresh inputs keep structured inputs (boxes/rois: valid indices and coordinates) from the
example and draw float activations anew with the example's mean and spread.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

STRUCTURED = ("roi", "box", "index", "idx")


def is_structured(name: str, arr: np.ndarray) -> bool:
    return arr.dtype.kind not in "f" or any(k in name.lower() for k in STRUCTURED)


def load_examples(export_dir: str | Path, network: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs, reference outputs) saved at export time."""
    path = Path(export_dir) / "examples" / f"{network}.npz"
    with np.load(path) as z:
        ins = {k[3:]: z[k] for k in z.files if k.startswith("in.")}
        outs = {k[4:]: z[k] for k in z.files if k.startswith("out.")}
    return ins, outs


def resize_axis(arr: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Cycle (or cut) ``arr`` along ``axis`` to ``size`` entries."""
    idx = np.arange(size) % arr.shape[axis]
    return np.ascontiguousarray(np.take(arr, idx, axis=axis))


def fresh_feeds(net: dict, examples: dict[str, np.ndarray], rng: np.random.Generator,
                dims: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """New inputs shaped like the examples; ``dims`` sets named dynamic axes (e.g. ``{"batch": 4}``)."""
    dims = dims or {}
    feeds = {}
    for spec in net["inputs"]:
        name, ex = spec["name"], examples[spec["name"]]
        for axis, sym in enumerate(spec["shape"]):
            if isinstance(sym, str) and sym in dims:
                ex = resize_axis(ex, axis, int(dims[sym]))
        if is_structured(name, ex):
            feeds[name] = ex
        else:
            mean, std = float(ex.mean()), float(ex.std()) or 1.0
            feeds[name] = (rng.standard_normal(ex.shape) * std + mean).astype(ex.dtype)
    return feeds
