"""What every engine looks like to the rest of the runtime, whatever the backend (torch-free).

An ``Engine`` runs one network: named numpy inputs -> named numpy outputs. ``Engines`` is the set of
networks of one model (tracker: ``template`` + ``search``; classifier: ``encoder`` + ``step``) with the
manifest written by ``edge export`` (preprocessing constants, shapes, names).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple            # ints; a str or None marks a dynamic axis (e.g. "batch")
    dtype: str = "float32"  # numpy dtype name


@runtime_checkable
class Engine(Protocol):
    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on named inputs; returns every output by name."""
        ...


@dataclass
class Engines:
    """The networks of one model plus its manifest (``model.json`` contents)."""
    networks: dict[str, Engine]
    manifest: dict = field(default_factory=dict)
    backend: str = "onnxruntime"
    precision: str = "fp32"

    def __getitem__(self, name: str) -> Engine:
        try:
            return self.networks[name]
        except KeyError:
            raise KeyError(f"no network {name!r} (have: {', '.join(self.networks)})") from None

    @property
    def config(self) -> dict:
        """Preprocessing/model constants from the manifest."""
        return self.manifest.get("config", {})
