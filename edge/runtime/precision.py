"""FP16-typed graphs with the numerically sensitive parts pinned to fp32 (build side; onnx + onnxruntime,
no torch, no onnxconverter-common): the one converter behind ``edge build`` (CPU fp16 candidate, TensorRT
11's strongly typed fp16 form) and ``edge calibrate`` (``<network>.fp16.onnx``).

Uses ``onnxruntime.transformers.float16`` with ``keep_io_types=True`` (inputs/outputs stay float32, Casts
around every blocked node). Kept in fp32: L2 normalisation (ReduceL2 / Sqrt / Div ...), Softmax / Exp,
ROI pooling, the custom ``edge.ops`` nodes (their local functions and plugins are float32) and every node on
a recurrent cell-state path (input ``c`` -> output ``c_next``), where fp16 error would accumulate over time.
The converter's known slips are repaired afterwards (see the ``_`` helpers).
"""
from __future__ import annotations

import warnings
from typing import Iterable, Sequence

import onnx

from edge.kernels import DOMAIN as CUSTOM_DOMAIN

KEEP_FP32_OPS = ("ReduceL2", "LpNormalization", "ReduceSumSquare", "Sqrt", "Pow", "Div", "Reciprocal",
                 "Softmax", "LogSoftmax", "Exp", "MaxRoiPool", "RoiPool", "ConvLSTMCell")
STATE_PATHS = (("c", "c_next"),)


#: int8 must be at least this much faster than fp32 to be worth its accuracy cost (one rule: ``edge build``
#: keeps int8 by it, ``edge calibrate`` reports ``int8_pays`` by it)
PAYS_RATIO = 1.05


def int8_pays(int8_ms: float, fp32_ms: float) -> bool:
    """Whether an int8 network timed at ``int8_ms`` is worth keeping over fp32 at ``fp32_ms``."""
    return int8_ms > 0 and fp32_ms / int8_ms >= PAYS_RATIO

def state_path_nodes(model: onnx.ModelProto, paths: Iterable[tuple[str, str]] = STATE_PATHS) -> list[str]:
    """Names of nodes lying on a path from graph input ``src`` to graph output ``dst`` (for each pair present)."""
    g = model.graph
    inputs = {i.name for i in g.input}
    outputs = {o.name for o in g.output}
    producers = {o: n for n in g.node for o in n.output}
    found: set[str] = set()
    for src, dst in paths:
        if src not in inputs or dst not in outputs:
            continue
        fwd = {src}   # tensors reachable from src
        reach_nodes = set()
        for n in g.node:  # graph nodes are topologically sorted
            if any(i in fwd for i in n.input):
                fwd.update(n.output)
                reach_nodes.add(n.name)
        back, stack = set(), [dst]  # nodes dst depends on
        while stack:
            t = stack.pop()
            n = producers.get(t)
            if n is None or n.name in back:
                continue
            back.add(n.name)
            stack.extend(n.input)
        found |= reach_nodes & back
    return sorted(found)


def blocked_nodes(model: onnx.ModelProto, extra_ops: Sequence[str] = ()) -> list[str]:
    """Names of the nodes kept in fp32 (``model``'s nodes must be named: see ``named``)."""
    ops = set(KEEP_FP32_OPS) | set(extra_ops)
    names = {n.name for n in model.graph.node if n.op_type in ops or n.domain == CUSTOM_DOMAIN}
    return sorted(names | set(state_path_nodes(model)))


def named(model: onnx.ModelProto) -> onnx.ModelProto:
    """Copy of the model with every node named uniquely (block lists are by node name)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    seen = set()
    for i, n in enumerate(m.graph.node):
        if not n.name or n.name in seen:
            n.name = f"{n.op_type}_{i}"
        seen.add(n.name)
    return m


def convert_fp16(model: onnx.ModelProto, inline: bool = False,
                 extra_ops: Sequence[str] = ()) -> tuple[onnx.ModelProto, list[str]]:
    """FP16 copy of ``model`` (float32 I/O) and the names of the nodes kept in fp32. ``inline`` first inlines
    the model-local functions (onnxruntime/CPU form); without it the custom ``edge.ops`` nodes stay, with
    their functions (calibration / TensorRT form: plugins run them in fp32)."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    m = model
    if inline:
        from onnx import inliner
        m = inliner.inline_local_functions(model)
    m = named(m)
    keep = blocked_nodes(m, extra_ops)
    with warnings.catch_warnings():  # "float32 number ... will be truncated": tiny weights, expected
        warnings.simplefilter("ignore", UserWarning)
        src = onnx.ModelProto()
        src.CopyFrom(m)               # the converter edits its argument in place
        out = convert_float_to_float16(src, keep_io_types=True, node_block_list=keep,
                                       op_block_list=list(DEFAULT_OP_BLOCK_LIST))
    _dedupe(out.graph)
    _fp16_consumers_of_outputs(out.graph, set(keep))
    _fold_round_trips(out.graph)
    _fp32_outputs(out.graph, {o.name for o in m.graph.output
                              if o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT})
    _sort_topologically(out.graph)   # this converter appends its Casts at the end
    # keep the functions/opsets of the original (custom ops stay runnable)
    if not out.functions and m.functions:
        out.functions.extend(m.functions)
    if out.ir_version > max(model.ir_version, 10):
        out.ir_version = max(model.ir_version, 10)
    return out, keep


def to_fp16(model: onnx.ModelProto, inline: bool = True) -> onnx.ModelProto:
    """``convert_fp16`` without the kept list; inlined by default (what onnxruntime on the CPU runs)."""
    return convert_fp16(model, inline=inline)[0]


def _cast_to(n: onnx.NodeProto) -> int | None:
    if n.op_type != "Cast":
        return None
    return next((a.i for a in n.attribute if a.name == "to"), None)


def _rename_input(graph: onnx.GraphProto, old: str, new: str) -> None:
    for n in graph.node:
        for i, x in enumerate(n.input):
            if x == old:
                n.input[i] = new


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """Stable topological order (the checker requires it; onnxruntime's converter appends Casts last)."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, order = list(graph.node), []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:                     # a cycle or an outer-scope name: leave the rest as they were
            order.extend(rest)
            break
        for n in done:
            ready.update(n.output)
        order.extend(done)
        pending = rest
    copies = [onnx.NodeProto() for _ in order]
    for c, n in zip(copies, order):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def _dedupe(graph: onnx.GraphProto) -> None:
    """The converter can emit two identical Cast nodes (same name, same output) for one tensor that feeds
    several fp32-kept nodes: keep the first, and make any other repeated node names unique."""
    seen_out, names, keep = set(), {}, []
    for node in graph.node:
        if node.op_type == "Cast" and node.output and node.output[0] in seen_out:
            continue
        seen_out.update(node.output)
        if node.name:
            k = names.get(node.name, 0)
            names[node.name] = k + 1
            if k:
                node.name = f"{node.name}_{k}"
        keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def _fp16_consumers_of_outputs(graph: onnx.GraphProto, keep: set[str]) -> None:
    """keep_io_types casts a graph output back to fp32, but the converter leaves the graph's own fp16 nodes
    that also consume that output reading the fp32 copy (mixed-type Mul/Add): point them at the fp16 tensor."""
    FP32 = onnx.TensorProto.FLOAT
    producer = {o: n for n in graph.node for o in n.output}
    for out in graph.output:
        n = producer.get(out.name)
        if n is None or _cast_to(n) != FP32:
            continue
        for m in graph.node:
            if m is n or m.name in keep or m.op_type == "Cast":
                continue
            m.input[:] = [n.input[0] if x == out.name else x for x in m.input]


def _fold_round_trips(graph: onnx.GraphProto) -> None:
    """Cast(fp32 -> fp16) followed by Cast(fp16 -> fp32) (a graph input or an fp32 node's output passing
    through to an fp32-pinned node) is rounding for nothing: wire the fp32 tensor straight through."""
    FP16, FP32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    producer = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}
    drop = []
    for n in graph.node:
        if _cast_to(n) == FP32:
            up = producer.get(n.input[0])
            if up is not None and _cast_to(up) == FP16 and n.output[0] not in outputs:
                _rename_input(graph, n.output[0], up.input[0])
                drop.append(n)
    for n in drop:
        graph.node.remove(n)
    used = {i for n in graph.node for i in n.input} | outputs
    for n in list(graph.node):
        if n.op_type == "Cast" and not any(o in used for o in n.output):
            graph.node.remove(n)


def _fp32_outputs(graph: onnx.GraphProto, names: set[str]) -> None:
    """keep_io_types: a graph output made by an fp32-pinned node must not go through a final fp16 Cast."""
    FP16, FP32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    producer = {o: n for n in graph.node for o in n.output}
    for out in graph.output:
        if out.name not in names or out.type.tensor_type.elem_type == FP32:
            continue
        n = producer.get(out.name)
        if n is not None and _cast_to(n) == FP16:   # fp32 value cast down for the output: output it as is,
            src, tmp = n.input[0], out.name + "_fp16"  # fp16 consumers keep the cast
            _rename_input(graph, out.name, tmp)
            n.output[0] = tmp
            for m in graph.node:
                m.output[:] = [out.name if o == src else o for o in m.output]
            _rename_input(graph, src, out.name)
            if not any(tmp in m.input for m in graph.node):
                graph.node.remove(n)
        else:                                        # fp16 value: cast up at the end
            tmp = out.name + "_fp16"
            for m in graph.node:
                m.output[:] = [tmp if o == out.name else o for o in m.output]
            _rename_input(graph, out.name, tmp)
            graph.node.append(onnx.helper.make_node("Cast", [tmp], [out.name], to=FP32, name=tmp + "_cast"))
        out.type.tensor_type.elem_type = FP32
