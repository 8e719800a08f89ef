"""ONNX face of ConvLSTMCell: the model-local function ``edge.ops::ConvLSTMCell`` (torch-free).

Node: ``ConvLSTMCell(X, H, C, W, B) -> (H_next, C_next)``, no attributes; shapes as in ``reference.py``
(W ``[4*Ch, Cx+Ch, k, k]`` with odd k, B ``[4*Ch]``, gate order i, f, o, g). Body of standard ops::

    Z = Conv(Concat(X, H), W, B, auto_pad=SAME_UPPER)      # stride 1, odd k -> pads k // 2 each side
    Zi, Zf, Zo, Zg = Split(Z, axis=1)                       # 4 equal parts
    C_next = Sigmoid(Zf) * C + Sigmoid(Zi) * Tanh(Zg);  H_next = Sigmoid(Zo) * Tanh(C_next)

Padding: pads are static Conv attributes but k is only known from W's shape, so the body uses
``auto_pad=SAME_UPPER``, which for stride 1 and odd k is exactly ``k // 2`` on every side; no kernel-size
attribute is needed and the node stays valid for any W. Even k is rejected at export (``reference.py``).
"""
from __future__ import annotations

import onnx
from onnx import helper

OP_TYPE = "ConvLSTMCell"
INPUTS = ("X", "H", "C", "W", "B")
OUTPUTS = ("H_next", "C_next")


def make_function(opset: int = 17, domain: str = "edge.ops") -> onnx.FunctionProto:
    """FunctionProto ``domain::ConvLSTMCell`` for a model whose default opset is ``opset``."""
    split = (helper.make_node("Split", ["Z"], ["Zi", "Zf", "Zo", "Zg"], axis=1, num_outputs=4) if opset >= 18
             else helper.make_node("Split", ["Z"], ["Zi", "Zf", "Zo", "Zg"], axis=1))
    nodes = [
        helper.make_node("Concat", ["X", "H"], ["XH"], axis=1),
        helper.make_node("Conv", ["XH", "W", "B"], ["Z"], auto_pad="SAME_UPPER"),
        split,
        helper.make_node("Sigmoid", ["Zi"], ["I"]),
        helper.make_node("Sigmoid", ["Zf"], ["F"]),
        helper.make_node("Sigmoid", ["Zo"], ["O"]),
        helper.make_node("Tanh", ["Zg"], ["G"]),
        helper.make_node("Mul", ["F", "C"], ["FC"]),
        helper.make_node("Mul", ["I", "G"], ["IG"]),
        helper.make_node("Add", ["FC", "IG"], ["C_next"]),
        helper.make_node("Tanh", ["C_next"], ["TC"]),
        helper.make_node("Mul", ["O", "TC"], ["H_next"]),
    ]
    return helper.make_function(domain, OP_TYPE, list(INPUTS), list(OUTPUTS), nodes,
                                [helper.make_opsetid("", opset)], attributes=[],
                                doc_string="Fused ConvLSTM step (Ego-RNN form, gate order i, f, o, g).")


def check_node(node: onnx.NodeProto, shapes: dict | None = None) -> None:
    """Validate an ``edge.ops::ConvLSTMCell`` node (and W/B shapes when known); one-line ValueError."""
    name = node.name or OP_TYPE
    if len(node.input) != 5 or len(node.output) != 2:
        raise ValueError(f"ConvLSTMCell node {name!r}: needs inputs (X, H, C, W, B) and outputs "
                         f"(H_next, C_next), got {len(node.input)} inputs and {len(node.output)} outputs")
    extra = [a.name for a in node.attribute if a.name != "plugin_namespace"]   # TensorRT's hint is allowed
    if extra:
        raise ValueError(f"ConvLSTMCell node {name!r}: takes no attributes, got {extra}")
    shapes = shapes or {}
    x, h, c, w, b = (shapes.get(i) for i in node.input)
    for label, s, rank in (("X", x, 4), ("H", h, 4), ("C", c, 4), ("W", w, 4), ("B", b, 1)):
        if s is not None and len(s) != rank:
            raise ValueError(f"ConvLSTMCell node {name!r}: {label} must be rank {rank}, got shape {s}")
    if w is None or None in w:
        return
    k = w[3]
    if w[0] % 4 or w[2] != k or k % 2 == 0:
        raise ValueError(f"ConvLSTMCell node {name!r}: W must be [4*Ch, Cx+Ch, k, k] with odd k, got {w}")
    ch = w[0] // 4
    if b is not None and b[0] not in (None, 4 * ch):
        raise ValueError(f"ConvLSTMCell node {name!r}: B must be [{4 * ch}] to match W {w}, got {b}")
    for label, s in (("H", h), ("C", c)):
        if s is not None and s[1] not in (None, ch):
            raise ValueError(f"ConvLSTMCell node {name!r}: {label} must have {ch} channels to match W, got {s}")
    if x is not None and x[1] is not None and x[1] + ch != w[1]:
        raise ValueError(f"ConvLSTMCell node {name!r}: X channels {x[1]} + {ch} != W's {w[1]} input channels")
