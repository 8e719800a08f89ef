"""Cut an ONNX graph at its ``edge.ops::RoiPool`` nodes (build side; needs ``onnx``, not torch).

The CPU engine may run ROI pooling with the numba kernel between onnxruntime segments: the same cut a
TensorRT plugin makes inside one engine. Every node gets a stage = the number of RoiPool nodes on its
longest path from the inputs; segment ``k`` holds the ordinary nodes of stage ``k`` and the RoiPool nodes of
stage ``k + 1`` run on the host after it. Each segment is a standalone model (its initializers, the
model's functions and opsets); the plan lists stage inputs/outputs by tensor name.
"""
from __future__ import annotations

import onnx
from onnx import helper

ROI_OP = ("edge.ops", "RoiPool")


def is_roi_pool(node: onnx.NodeProto) -> bool:
    return (node.domain, node.op_type) == ROI_OP


def has_roi_pool(model: onnx.ModelProto) -> bool:
    return any(is_roi_pool(n) for n in model.graph.node)


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def split_at_roi_pool(model: onnx.ModelProto) -> tuple[list[dict], dict[str, onnx.ModelProto]]:
    """Returns (stages, segment models by key). A stage is
    ``{"kind": "onnxruntime", "segment": key, "inputs": [...], "outputs": [...]}`` or
    ``{"kind": "roi_pool", "inputs": [x, rois], "outputs": [y], "pooled_shape": [ph, pw], "spatial_scale": s}``.
    """
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    level: dict[str, int] = {i.name: 0 for i in g.input}
    level.update({n: 0 for n in inits})
    seg_nodes: dict[int, list[onnx.NodeProto]] = {}
    host_nodes: dict[int, list[onnx.NodeProto]] = {}
    for node in g.node:
        lv = max([level.get(t, 0) for t in node.input if t] or [0])
        if is_roi_pool(node):
            lv += 1
            host_nodes.setdefault(lv, []).append(node)
        else:
            seg_nodes.setdefault(lv, []).append(node)
        for t in node.output:
            level[t] = lv
    top = max([*seg_nodes, *host_nodes, 0])
    # who consumes each tensor (stage index in execution order: segment k -> 2k, host ops of k -> 2k - 1)
    consumers: dict[str, set[int]] = {}
    for k, nodes in seg_nodes.items():
        for n in nodes:
            for t in n.input:
                consumers.setdefault(t, set()).add(2 * k)
    for k, nodes in host_nodes.items():
        for n in nodes:
            for t in n.input:
                consumers.setdefault(t, set()).add(2 * k - 1)
    graph_outputs = [o.name for o in g.output]
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}

    stages: list[dict] = []
    segments: dict[str, onnx.ModelProto] = {}
    for k in range(top + 1):
        for node in host_nodes.get(k, []):
            a = _attrs(node)
            stages.append({"kind": "roi_pool", "inputs": list(node.input), "outputs": list(node.output),
                           "pooled_shape": [int(v) for v in a["pooled_shape"]],
                           "spatial_scale": float(a.get("spatial_scale", 1.0))})
        nodes = seg_nodes.get(k, [])
        if not nodes:
            continue
        produced = {t for n in nodes for t in n.output}
        ins, outs = [], []
        for n in nodes:
            for t in n.input:
                if t and t not in produced and t not in inits and t not in ins:
                    ins.append(t)
        for t in [t for n in nodes for t in n.output]:
            later = any(c > 2 * k for c in consumers.get(t, ()))
            if (later or t in graph_outputs) and t not in outs:
                outs.append(t)
        used_inits = [inits[t] for n in nodes for t in n.input if t in inits]
        used_inits = list({i.name: i for i in used_inits}.values())

        def vi(name: str) -> onnx.ValueInfoProto:
            v = onnx.ValueInfoProto(name=name)
            if name in types:
                v.type.CopyFrom(types[name])
            else:
                v.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
            return v

        sub = helper.make_graph(nodes, f"{g.name}_seg{k}", [vi(t) for t in ins], [vi(t) for t in outs], used_inits)
        seg = helper.make_model(sub, opset_imports=list(model.opset_import), ir_version=model.ir_version,
                                functions=list(model.functions))
        key = f"seg{k}"
        segments[key] = seg
        stages.append({"kind": "onnxruntime", "segment": key, "inputs": ins, "outputs": outs})
    return stages, segments
