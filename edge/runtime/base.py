"""What every engine looks like to the rest of the runtime, whatever the backend (torch-free).

An ``Engine`` runs one network: named numpy inputs -> named numpy outputs. ``Engines`` is the set of
networks of one model (tracker: ``template`` + ``search``; classifier: ``encoder`` + ``step``) with the
typed manifest written by ``edge export`` (``edge.contract.Manifest``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, runtime_checkable

import numpy as np

from edge.contract import ClassifierConfig, Manifest, TensorSpec, TrackerConfig
from edge.errors import UserError

__all__ = ["Engine", "Engines", "TensorSpec"]


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
    """The networks of one model plus its manifest (a ``Manifest``; a ``model.json`` dict is parsed).
    Without a manifest it is a bare set of networks (timed or compared, not run as a model).

    ``composites``: optional networks built from these ones elsewhere, giving the same results in fewer calls
    (a served classifier's ``window``: the step unrolled over a window inside the server)."""
    networks: dict[str, Engine]
    manifest: Manifest | None = None
    backend: str = "onnxruntime"
    precision: str = "fp32"
    composites: dict[str, Engine] = field(default_factory=dict)
    threads: int | None = None      # CPU intra-op threads each network runs with (None: not known / not CPU)

    def __post_init__(self) -> None:
        if self.manifest is not None and not isinstance(self.manifest, Manifest):
            self.manifest = Manifest.from_dict(self.manifest)

    def _need_manifest(self) -> Manifest:
        if self.manifest is None:
            raise UserError(f"engines {', '.join(self.networks)} have no model manifest (model.json)")
        return self.manifest

    def __getitem__(self, name: str) -> Engine:
        try:
            return self.networks[name]
        except KeyError:
            raise KeyError(f"no network {name!r} (have: {', '.join(self.networks)})") from None

    @property
    def kind(self) -> str:
        """``tracker`` or ``classifier``."""
        return self._need_manifest().kind

    @property
    def config(self) -> TrackerConfig | ClassifierConfig:
        """The model constants the runtime reads (typed, from the manifest)."""
        return self._need_manifest().config

    def close(self) -> None:
        """Release backend resources (GPU engines free their buffers with their context pushed)."""
        for e in [*self.networks.values(), *self.composites.values()]:
            close = getattr(e, "close", None)
            if callable(close):
                close()
