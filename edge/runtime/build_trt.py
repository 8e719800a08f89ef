"""TensorRT engines (build side, runs on the device; needs ``tensorrt`` + ``onnx``, never torch).

Order matters and follows the TensorRT facts in REFERENCE.md:
1. load the plugin library (ctypes, RTLD_GLOBAL) before parsing, so its creators are registered;
2. drop the model-local function of every ``edge.ops`` op whose plugin is registered (up to 10.6 the parser
   always imports a function body; later versions prefer it unless told otherwise), and set
   ``OnnxParserFlag.ENABLE_PLUGIN_OVERRIDE`` where it exists;
3. one narrow optimisation profile per network from the manifest (min/opt/max per dynamic axis);
4. precision: fp16 via ``BuilderFlag.FP16`` on 10.x, via an fp16-typed graph (strongly typed network) on
   11.x where the flag is gone; int8 = the calibrated symmetric Q/DQ graph (explicit quantization);
5. DLA core with GPU fallback when the target has DLA and the precision allows it (fp16/int8);
6. the timing cache lives beside the engine and is reused on rebuilds.
``plan`` is a pure function of the TensorRT *version* and the target, so it is tested without a GPU.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

import onnx

from edge.errors import UserError
from edge.targets import version_tuple

from edge.kernels import DOMAIN as EDGE_DOMAIN

PLUGIN_OPS = ("RoiPool", "ConvLSTMCell")


def plan(trt_version: str, target: dict, precision: str, use_dla: bool = True) -> dict:
    """Builder choices for a TensorRT version (e.g. "10.3.0.30", "11.4.0") and a target profile."""
    v = version_tuple(trt_version)
    if target.get("backend") != "tensorrt":
        raise ValueError(f"target {target.get('name')!r} is not a TensorRT target")
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"unknown precision {precision!r}")
    need = version_tuple(target.get("min_tensorrt"))
    if need and v < need:
        raise UserError(f"target {target['name']} needs TensorRT >= {target['min_tensorrt']}, found {trt_version}")
    strongly_typed = v >= (11,)
    p = {
        "tensorrt": trt_version,
        "strongly_typed": strongly_typed,
        # 10.0-10.6 always import a function body; 10.7 prefers plugins; the flag appears in later 10.x/11.x
        "parser_plugin_override_flag": v >= (10, 8),
        "strip_functions_of_registered_plugins": True,
        "builder_flags": [],
        "graph": {"fp32": "fp32", "fp16": "fp16-typed" if strongly_typed else "fp32",
                  "int8": "int8-qdq"}[precision],
        "workspace_mb": target.get("workspace_mb"),
        "dla_core": None,
        "gpu_fallback": False,
        "compute_capability": target.get("compute_capability"),
    }
    if not strongly_typed:
        if precision in ("fp16", "int8"):
            p["builder_flags"].append("FP16")
        if precision == "int8":
            p["builder_flags"].append("INT8")   # explicit quantization (Q/DQ) on a weakly typed 10.x network
    if use_dla and target.get("dla_cores", 0) > 0:
        if precision == "fp32":
            p["dla_note"] = "DLA runs fp16/int8 only: fp32 engine stays on the GPU"
        else:
            p.update(dla_core=0, gpu_fallback=True)
            p["builder_flags"].append("GPU_FALLBACK")
    return p


def profile(net: dict) -> dict[str, tuple[list[int], list[int], list[int]]]:
    """(min, opt, max) shapes per input from the manifest; fixed axes are fixed, dynamic ones narrow."""
    out = {}
    for e in net["inputs"]:
        lo, opt, hi = [], [], []
        ranges = net.get("profile", {}).get(e["name"], {})
        for axis, (sym, ex) in enumerate(zip(e["shape"], e["example_shape"])):
            if isinstance(sym, str) or sym is None:
                a, b, c = ranges.get(str(axis), [1, ex, ex])
            else:
                a = b = c = int(sym)
            lo.append(int(a)), opt.append(int(b)), hi.append(int(c))
        out[e["name"]] = (lo, opt, hi)
    return out


def load_plugin_library(path: str | os.PathLike) -> ctypes.CDLL:
    """dlopen the plugin library globally (its static registrars add the creators to TensorRT)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"plugin library not found: {path} (build it from kernels/CMakeLists.txt)")
    return ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)


def registered_plugins(trt) -> dict[str, str]:
    """name -> namespace of every plugin creator registered with TensorRT (V2 and V3 creators)."""
    reg = trt.get_plugin_registry()
    creators = list(getattr(reg, "all_creators", None) or getattr(reg, "plugin_creator_list", []))
    return {c.name: getattr(c, "plugin_namespace", "") for c in creators}


def prepare_graph(model: onnx.ModelProto, registered: dict[str, str]) -> tuple[onnx.ModelProto, list[str]]:
    """Copy of ``model`` without the local functions of edge ops whose plugin is registered; nodes of those
    ops get ``plugin_namespace`` when the creator has one. Returns (graph, ops handed to plugins)."""
    from edge.kernels.onnx_functions import strip_functions

    m = onnx.ModelProto()
    m.CopyFrom(model)
    present = sorted({n.op_type for n in m.graph.node if n.domain == EDGE_DOMAIN})
    to_plugin = [op for op in present if op in registered]
    missing = [op for op in present if op not in registered]
    if missing and not any(f.domain == EDGE_DOMAIN and f.name in missing for f in m.functions):
        raise UserError(f"graph uses {', '.join(missing)} but no plugin for it is loaded and no function body exists")
    strip_functions(m, to_plugin)
    for node in m.graph.node:
        if node.domain == EDGE_DOMAIN and node.op_type in to_plugin and registered[node.op_type]:
            if not any(a.name == "plugin_namespace" for a in node.attribute):
                node.attribute.append(onnx.helper.make_attribute("plugin_namespace", registered[node.op_type]))
    return m, to_plugin


def build_engine(trt, graph: bytes, net: dict, p: dict, timing_cache: Path, log=print) -> bytes:
    """Parse + build with the real TensorRT builder (on the device). Returns the serialized engine."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if p["strongly_typed"] and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):   # deprecated no-op on 10.x
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # the plan's version rule is an estimate: set the flag wherever this TensorRT has it (functions of plugin
    # ops are stripped anyway, so the plugin is used either way)
    if hasattr(trt, "OnnxParserFlag") and hasattr(trt.OnnxParserFlag, "ENABLE_PLUGIN_OVERRIDE"):
        parser.set_flag(trt.OnnxParserFlag.ENABLE_PLUGIN_OVERRIDE)
    if not parser.parse(graph):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT could not parse the ONNX graph: {errs}")
    config = builder.create_builder_config()
    if p.get("workspace_mb"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(p["workspace_mb"]) << 20)
    for flag in p["builder_flags"]:
        if hasattr(trt.BuilderFlag, flag):
            config.set_flag(getattr(trt.BuilderFlag, flag))
        else:
            log(f"TensorRT {trt.__version__} has no BuilderFlag.{flag}: skipped")
    if p["dla_core"] is not None and builder.num_DLA_cores > 0:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(p["dla_core"])
    prof = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile(net).items():
        prof.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(prof)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise UserError("TensorRT failed to build the engine (see the log above)")
    from edge.fileio import atomic_write_bytes
    atomic_write_bytes(timing_cache, memoryview(config.get_timing_cache().serialize()).tobytes())
    return memoryview(engine).tobytes()


def import_tensorrt_builder():
    """The full ``tensorrt`` package (the builder); ``tensorrt_lean`` can only run engines."""
    try:
        import tensorrt as trt
    except ImportError:
        raise UserError("building TensorRT engines needs the full `tensorrt` Python package (JetPack ships it: "
                        "python3-libnvinfer); on a machine without it use --target cpu") from None
    return trt
