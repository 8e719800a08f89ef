"""Custom-domain ONNX functions of the edge ops (torch-free; the exporter is ``edge.ops.export_onnx``).

- ``attach_functions(model)``: add the model-local FunctionProto for every ``edge.ops`` node present
  (``RoiPool``, ``ConvLSTMCell``) built for the model's default opset, plus the ``edge.ops`` opset import;
  validates every edge node first (one-line ValueError). ONNX Runtime then runs the model (it inlines the
  bodies); without the functions it refuses it.
- ``strip_functions(model, ops)``: remove those functions again (for TensorRT with the plugins loaded).
"""
from __future__ import annotations

from collections.abc import Iterable

import onnx
from onnx import helper

from . import DOMAIN
from .convlstm import onnx_function as _convlstm
from .roi_pool import onnx_function as _roi_pool

EDGE_DOMAIN = DOMAIN           # "edge.ops"
EDGE_DOMAIN_VERSION = 1
DEFAULT_OPSET = 17          # ONNX Runtime 1.31 and TensorRT 10.3 (JetPack 6.2) both support it
_OPS = {_roi_pool.OP_TYPE: _roi_pool, _convlstm.OP_TYPE: _convlstm}
EDGE_OPS = tuple(_OPS)


def _graphs(graph: onnx.GraphProto):
    """The graph and every subgraph (If/Loop/Scan bodies)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


def edge_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """All nodes of domain ``edge.ops`` in the model's graphs."""
    return [n for g in _graphs(model.graph) for n in g.node if n.domain == EDGE_DOMAIN]


def _known_shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    shapes: dict[str, list[int | None]] = {}
    for g in _graphs(model.graph):
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            t = vi.type.tensor_type
            if t.HasField("shape"):
                shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        for init in g.initializer:
            shapes[init.name] = list(init.dims)
    return shapes


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise ValueError("model has no default-domain opset import")


def attach_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Validate the ``edge.ops`` nodes and add their model-local functions (in place; returns model)."""
    nodes = edge_nodes(model)
    shapes = _known_shapes(model)
    for node in nodes:
        if node.op_type not in _OPS:
            raise ValueError(f"unknown {EDGE_DOMAIN} op {node.op_type!r} (known: {', '.join(EDGE_OPS)})")
        _OPS[node.op_type].check_node(node, shapes)
    present = sorted({n.op_type for n in nodes})
    if not present:
        return model
    opset = default_opset(model)
    keep = [f for f in model.functions if not (f.domain == EDGE_DOMAIN and f.name in present)]
    del model.functions[:]
    model.functions.extend(keep + [_OPS[op].make_function(opset, EDGE_DOMAIN) for op in present])
    if not any(i.domain == EDGE_DOMAIN for i in model.opset_import):
        model.opset_import.append(helper.make_opsetid(EDGE_DOMAIN, EDGE_DOMAIN_VERSION))
    if model.ir_version < 8:  # model-local functions need IR >= 8
        model.ir_version = 8
    return model


def strip_functions(model: onnx.ModelProto, ops: Iterable[str] | None = None) -> onnx.ModelProto:
    """Remove the ``edge.ops`` functions named in ``ops`` (all edge ops when None); in place, returns model.

    The nodes stay: a TensorRT build with the plugins loaded then imports them as plugins.
    """
    names = {op.split("::")[-1] for op in (EDGE_OPS if ops is None else ops)}   # "RoiPool" or "edge.ops::RoiPool"
    keep = [f for f in model.functions if not (f.domain == EDGE_DOMAIN and f.name in names)]
    del model.functions[:]
    model.functions.extend(keep)
    return model
