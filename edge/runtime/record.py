"""Record the inputs a model's runtime really feeds its networks (torch-free): the benchmark replays them on
every row, calibration quantizes on them."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from edge.runtime.base import Engines


class RecordingEngine:
    """Pass-through :class:`Engine` wrapper keeping copies of the feeds it sees: every one (``limit=None``,
    calibration sets), or at most ``limit`` spread evenly over all calls (benchmark samples): every
    ``stride``-th call is kept, and when ``2 * limit`` are held every other one is dropped and the stride
    doubles (so the sample covers the whole run, not just its start)."""

    def __init__(self, engine, limit: int | None = 32):
        if limit is not None and limit < 1:
            raise ValueError("RecordingEngine: limit must be >= 1")
        self.engine, self.limit, self.stride = engine, limit, 1
        self.name, self.inputs, self.outputs = engine.name, engine.inputs, engine.outputs
        self._kept: list[tuple[int, dict[str, np.ndarray]]] = []
        self.calls = 0

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.calls % self.stride == 0:
            self._kept.append((self.calls, {k: np.array(v, copy=True) for k, v in feeds.items()}))
            if self.limit is not None and len(self._kept) >= 2 * self.limit:
                self.stride *= 2
                self._kept = [(i, f) for i, f in self._kept if i % self.stride == 0]
        self.calls += 1
        return self.engine.run(feeds)

    def _sample(self) -> list[tuple[int, dict[str, np.ndarray]]]:
        kept = self._kept
        if self.limit is not None and len(kept) > self.limit:
            kept = [kept[i] for i in np.linspace(0, len(kept) - 1, self.limit).round().astype(int)]
        return kept

    @property
    def feeds(self) -> list[dict[str, np.ndarray]]:
        """The kept feeds (at most ``limit``, evenly spaced over the calls), in call order."""
        return [f for _, f in self._sample()]

    @property
    def call_indices(self) -> list[int]:
        """Which calls (0-based) the kept feeds came from."""
        return [i for i, _ in self._sample()]


def recording(engines: Engines, limit: int | None = 32) -> tuple[Engines, dict[str, RecordingEngine]]:
    """An ``Engines`` whose networks record their feeds, plus the recorders by network name."""
    rec = {name: RecordingEngine(e, limit) for name, e in engines.networks.items()}
    return Engines(networks=dict(rec), manifest=engines.manifest, backend=engines.backend,
                   precision=engines.precision), rec
