"""TensorRT engines (build side, runs on the device; needs ``tensorrt`` + ``onnx``, never torch).

Order matters and follows the TensorRT facts in REFERENCE.md:
1. ``import tensorrt``, then load the plugin library (ctypes, RTLD_GLOBAL) before parsing, so its creators are
   registered in the libnvinfer the bindings use;
2. drop the model-local function of every ``edge.ops`` op whose plugin is registered (up to 10.6 the parser
   always imports a function body; later versions prefer it unless told otherwise), and set
   ``OnnxParserFlag.ENABLE_PLUGIN_OVERRIDE`` where the bindings have it (10.15 and later);
3. one narrow optimisation profile per network from the manifest (min/opt/max per dynamic axis); a static
   one (min = opt = max) for DLA, which runs nothing else;
4. precision: fp32 with ``BuilderFlag.TF32`` cleared (TensorRT turns it on by default: Ampere/Orin would
   round convolution inputs to 10 mantissa bits); fp16 via ``BuilderFlag.FP16`` on 10.x with the sensitive
   layers (L2 norm, softmax, exp, the cell-state path: ``edge.runtime.precision``) pinned to fp32 under
   ``OBEY_PRECISION_CONSTRAINTS`` and the plugins keeping rois / cell state fp32, and via an fp16-typed graph
   (strongly typed network) on 11.x where the flag is gone; int8 = the calibrated symmetric Q/DQ graph;
5. DLA core with GPU fallback when the target has DLA and the precision allows it (fp16/int8); the build
   reports how many layers could run on DLA and what landed there (TensorRT's build log);
6. the timing cache lives beside the engine, one file per TensorRT version and GPU, and is only reused
   when TensorRT accepts it (``set_timing_cache(..., ignore_mismatch=False)``), else the build starts empty.
``plan`` is a pure function of the TensorRT *version* and the target, so it is tested without a GPU.
"""
from __future__ import annotations

import re
from pathlib import Path

import onnx

from edge.errors import UserError
from edge.runtime.trt_backend import load_plugin_library  # noqa: F401  (one home; build.py loads through here)
from edge.targets import version_tuple

from edge.kernels import DOMAIN as EDGE_DOMAIN

PLUGIN_OPS = ("RoiPool", "ConvLSTMCell")
#: plugin ops whose ONNX function body TensorRT can also build (MaxRoiPool it cannot): ``edge build`` times
#: both forms per network and keeps the faster
BODY_ALTERNATIVE_OPS = ("ConvLSTMCell",)
#: the Python bindings expose ``OnnxParserFlag.ENABLE_PLUGIN_OVERRIDE`` from 10.15 on (NVIDIA/TensorRT
#: python/src/parsers/pyOnnx.cpp: absent in 10.14, present in 10.15; the 11.1 headers have the enum)
PLUGIN_OVERRIDE_FLAG_SINCE = (10, 15)


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
        "parser_plugin_override_flag": v >= PLUGIN_OVERRIDE_FLAG_SINCE,
        "strip_functions_of_registered_plugins": True,
        "builder_flags": [],
        # TensorRT sets TF32 by default: an fp32 engine must not round its convolution/GEMM inputs to TF32
        "clear_builder_flags": ["TF32"] if precision == "fp32" else [],
        # 10.x weakly typed fp16/int8: the fp32-kept layers of edge.runtime.precision, obeyed
        "pin_fp32_layers": not strongly_typed and precision != "fp32",
        "graph": {"fp32": "fp32", "fp16": "fp16-typed" if strongly_typed else "fp32",
                  "int8": "int8-qdq"}[precision],
        "workspace_mb": target.get("workspace_mb"),
        "dla_core": None,
        "gpu_fallback": False,
        "static_profile": False,
        "compute_capability": target.get("compute_capability"),
    }
    if not strongly_typed:
        if precision in ("fp16", "int8"):
            p["builder_flags"].append("FP16")
        if precision == "int8":
            p["builder_flags"].append("INT8")   # explicit quantization (Q/DQ) on a weakly typed 10.x network
        if p["pin_fp32_layers"]:
            p["builder_flags"].append("OBEY_PRECISION_CONSTRAINTS")
    if use_dla and target.get("dla_cores", 0) > 0:
        if precision == "fp32":
            p["dla_note"] = "DLA runs fp16/int8 only: fp32 engine stays on the GPU"
        else:
            p.update(dla_core=0, gpu_fallback=True, static_profile=True)   # DLA needs min = opt = max
            p["builder_flags"].append("GPU_FALLBACK")
    return p


def profile(net: dict, static: bool = False) -> dict[str, tuple[list[int], list[int], list[int]]]:
    """(min, opt, max) shapes per input from the manifest; fixed axes are fixed, dynamic ones narrow.
    ``static``: every axis at its opt value (DLA runs only static shapes)."""
    out = {}
    for e in net["inputs"]:
        lo, opt, hi = [], [], []
        ranges = net.get("profile", {}).get(e["name"], {})
        for axis, (sym, ex) in enumerate(zip(e["shape"], e["example_shape"])):
            if isinstance(sym, str) or sym is None:
                a, b, c = ranges.get(str(axis), [1, ex, ex])
            else:
                a = b = c = int(sym)
            if static:
                a = c = b
            lo.append(int(a)), opt.append(int(b)), hi.append(int(c))
        out[e["name"]] = (lo, opt, hi)
    return out


def registered_plugins(trt) -> dict[str, str]:
    """name -> namespace of every plugin creator registered with TensorRT (V2 and V3 creators)."""
    reg = trt.get_plugin_registry()
    creators = list(getattr(reg, "all_creators", None) or getattr(reg, "plugin_creator_list", []))
    return {c.name: getattr(c, "plugin_namespace", "") for c in creators}


def prepare_graph(model: onnx.ModelProto, registered: dict[str, str],
                  body_ops: tuple[str, ...] = ()) -> tuple[onnx.ModelProto, list[str]]:
    """Copy of ``model`` without the local functions of edge ops whose plugin is registered; nodes of those
    ops get ``plugin_namespace`` when the creator has one. Ops in ``body_ops`` run their function body
    instead (inlined: no version of the parser can pick the plugin for them). Returns (graph, ops handed to
    plugins)."""
    from edge.kernels.onnx_functions import strip_functions

    m = onnx.ModelProto()
    m.CopyFrom(model)
    present = sorted({n.op_type for n in m.graph.node if n.domain == EDGE_DOMAIN})
    inline = [op for op in present if op in body_ops]
    if inline:
        missing = [op for op in inline if not any(f.domain == EDGE_DOMAIN and f.name == op for f in m.functions)]
        if missing:
            raise UserError(f"graph has no function body for {', '.join(missing)}")
        from onnx import inliner
        m = inliner.inline_selected_functions(m, [(EDGE_DOMAIN, op) for op in inline])
        present = [op for op in present if op not in inline]
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


def fp32_tensors(model: onnx.ModelProto) -> list[str]:
    """Outputs of the nodes ``edge.runtime.precision`` keeps in fp32 (L2 norm, softmax, exp, the cell-state
    path ...), except the ``edge.ops`` plugins, whose format combinations decide (rois and the cell state are
    fp32 only there; features may run fp16). On 10.x their TensorRT layers get fp32 precision and outputs."""
    from edge.runtime.precision import blocked_nodes, named

    m = named(model)
    keep = set(blocked_nodes(m))
    return sorted({o for n in m.graph.node if n.name in keep and n.domain != EDGE_DOMAIN for o in n.output if o})


def pin_fp32_layers(trt, network, tensors) -> list[str]:
    """Layers producing any of ``tensors`` compute and output in fp32 (weakly typed networks; honoured with
    ``BuilderFlag.OBEY_PRECISION_CONSTRAINTS``). Returns the names of the pinned layers."""
    want, pinned = set(tensors), []
    floats = {trt.DataType.FLOAT, trt.DataType.HALF}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        hit = [j for j, t in enumerate(outs) if t.name in want and t.dtype in floats]
        if not hit or layer.type in (getattr(trt.LayerType, "PLUGIN_V3", None), getattr(trt.LayerType, "PLUGIN_V2", None)):
            continue
        layer.precision = trt.DataType.FLOAT
        for j in hit:
            layer.set_output_type(j, trt.DataType.FLOAT)
        pinned.append(layer.name)
    return pinned


def timing_cache_name(trt_version: str, device: dict | None) -> str:
    """The timing cache file of one TensorRT version on one GPU (tactic timings are valid nowhere else)."""
    dev = device or {}
    tag = f"{dev.get('name', 'gpu')}-sm{str(dev.get('compute_capability', '')).replace('.', '')}"
    return "timing-" + re.sub(r"[^A-Za-z0-9._-]+", "_", f"trt{trt_version}-{tag}") + ".cache"


def attach_timing_cache(trt, config, path: Path, log=print) -> str:
    """Attach the timing cache at ``path`` when TensorRT accepts it (strict: ``ignore_mismatch=False``), else
    an empty one. Returns what happened: "reused", "new" or "rejected"."""
    status = "new"
    if path.is_file():
        try:
            cache = config.create_timing_cache(path.read_bytes())
            if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
                return "reused"
        except Exception as e:  # noqa: BLE001  (a corrupt cache is a cache miss, never a failed build)
            log(f"timing cache {path.name} unreadable ({type(e).__name__}: {e})")
        log(f"timing cache {path.name} rejected by TensorRT (another TensorRT or GPU, or corrupt): starting empty")
        status = "rejected"
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise UserError("TensorRT refused an empty timing cache")
    return status


DLA_MARK, GPU_MARK = "Layers running on DLA:", "Layers running on GPU:"


def parse_layer_placement(messages: list[str]) -> dict | None:
    """What TensorRT's build log (INFO) says landed where: the section after "Layers running on DLA:" lists
    DLA subgraphs as ``{...}`` (10.x: ``[DlaLayer] {ForeignNode[first...last]}``), the one after "Layers
    running on GPU:" the GPU layers (10.x: ``[GpuLayer] TYPE: name``). None when the log has no report."""
    section, dla, gpu, seen = None, [], [], False
    for msg in messages:
        for line in msg.splitlines():
            if DLA_MARK in line:
                section, seen, line = "dla", True, line.split(DLA_MARK, 1)[1]
            elif GPU_MARK in line:
                section, seen, line = "gpu", True, line.split(GPU_MARK, 1)[1]
            elif line.strip().startswith("---"):
                section = None
            if section == "dla":
                dla += re.findall(r"\{[^{}]*\}", line)
            elif section == "gpu":
                gpu += [m.strip() for m in re.findall(r"\[GpuLayer\]\s*([^,]+)", line)]
    if not seen:
        return None
    return {"dla_subgraphs": dla, "gpu_layers": len(gpu)}


def _build_logger(trt, log):
    """A TensorRT logger that forwards warnings and errors to ``log`` and keeps every INFO message (the
    builder's layer placement report)."""
    class BuildLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity, msg):
            if int(severity) <= int(trt.ILogger.Severity.INFO):
                self.messages.append(msg)
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                log(f"TensorRT: {msg}")

    return BuildLogger()


def configure(trt, builder, network, config, net: dict, p: dict, fp32_names=(), log=print) -> dict:
    """Apply a plan to a builder config and network: flags set and cleared, fp32 pins, profile, DLA. Returns
    what was applied (for the fingerprint)."""
    applied = {"flags_set": [], "flags_cleared": [], "fp32_layers": []}
    if p.get("workspace_mb"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(p["workspace_mb"]) << 20)
    for flag in p["builder_flags"]:
        if hasattr(trt.BuilderFlag, flag):
            config.set_flag(getattr(trt.BuilderFlag, flag))
            applied["flags_set"].append(flag)
        else:
            log(f"TensorRT {trt.__version__} has no BuilderFlag.{flag}: skipped")
    for flag in p.get("clear_builder_flags", []):
        if hasattr(trt.BuilderFlag, flag):
            config.clear_flag(getattr(trt.BuilderFlag, flag))
            applied["flags_cleared"].append(flag)
    if p.get("pin_fp32_layers") and fp32_names:
        applied["fp32_layers"] = pin_fp32_layers(trt, network, fp32_names)
    if p["dla_core"] is not None and builder.num_DLA_cores > 0:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(p["dla_core"])
        layers = [network.get_layer(i) for i in range(network.num_layers)]
        applied["dla"] = {"core": int(p["dla_core"]), "network_layers": len(layers),
                          "dla_capable_layers": sum(bool(config.can_run_on_DLA(layer)) for layer in layers)}
    elif p["dla_core"] is not None:
        log("target has DLA but this device reports none: the engine runs on the GPU")
    prof = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile(net, static=p.get("static_profile", False)).items():
        prof.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(prof)
    return applied


def build_engine(trt, graph: bytes, net: dict, p: dict, timing_cache: Path, log=print) -> tuple[bytes, dict]:
    """Parse + build with the real TensorRT builder (on the device). Returns (serialized engine, build report:
    flags, fp32-pinned layers, timing-cache status, DLA placement)."""
    logger = _build_logger(trt, log)
    builder = trt.Builder(logger)
    flags = 0
    if p["strongly_typed"] and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):   # deprecated no-op on 10.x
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # set the flag wherever these bindings have it (functions of plugin ops are stripped anyway, so the plugin
    # is used either way)
    if hasattr(trt, "OnnxParserFlag") and hasattr(trt.OnnxParserFlag, "ENABLE_PLUGIN_OVERRIDE"):
        parser.set_flag(trt.OnnxParserFlag.ENABLE_PLUGIN_OVERRIDE)
    if not parser.parse(graph):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT could not parse the ONNX graph: {errs}")
    config = builder.create_builder_config()
    if p["dla_core"] is not None and hasattr(trt, "ProfilingVerbosity"):
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    names = fp32_tensors(onnx.load_from_string(graph)) if p.get("pin_fp32_layers") else []
    report = configure(trt, builder, network, config, net, p, names, log)
    report["timing_cache"] = attach_timing_cache(trt, config, timing_cache, log)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise UserError("TensorRT failed to build the engine (see the log above)")
    if "dla" in report:
        placed = parse_layer_placement(logger.messages)
        if placed is not None:
            report["dla"].update(placed)
            if not placed["dla_subgraphs"]:
                log(f"DLA core {p['dla_core']}: no layer landed on the DLA (all on the GPU)")
    from edge.fileio import atomic_write_bytes
    atomic_write_bytes(timing_cache, memoryview(config.get_timing_cache().serialize()).tobytes())
    return memoryview(engine).tobytes(), report


def import_tensorrt_builder():
    """The full ``tensorrt`` package (the builder); ``tensorrt_lean`` can only run engines."""
    try:
        import tensorrt as trt
    except ImportError:
        raise UserError("building TensorRT engines needs the full `tensorrt` Python package (JetPack ships it: "
                        "python3-libnvinfer); on a machine without it use --target cpu") from None
    return trt
