"""INT8 Q/DQ graphs per backend flavour with onnxruntime's quantization tooling.

Ranges are calibrated once per (network, method) through ``quantize_static``'s JSON range cache and reused for
both flavours and for every layer-exclusion variant the sensitivity search tries.

- ``ort``: u8 activations (asymmetric), s8 per-channel symmetric weights, int32 bias -- what onnxruntime's CPU
  kernels fuse into QLinearConv/MatMulInteger (fast with VNNI).
- ``trt``: symmetric s8 activations and weights (zero point 0), float bias -- TensorRT's explicit quantization
  (10.3 and 11.x; no calibrator API needed).

Custom ``edge.ops`` nodes are never quantized: their inputs are dequantized to float before them, and the node
and its model-local function are written back untouched.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

from edge.kernels import DOMAIN as CUSTOM_DOMAIN
from edge.fileio import atomic_write_bytes

METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}
# ops that carry arithmetic worth quantizing; the "latent" ones (Relu, Reshape, MaxPool, ...) follow neighbours
LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Concat", "AveragePool",
             "GlobalAveragePool", "Softmax", "Sigmoid", "Resize", "LayerNormalization", "InstanceNormalization")


# what the QDQ quantizer may touch: quantize_static's default set, except Gather: a gathered weight row (the
# classifier's CAM weights) gets per-channel scales on the wrong axis (onnxruntime 1.31 then fails at run
# time), and a lookup gains nothing.
OP_TYPES = sorted((set(QDQRegistry) | set(QLinearOpsRegistry)) - {"Gather", "GatherElements"})


@dataclass(frozen=True)
class Flavour:
    name: str
    activation: QuantType
    weight: QuantType
    extra: dict = field(default_factory=dict)
    backend: str = ""


FLAVOURS = {
    "ort": Flavour("ort", QuantType.QUInt8, QuantType.QInt8,
                   {"ActivationSymmetric": False, "WeightSymmetric": True}, "onnxruntime"),
    "trt": Flavour("trt", QuantType.QInt8, QuantType.QInt8,
                   {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}, "tensorrt"),
}


class ListReader(CalibrationDataReader):
    """Feeds a list of input dicts to the calibrator."""

    def __init__(self, samples: Sequence[dict], input_names: Iterable[str]):
        names = list(input_names)
        self._samples = [{k: np.ascontiguousarray(s[k], dtype=np.float32) for k in names} for s in samples]
        self._it = iter(self._samples)

    def get_next(self):
        return next(self._it, None)

    def __len__(self):
        return len(self._samples)

    def set_range(self, start_index: int, end_index: int):
        self._it = iter(self._samples[start_index:end_index])


def input_names(model: onnx.ModelProto) -> list[str]:
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def candidate_layers(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes the sensitivity search may keep in float (quantizable arithmetic, not custom ops)."""
    return [n for n in model.graph.node if n.domain in ("", "ai.onnx") and n.op_type in LAYER_OPS
            and n.op_type in OP_TYPES]


def custom_nodes(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node if n.domain == CUSTOM_DOMAIN]


def _quiet():
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))


# calibrator settings passed to onnxruntime's create_calibrator. quantize_static would not forward
# num_bins, and with its default 128 bins = 128 quantized bins the entropy search has a single candidate
# (the full min..max range): entropy silently equals minmax. Percentile defaults to a symmetric |x| range,
# which wastes half the u8 range on post-ReLU activations.
CALIBRATOR_OPTIONS = {"minmax": {}, "entropy": {"num_bins": 1024, "num_quantized_bins": 128},
                      "percentile": {"num_bins": 2048, "percentile": 99.99, "symmetric": False}}


def compute_ranges(model_path: str | Path, samples: Sequence[dict], method: str, ranges_path: str | Path) -> Path:
    """Run the calibrator over ``samples`` and save the tensor ranges (onnxruntime's JSON range cache)."""
    import contextlib
    import io

    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
    if not samples:
        raise ValueError("no calibration samples")
    names = input_names(onnx.load(str(model_path), load_external_data=False))
    with tempfile.TemporaryDirectory(prefix="edge-calib-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        cal = create_calibrator(Path(model_path), None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                calibrate_method=METHODS[method], extra_options=dict(CALIBRATOR_OPTIONS[method]))
        if method == "minmax":
            cal.collect_data(ListReader(samples, names))
        else:  # histogram collectors stack each tensor over the batch: dynamic shapes (rois) need one at a time
            for s in samples:
                cal.collect_data(ListReader([s], names))
        ranges = cal.compute_data()
        del cal
    save_tensors_data(ranges, ranges_path)
    return Path(ranges_path)


def quantize(model_path: str | Path, out_path: str | Path, flavour: str, method: str, ranges_path: str | Path,
             samples: Sequence[dict] | None = None, exclude: Sequence[str] = (), only: Sequence[str] | None = None,
             per_channel: bool = True) -> onnx.ModelProto:
    """Write the Q/DQ model of ``flavour`` atomically to ``out_path`` and return it.

    ``ranges_path`` is the range cache: computed from ``samples`` when missing, reused when present.
    ``exclude`` keeps nodes in float; ``only`` (if given) quantizes just those nodes.
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r} (have: {', '.join(FLAVOURS)})")
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r} (have: {', '.join(METHODS)})")
    fl = FLAVOURS[flavour]
    model_path, out_path, ranges_path = Path(model_path), Path(out_path), Path(ranges_path)
    model = onnx.load(str(model_path))
    if not ranges_path.is_file():
        if samples is None:
            raise ValueError(f"no calibration ranges at {ranges_path} and no samples to compute them")
        compute_ranges(model_path, samples, method, ranges_path)
    extra = dict(fl.extra)
    exclude = list(exclude) + custom_nodes(model)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    os.close(fd)
    _quiet()
    try:
        quantize_static(str(model_path), tmp, None, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=fl.activation, weight_type=fl.weight, calibrate_method=METHODS[method],
                        nodes_to_exclude=exclude, nodes_to_quantize=list(only) if only else None,
                        op_types_to_quantize=OP_TYPES,
                        extra_options=extra, calibration_cache_path=str(ranges_path))
        q = onnx.load(tmp)
        _restore_custom(q, model)
        atomic_write_bytes(out_path, q.SerializeToString())
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return q


def _restore_custom(q: onnx.ModelProto, original: onnx.ModelProto) -> None:
    """Make sure the custom-domain opset import and the model-local functions survive quantization."""
    have = {f.domain: f for f in q.opset_import}
    for imp in original.opset_import:
        if imp.domain not in have:
            q.opset_import.append(imp)
    fns = {(f.domain, f.name) for f in q.functions}
    for f in original.functions:
        if (f.domain, f.name) not in fns:
            q.functions.append(f)
    if q.ir_version > max(original.ir_version, 10):  # stay readable by the onnxruntime that ran the export
        q.ir_version = max(original.ir_version, 10)


def qdq_summary(model: onnx.ModelProto) -> dict:
    """Counts that say what a Q/DQ graph holds (for the report and tests)."""
    ops = [n.op_type for n in model.graph.node]
    zps = [i for i in model.graph.initializer if "zero_point" in i.name]
    dtypes = sorted({onnx.helper.tensor_dtype_to_np_dtype(z.data_type).name for z in zps})
    return {"quantize_linear": ops.count("QuantizeLinear"), "dequantize_linear": ops.count("DequantizeLinear"),
            "zero_point_dtypes": dtypes, "custom_nodes": custom_nodes(model)}
