"""Triton model configurations from an engine manifest (torch-free, no Triton import).

One home for what both ``edge serve`` (Python backend running our engines) and ``edge export-triton``
(``onnxruntime`` / ``tensorrt_plan`` backends) write: tensor entries with the manifest's names, dtypes and
shapes, the batch axis rule, and protobuf text format (``config.pbtxt``). The tests parse every written file
with Triton's own schema (``tritonclient.grpc.model_config_pb2``).
"""
from __future__ import annotations

import json
import re

#: numpy dtype name -> Triton ``DataType`` (model_config.proto) and wire datatype (KServe v2)
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "int64": "TYPE_INT64",
                "int32": "TYPE_INT32", "int16": "TYPE_INT16", "int8": "TYPE_INT8", "uint8": "TYPE_UINT8",
                "bool": "TYPE_BOOL"}

#: parameters every served/exported network carries, so a client needs only the server (no local files)
PARAM_MANIFEST, PARAM_NETWORK, PARAM_MODEL = "edge_manifest", "edge_network", "edge_model"
PARAM_BACKEND, PARAM_PRECISION, PARAM_ENGINE_DIR = "edge_backend", "edge_precision", "edge_engine_dir"
PARAM_COMPOSITE = "edge_composite"    # a model composed on the server from an engine's network (``window``)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Sym(str):
    """An enum value, written without quotes (``TYPE_FP32``, ``KIND_CPU``)."""


def triton_type(dtype: str) -> Sym:
    try:
        return Sym(TRITON_TYPES[str(dtype)])
    except KeyError:
        raise ValueError(f"dtype {dtype!r} has no Triton type (have: {', '.join(TRITON_TYPES)})") from None


def model_name(model: str, network: str, prefix: str | None = None) -> str:
    """``<model>_<network>`` (``tracker_search``); ``prefix`` replaces ``<model>`` (two builds of one model)."""
    name = f"{prefix or model}_{network}"
    if not _NAME.match(name):
        raise ValueError(f"model name {name!r}: use letters, digits, '_', '.', '-'")
    return name


def manifest_model(manifest: dict, engine_dir=None) -> str:
    """The served name of a manifest's model: its kind, ``tracker`` or ``classifier`` (``edge.contract``'s
    one rule; two builds of one kind are told apart with ``--prefix``)."""
    from edge.contract import model_kind
    return model_kind(manifest.get("networks", {}), manifest.get("model"), (manifest.get("config") or {}).get("task"))


def batch_axis(net: dict) -> str | None:
    """The name of the batch axis when axis 0 of every input and output is the same dynamic axis, else None.

    The classifier's ``encoder`` and ``step`` have one (``batch``); the tracker's networks do not (one image,
    a dynamic number of boxes/rois), so Triton serves them request by request."""
    specs = list(net.get("inputs", [])) + list(net.get("outputs", []))
    if not specs:
        return None
    heads = {str(s["shape"][0]) if s["shape"] and isinstance(s["shape"][0], str) else None for s in specs}
    return heads.pop() if len(heads) == 1 and None not in heads else None


def window_network(step: dict) -> dict:
    """The manifest-style entry of a classifier's served ``window`` (``edge.runtime.recurrent.unroll``):
    ``features`` [batch, T, C, H, W] (T dynamic) -> the step's ``logits``."""
    feats = next(s for s in step["inputs"] if s["name"] == "features")
    logits = next(s for s in step["outputs"] if s["name"] == "logits")
    shape = list(feats["shape"])
    return {"inputs": [{"name": "features", "dtype": feats["dtype"], "shape": [shape[0], "window"] + shape[1:]}],
            "outputs": [dict(logits)]}


def dims(shape, batched: bool) -> list[int]:
    """Triton dims: dynamic axes -> -1; the batch axis is implied by ``max_batch_size`` (dropped)."""
    out = [d if isinstance(d, int) else -1 for d in shape]
    return out[1:] if batched else out


def tensor_entries(specs: list[dict], batched: bool, skip=()) -> list[dict]:
    return [{"name": s["name"], "data_type": triton_type(s["dtype"]), "dims": dims(s["shape"], batched)}
            for s in specs if s["name"] not in skip]


def profile_max_batch(net: dict, axis: str) -> int | None:
    """The largest batch the manifest's optimisation profile allows (TensorRT engines cannot exceed it)."""
    best = None
    for spec in net.get("inputs", []):
        rng = (net.get("profile") or {}).get(spec["name"], {}).get("0")
        if spec["shape"] and spec["shape"][0] == axis and rng:
            best = int(rng[-1]) if best is None else min(best, int(rng[-1]))
    return best


def parameters(values: dict) -> list[dict]:
    return [{"key": k, "value": {"string_value": str(v)}} for k, v in values.items() if v is not None]


def edge_parameters(manifest: dict, network: str, model: str, **extra) -> list[dict]:
    """The manifest (JSON) and names as model parameters: ``load_remote_engines`` reads them back."""
    return parameters({PARAM_MODEL: model, PARAM_NETWORK: network,
                       PARAM_MANIFEST: json.dumps(manifest, separators=(",", ":"), sort_keys=True), **extra})


# -- protobuf text format --------------------------------------------------------------------------------
def _quote(s: str) -> str:
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    # text format strings are UTF-8; escape non-ASCII bytes so any parser reads them
    return '"' + "".join(out).encode("utf-8").decode("ascii", "backslashreplace") + '"'


def _scalar(v) -> str:
    if isinstance(v, Sym):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _quote(v)
    raise TypeError(f"cannot write {type(v).__name__} in text format")


def to_pbtxt(msg: dict, indent: int = 0) -> str:
    """A nested dict as protobuf text format: dict = message, list of dicts = repeated message,
    list of scalars = repeated scalar, ``Sym`` = enum value. Keys keep their order."""
    pad = "  " * indent
    lines = []
    for key, v in msg.items():
        if v is None:
            continue
        if isinstance(v, dict):
            lines.append(f"{pad}{key} {{")
            lines.append(to_pbtxt(v, indent + 1))
            lines.append(f"{pad}}}")
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                lines.append(f"{pad}{key} {{")
                lines.append(to_pbtxt(item, indent + 1))
                lines.append(f"{pad}}}")
        elif isinstance(v, list):
            lines.append(f"{pad}{key}: [{', '.join(_scalar(x) for x in v)}]")
        else:
            lines.append(f"{pad}{key}: {_scalar(v)}")
    return "\n".join(x for x in lines if x)
