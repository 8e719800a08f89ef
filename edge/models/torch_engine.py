"""PyTorch networks behind the runtime's ``Engine`` interface, so the tracker/classifier runtime and the
benchmark swap PyTorch and engines with no other change (reference side: imports torch)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from edge.runtime.base import TensorSpec


class TorchEngine:
    """Wrap ``module(*inputs in order) -> tensor | tuple`` as ``run(feeds) -> {name: array}``."""

    backend = "pytorch"

    def __init__(self, name: str, module: nn.Module, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 threads: int | None = None):
        self.name, self.module = name, module.eval()
        self.inputs, self.outputs = list(inputs), list(outputs)
        if threads:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [s.name for s in self.inputs if s.name not in feeds]
        if missing:
            raise ValueError(f"{self.name}: missing inputs {missing}")
        args = [torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.inputs]
        out = self.module(*args)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return {s.name: o.detach().cpu().numpy() for s, o in zip(self.outputs, out)}
