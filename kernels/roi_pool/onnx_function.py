"""ONNX face of RoiPool: the model-local function ``edge.ops::RoiPool`` (torch-free).

Node: ``RoiPool(X, rois) -> Y`` with attributes ``pooled_shape`` (2 ints) and ``spatial_scale`` (float),
exactly the inputs, output and attributes of ONNX ``MaxRoiPool``; the function body is that one standard
op with both attributes referenced from the calling node (``ref_attr_name``). ONNX Runtime runs the body;
TensorRT (whose parser has no MaxRoiPool) gets the plugin of the same name after ``strip_functions``.
"""
from __future__ import annotations

import math

import onnx
from onnx import AttributeProto, helper

OP_TYPE = "RoiPool"
ATTRIBUTES = ("pooled_shape", "spatial_scale")


def make_function(opset: int = 17, domain: str = "edge.ops") -> onnx.FunctionProto:
    """FunctionProto ``domain::RoiPool`` for a model whose default opset is ``opset``."""
    body = helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"])
    body.attribute.extend([helper.make_attribute_ref("pooled_shape", AttributeProto.INTS),
                           helper.make_attribute_ref("spatial_scale", AttributeProto.FLOAT)])
    return helper.make_function(domain, OP_TYPE, ["X", "rois"], ["Y"], [body],
                                [helper.make_opsetid("", opset)], attributes=list(ATTRIBUTES),
                                doc_string="ROI max pooling with ONNX MaxRoiPool semantics (rois [R, 5]: "
                                           "batch, x1, y1, x2, y2 in input coordinates).")


def check_node(node: onnx.NodeProto, shapes: dict | None = None) -> None:
    """Validate an ``edge.ops::RoiPool`` node; raise ValueError with a one-line message."""
    name = node.name or OP_TYPE
    if len(node.input) != 2 or len(node.output) != 1:
        raise ValueError(f"RoiPool node {name!r}: needs inputs (X, rois) and one output, "
                         f"got {len(node.input)} inputs and {len(node.output)} outputs")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    missing = [a for a in ATTRIBUTES if a not in attrs]
    if missing:
        raise ValueError(f"RoiPool node {name!r}: missing attribute(s) {', '.join(missing)}")
    shape = list(attrs["pooled_shape"])
    if len(shape) != 2 or min(shape) <= 0:
        raise ValueError(f"RoiPool node {name!r}: pooled_shape must be two positive ints, got {shape}")
    scale = attrs["spatial_scale"]
    if not (isinstance(scale, float) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"RoiPool node {name!r}: spatial_scale must be a finite float > 0, got {scale!r}")
    shapes = shapes or {}
    x, rois = shapes.get(node.input[0]), shapes.get(node.input[1])
    if x is not None and len(x) != 4:
        raise ValueError(f"RoiPool node {name!r}: X must be [N, C, H, W], got shape {x}")
    if rois is not None and (len(rois) != 2 or rois[1] not in (5, None)):
        raise ValueError(f"RoiPool node {name!r}: rois must be [R, 5], got shape {rois}")
