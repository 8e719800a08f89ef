"""Precision transforms on the ONNX graph (build side; needs ``onnx``, not torch).

``to_fp16`` makes an fp16-typed graph with float32 inputs/outputs and the numerically sensitive ops kept in
float32 (L2 norms and softmax overflow in fp16; ROI pooling and the ConvLSTM cell state stay fp32): the
form TensorRT 11 (strongly typed) needs for fp16, and what the CPU build measures against fp32.
"""
from __future__ import annotations

import onnx

KEEP_FP32_OPS = ["ReduceL2", "LpNormalization", "Softmax", "LogSoftmax", "ReduceSumSquare", "Pow", "Sqrt",
                 "Div", "MaxRoiPool", "RoiPool", "ConvLSTMCell"]


def to_fp16(model: onnx.ModelProto, inline: bool = True) -> onnx.ModelProto:
    """fp16 copy of ``model``; ``inline`` first inlines the model-local functions (onnxruntime/CPU form);
    without it the custom ``edge.ops`` nodes stay (TensorRT form: plugins run them in fp32)."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    m = onnx.ModelProto()
    m.CopyFrom(model)
    if inline:
        from onnx import inliner
        m = inliner.inline_local_functions(m)
    out = convert_float_to_float16(m, keep_io_types=True, op_block_list=DEFAULT_OP_BLOCK_LIST + KEEP_FP32_OPS)
    return _dedupe(out)


def _dedupe(model: onnx.ModelProto) -> onnx.ModelProto:
    """The converter can emit two identical Cast nodes (same name, same output) for one tensor that feeds
    several fp32-kept nodes: keep the first, and make any other repeated node names unique."""
    seen_out, names, keep = set(), {}, []
    for node in model.graph.node:
        if node.op_type == "Cast" and node.output and node.output[0] in seen_out:
            continue
        seen_out.update(node.output)
        if node.name:
            k = names.get(node.name, 0)
            names[node.name] = k + 1
            if k:
                node.name = f"{node.name}_{k}"
        keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model
