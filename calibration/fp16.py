"""FP16-typed graphs for ``edge calibrate`` (``<network>.fp16.onnx``): the converter, its repairs and the
keep-in-fp32 list live in the device-side ``edge.runtime.precision`` (one implementation for build and
calibration); this module writes its result as a calibration artifact.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import onnx

from edge.fileio import atomic_write_bytes
from edge.runtime.precision import convert_fp16


def write_fp16(src: str | Path, dst: str | Path, extra_ops: Sequence[str] = ()) -> dict:
    """Convert ``src`` to ``dst`` (atomic); returns the report entry."""
    out, keep = convert_fp16(onnx.load(str(src)), inline=False, extra_ops=extra_ops)
    onnx.checker.check_model(out, full_check=True)
    dst = atomic_write_bytes(dst, out.SerializeToString())
    ops = {n.name: n.op_type for n in out.graph.node}
    return {"file": dst.name, "kept_fp32": [{"node": k, "op": ops.get(k, "?")} for k in keep],
            "casts": sum(n.op_type == "Cast" for n in out.graph.node)}
