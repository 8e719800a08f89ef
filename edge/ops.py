"""Our two custom ops as a public PyTorch API, for your own models (reference side: imports torch).

Use them like any ``torch.nn`` layer; ``edge export`` (or :func:`export_onnx` around a plain
``torch.onnx.export``) turns each call into one custom-domain ``edge.ops`` node carrying a model-local ONNX
function, so plain onnxruntime runs the model as is and a TensorRT build swaps in our plugins.

**RoiPool** — ``roi_pool(x, rois, pooled_shape, spatial_scale)`` / ``RoiPool(pooled_shape, spatial_scale)``:
exactly ONNX ``MaxRoiPool``. ``x`` [N, C, H, W] float; ``rois`` [R, 5] float rows ``(batch_index, x1, y1, x2,
y2)`` in input-image pixels. Each corner is scaled by ``spatial_scale`` (1 / feature stride) and rounded half
away from zero (C ``round``); the box spans ``end - start + 1`` cells (at least 1); with ``bin_h = roi_h /
ph``, bin ``(i, j)`` covers rows ``[y1 + floor(i * bin_h), y1 + ceil((i + 1) * bin_h))`` (columns alike),
clipped to the map, and holds the maximum over it (0 for an empty bin). Output [R, C, ph, pw]. Eager on CPU float32 it runs a
numba kernel bit-identical to onnxruntime's ``MaxRoiPool`` (with an argmax backward for training).

**ConvLSTMCell** — ``ConvLSTMCell(input_channels, hidden_channels, kernel_size=3)``, ``forward(x, h, c) ->
(h', c')``: one convolution over ``concat(x, h)`` with weight [4 * hidden, in + hidden, k, k] (odd k, "same"
padding) and bias [4 * hidden]; its output splits into the gates in the order **i, f, o, g**:
``i, f, o = sigmoid(.)``, ``g = tanh(.)``, ``c' = f * c + i * g``, ``h' = o * tanh(c')``. Loop it on the host
with explicit ``h`` / ``c`` (``init_state(x)`` gives zeros), as the device runtime does.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Sequence

import onnx

from edge.fileio import atomic_write_bytes
from edge.kernels.convlstm.torch_op import ConvLSTMCell, convlstm_cell
from edge.kernels.onnx_functions import DEFAULT_OPSET, attach_functions
from edge.kernels.roi_pool.torch_op import RoiPool, roi_pool

__all__ = ["RoiPool", "roi_pool", "ConvLSTMCell", "convlstm_cell", "export_onnx"]


def export_onnx(module, example_inputs: tuple, path: str | os.PathLike | None,
                input_names: Sequence[str], output_names: Sequence[str],
                dynamic_axes: dict[str, dict[int, str]] | None = None,
                opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """``torch.onnx.export`` of ``module(*example_inputs)`` with our ops as ``edge.ops`` nodes and their ONNX
    functions attached; returns the model (and writes it atomically to ``path`` when given).

    TorchScript exporter (``dynamo=False``: the dynamo exporter inlines functions) in eval mode, constant
    folding on; argument checks of the ops run on the example inputs, so bad shapes/dtypes fail here with a
    one-line ValueError. The model is checked (``onnx.checker``). IR version stays the exporter's (8 for
    opset 17), which ONNX Runtime and TensorRT 10.3 read."""
    import torch

    if not 13 <= int(opset) <= 21:
        raise ValueError(f"export_onnx: opset must be in 13..21, got {opset}")
    if not isinstance(example_inputs, tuple):
        raise ValueError(f"export_onnx: example_inputs must be a tuple, got {type(example_inputs).__name__}")
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(module, example_inputs, buf, dynamo=False, opset_version=int(opset),
                          input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic_axes or None, do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    _keep_inputs(model, list(input_names), example_inputs, dynamic_axes or {})
    attach_functions(model)
    onnx.checker.check_model(model)
    if path is not None:
        atomic_write_bytes(Path(path), model.SerializeToString())
    return model


def _keep_inputs(model: onnx.ModelProto, names: list[str], examples: tuple, dynamic_axes: dict) -> None:
    """Declare again the inputs the exporter dropped as unused (e.g. a no-flow ablation ignores ``flow``):
    the runtime feeds every input the network was exported with, and an ONNX model may declare unused ones."""
    from onnx import helper
    have = [i.name for i in model.graph.input]
    if all(n in have for n in names):
        return
    import torch
    declared = []
    for name, ex in zip(names, examples):
        if name in have:
            declared.append(next(i for i in model.graph.input if i.name == name))
            continue
        dims = [dynamic_axes.get(name, {}).get(k, int(d)) for k, d in enumerate(ex.shape)]
        elem = helper.np_dtype_to_tensor_dtype(torch.empty(0, dtype=ex.dtype).numpy().dtype)
        declared.append(helper.make_tensor_value_info(name, elem, dims))
    rest = [i for i in model.graph.input if i.name not in names]         # initialisers listed as inputs
    del model.graph.input[:]
    model.graph.input.extend(declared + rest)
