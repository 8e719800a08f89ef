"""The TensorRT build path as far as it runs without a GPU: builder choices per TensorRT *version*, narrow
profiles from the manifest, graph preparation (functions of plugin ops dropped, fp16-typed graph for 11.x),
the runtime API names against ``tensorrt_lean``. The real builds and runs on a GPU: tests/test_trt_gpu.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from fixtures import standin_classifier, standin_tracker
from edge.errors import UserError
from edge.export.onnx_export import export_model
from edge.runtime.build import prepare_trt_graph
from edge.runtime.build_trt import (fp32_tensors, parse_layer_placement, plan, prepare_graph, profile,
                                    timing_cache_name)
from edge.runtime.feeds import fresh_feeds, load_examples
from edge.runtime.trt_backend import RUNTIME_API
from edge.targets import get_target, load_targets


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The stand-in tracker and classifier exported into one folder (their network names differ): the build
    prepares each network from its own entry, so graph-level tests see all four side by side."""
    out = tmp_path_factory.mktemp("export_trt")
    nets = {}
    for mod in (standin_tracker, standin_classifier):
        nets.update(export_model(mod, out / mod.__name__.rsplit(".", 1)[-1], seed=1, log=lambda m: None)["networks"])
        for f in (out / mod.__name__.rsplit(".", 1)[-1]).rglob("*"):
            if f.is_file():
                dst = out / f.relative_to(out / mod.__name__.rsplit(".", 1)[-1])
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(f.read_bytes())
    return out, {"networks": nets}


def test_targets_file_is_complete():
    t = load_targets()
    assert set(t) == {"cpu", "orin-nano", "orin-nx", "agx-orin", "thor", "x86-gpu"}
    assert t["cpu"]["backend"] == "onnxruntime"
    for name in ("orin-nano", "orin-nx", "agx-orin"):
        assert (t[name]["sm"], t[name]["min_tensorrt"], t[name]["compute_capability"]) == ("sm_87", "10.3", "8.7")
    assert t["orin-nano"]["dla_cores"] == 0 and t["agx-orin"]["dla_cores"] == 2
    assert t["thor"]["sm"] == "sm_110" and t["x86-gpu"]["compute_capability"] is None
    for v in t.values():
        assert {"sm", "dla_cores", "workspace_mb", "min_tensorrt"} <= set(v)
    with pytest.raises(ValueError, match="unknown target 'xavier'"):
        get_target("xavier")


def test_plan_jetpack6_tensorrt_10_3():
    p = plan("10.3.0.30", get_target("agx-orin"), "fp16")
    assert p["strongly_typed"] is False and p["graph"] == "fp32"
    # weakly typed fp16: the fp32-kept layers are pinned and the pins obeyed (the typed graph only acts on 11.x)
    assert p["builder_flags"] == ["FP16", "OBEY_PRECISION_CONSTRAINTS", "GPU_FALLBACK"] and p["pin_fp32_layers"]
    assert p["dla_core"] == 0 and p["gpu_fallback"] and p["static_profile"]     # DLA: min = opt = max
    assert p["parser_plugin_override_flag"] is False            # 10.3 has no such flag: functions are stripped
    assert p["strip_functions_of_registered_plugins"] and p["workspace_mb"] == 4096
    assert p["clear_builder_flags"] == []
    q = plan("10.3.0.30", get_target("agx-orin"), "int8")
    assert q["builder_flags"] == ["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS", "GPU_FALLBACK"]
    assert q["graph"] == "int8-qdq"
    f = plan("10.3.0.30", get_target("agx-orin"), "fp32")
    assert f["dla_core"] is None and "DLA runs fp16/int8 only" in f["dla_note"] and not f["static_profile"]
    assert f["clear_builder_flags"] == ["TF32"] and f["builder_flags"] == [] and not f["pin_fp32_layers"]
    n = plan("10.3.0.30", get_target("orin-nano"), "fp16")
    assert n["dla_core"] is None and n["builder_flags"] == ["FP16", "OBEY_PRECISION_CONSTRAINTS"]   # no DLA
    assert not n["static_profile"]
    no_dla = plan("10.3.0.30", get_target("agx-orin"), "fp16", use_dla=False)
    assert no_dla["dla_core"] is None and not no_dla["static_profile"]


def test_plan_tensorrt_11_is_strongly_typed():
    p = plan("11.4.0.106", get_target("x86-gpu"), "fp16")
    assert p["strongly_typed"] and p["graph"] == "fp16-typed" and p["builder_flags"] == []
    assert not p["pin_fp32_layers"] and p["clear_builder_flags"] == []
    assert p["parser_plugin_override_flag"] is True
    assert plan("11.4.0", get_target("x86-gpu"), "int8")["builder_flags"] == []
    assert plan("11.1.0", get_target("x86-gpu"), "fp32")["clear_builder_flags"] == ["TF32"]   # TF32 still on by default
    assert plan("10.12.0", get_target("x86-gpu"), "fp16")["builder_flags"] == ["FP16", "OBEY_PRECISION_CONSTRAINTS"]


@pytest.mark.parametrize("version,flag", [("10.3.0.30", False), ("10.8.0", False), ("10.14.1", False),
                                          ("10.15.0", True), ("11.1.0", True)])
def test_plugin_override_flag_appears_in_10_15(version, flag):
    """OnnxParserFlag.ENABLE_PLUGIN_OVERRIDE is in the Python bindings from 10.15 (NVIDIA/TensorRT
    python/src/parsers/pyOnnx.cpp: not in v10.14, in v10.15), not 10.8 as once assumed."""
    assert plan(version, get_target("x86-gpu"), "fp32")["parser_plugin_override_flag"] is flag


def _builder_flags_in_header(include_dir: str) -> set[str]:
    """Names of ``enum class BuilderFlag`` in NvInfer.h (without the leading k)."""
    import re
    text = (Path(include_dir) / "NvInfer.h").read_text()
    body = re.search(r"enum class BuilderFlag\s*:\s*\w+\s*\{(.*?)\};", text, re.S).group(1)
    body = re.sub(r"//.*", "", body)
    return {m[1:] for m in re.findall(r"\b(k[A-Z0-9_]+)\b", body)}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("target", ["agx-orin", "x86-gpu"])
def test_plan_flags_exist_in_that_versions_headers(tensorrt_include_dirs, target, precision):
    """Every builder flag a plan sets or clears (TF32 for fp32) is in BuilderFlag of the TensorRT headers of
    that version (10.3: JetPack 6.2; 11.1), and 11.x plans use none of the flags 11 removed (FP16, INT8)."""
    from edge.kernels.build_tools import tensorrt_header_version
    for inc in tensorrt_include_dirs:
        major, minor = tensorrt_header_version(inc)
        have = _builder_flags_in_header(inc)
        p = plan(f"{major}.{minor}.0", get_target(target), precision)
        used = set(p["builder_flags"]) | set(p["clear_builder_flags"])
        assert used <= have, f"TensorRT {major}.{minor} headers lack {used - have}"
        if precision == "fp32":
            assert "TF32" in have and p["clear_builder_flags"] == ["TF32"]
        if major >= 11:
            assert not {"FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"} & have
        onnx_parser = Path(inc) / "NvOnnxParser.h"
        if onnx_parser.is_file():       # the 11.1 set ships the parser header; 10.3's lives in onnx-tensorrt
            assert ("kENABLE_PLUGIN_OVERRIDE" in onnx_parser.read_text()) == p["parser_plugin_override_flag"]


def test_plan_refuses_too_old_tensorrt():
    with pytest.raises(UserError, match="thor needs TensorRT >= 10.13, found 10.3"):
        plan("10.3.0.30", get_target("thor"), "fp16")
    with pytest.raises(ValueError, match="not a TensorRT target"):
        plan("10.3", get_target("cpu"), "fp32")


def test_profile_is_narrow_from_manifest(exported):
    nets = exported[1]["networks"]
    search = profile(nets["search"])
    assert search["image"] == ([1, 3, 64, 64],) * 3
    assert search["rois"] == ([1, 5], [16, 5], [16, 5])           # dynamic candidates: 1 .. example count
    step = profile(nets["step"])
    assert step["h"] == ([1, 8, 10, 10],) * 3                      # batch axis: 1 .. example batch (1)
    custom = dict(nets["step"], profile={"h": {"0": [1, 4, 16]}})
    assert profile(custom)["h"] == ([1, 8, 10, 10], [4, 8, 10, 10], [16, 8, 10, 10])
    # DLA: static shapes only, at the opt values
    assert profile(custom, static=True)["h"] == ([4, 8, 10, 10],) * 3
    assert profile(nets["search"], static=True)["rois"] == ([16, 5],) * 3


def test_prepare_graph_drops_functions_of_registered_plugins(exported):
    out, m = exported
    search = onnx.load(str(out / m["networks"]["search"]["file"]))
    prepared, ops = prepare_graph(search, {"RoiPool": "", "ConvLSTMCell": ""})
    assert ops == ["RoiPool"] and list(prepared.functions) == []
    assert [n.op_type for n in prepared.graph.node if n.domain == "edge.ops"] == ["RoiPool"]
    assert len(search.functions) == 1                             # the export itself is untouched
    # without the plugin the function body stays (TensorRT imports it: MaxRoiPool is not supported there)
    kept, ops = prepare_graph(search, {"ConvLSTMCell": ""})
    assert ops == [] and [f.name for f in kept.functions] == ["RoiPool"]
    # a plugin registered under a namespace: the node says which
    ns, _ = prepare_graph(search, {"RoiPool": "edge"})
    attrs = {a.name: a for n in ns.graph.node if n.domain == "edge.ops" for a in n.attribute}
    assert onnx.helper.get_attribute_value(attrs["plugin_namespace"]) == b"edge"
    bare, _ = prepare_graph(search, {"RoiPool": ""})
    with pytest.raises(UserError, match="no plugin for it is loaded"):
        prepare_graph(bare, {})


def test_prepare_trt_graph_per_precision(exported):
    out, m = exported
    step = m["networks"]["step"]
    p10 = plan("10.3.0.30", get_target("orin-nx"), "fp16")
    data, info = prepare_trt_graph(out, "step", step, "fp16", p10, {"ConvLSTMCell": ""})
    g = onnx.load_from_string(data)
    assert info["plugins"] == ["ConvLSTMCell"] and info["graph"] == "fp32" and not g.functions
    assert {i.data_type for i in g.graph.initializer} == {onnx.TensorProto.FLOAT}
    p11 = plan("11.4.0", get_target("x86-gpu"), "fp16")
    data, info = prepare_trt_graph(out, "step", step, "fp16", p11, {"ConvLSTMCell": ""})
    g = onnx.load_from_string(data)
    assert info["graph"] == "fp16-typed"
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in g.graph.input)
    assert onnx.TensorProto.FLOAT16 in {i.data_type for i in g.graph.initializer} or any(
        n.op_type == "Cast" for n in g.graph.node)
    with pytest.raises(UserError, match="edge calibrate"):
        prepare_trt_graph(out, "step", step, "int8", plan("10.3", get_target("orin-nx"), "int8"), {})


def test_function_body_form_of_convlstm_is_the_same_function(exported, rng):
    """The candidate ``edge build`` times against the plugin: ConvLSTMCell inlined (no edge.ops node left, so
    no parser version can pick the plugin), computing what the exported graph computes."""
    out, m = exported
    step = m["networks"]["step"]
    model = onnx.load(str(out / step["file"]))
    body, ops = prepare_graph(model, {"ConvLSTMCell": "", "RoiPool": ""}, body_ops=("ConvLSTMCell",))
    assert ops == [] and not any(n.domain == "edge.ops" for n in body.graph.node)
    assert {"Conv", "Sigmoid", "Tanh"} <= {n.op_type for n in body.graph.node}
    onnx.checker.check_model(body)
    feeds = fresh_feeds(step, load_examples(out, "step")[0], rng)
    run = lambda g: ort.InferenceSession(g.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for a, b in zip(run(model), run(body)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    data, info = prepare_trt_graph(out, "step", step, "fp32", plan("10.3", get_target("orin-nx"), "fp32"),
                                   {"ConvLSTMCell": ""}, body_ops=("ConvLSTMCell",))
    assert info["function_bodies"] == ["ConvLSTMCell"] and info["plugins"] == []
    with pytest.raises(UserError, match="no function body for ConvLSTMCell"):
        prepare_graph(onnx.load_from_string(prepare_graph(model, {"ConvLSTMCell": ""})[0].SerializeToString()),
                      {}, body_ops=("ConvLSTMCell",))


def test_fp32_pins_on_10x_cover_l2_norm_and_state_path_not_plugins(exported):
    """Weakly typed 10.x fp16: the outputs whose layers are pinned to fp32 are those of the nodes the fp16-typed
    graph keeps fp32 (here the L2 normalisation of the embeddings), never an edge.ops plugin's (its format
    combinations decide: rois and the cell state fp32 only)."""
    out, m = exported
    search = onnx.load(str(out / m["networks"]["search"]["file"]))
    graph, _ = prepare_graph(search, {"RoiPool": ""})
    pinned = set(fp32_tensors(graph))
    producers = {o: n for n in graph.graph.node for o in n.output}
    assert all(producers[t].domain != "edge.ops" for t in pinned)
    assert pinned and {producers[t].op_type for t in pinned} == {"ReduceL2", "Div"}   # the L2 normalisation
    # with the ConvLSTMCell body inlined, the cell-state path c -> c_next is pinned: f * c and the sum c'
    step = onnx.load(str(out / m["networks"]["step"]["file"]))
    body, _ = prepare_graph(step, {}, body_ops=("ConvLSTMCell",))
    state = set(fp32_tensors(body))
    producers = {o: n for n in body.graph.node for o in n.output}
    assert "c_next" in state and {producers[t].op_type for t in state} == {"Mul", "Add"}
    assert all("c" in producers[t].input or t == "c_next" for t in state)
    encoder = onnx.load(str(out / m["networks"]["encoder"]["file"]))
    producers = {o: n for n in encoder.graph.node for o in n.output}
    pinned = {producers[t].op_type for t in fp32_tensors(encoder)}
    assert pinned == {"Div", "Softmax"}          # rgb / 255 and the attention softmax; the convolutions run fp16


def test_timing_cache_file_is_per_tensorrt_version_and_gpu():
    orin = {"kind": "gpu", "name": "Orin (nvgpu)", "compute_capability": "8.7"}
    a = timing_cache_name("10.3.0.30", orin)
    assert a == "timing-trt10.3.0.30-Orin_nvgpu_-sm87.cache"
    assert timing_cache_name("10.3.0.31", orin) != a
    assert timing_cache_name("10.3.0.30", dict(orin, name="NVIDIA H200", compute_capability="9.0")) != a
    assert "/" not in timing_cache_name("11.1", {"name": "a/b c", "compute_capability": "12.0"})


def test_dla_placement_from_the_build_log():
    """TensorRT's INFO report of where layers landed (format of its DLA samples: a header line, then one
    ``[DlaLayer] {ForeignNode[...]}`` / ``[GpuLayer] TYPE: name`` entry per line, comma-terminated)."""
    log = ["[MemUsageChange] Init CUDA: CPU +2, GPU +0, now: CPU 300, GPU 1200 (MiB)", "",
           "--------------- Layers running on DLA: ",
           "[DlaLayer] {ForeignNode[/backbone/Conv.../backbone/Relu_3]}, ",
           "[DlaLayer] {ForeignNode[/head/Conv]}, ",
           "--------------- Layers running on GPU: ",
           "[GpuLayer] PLUGIN_V3: /RoiPool, [GpuLayer] NORMALIZATION: /l2, ",
           "Total Host Persistent Memory: 1234"]
    assert parse_layer_placement(log) == {"dla_subgraphs": ["{ForeignNode[/backbone/Conv.../backbone/Relu_3]}",
                                                            "{ForeignNode[/head/Conv]}"], "gpu_layers": 2}
    nothing = ["--------------- Layers running on DLA: ", "--------------- Layers running on GPU: ",
               "[GpuLayer] CONVOLUTION: conv1"]
    assert parse_layer_placement(nothing) == {"dla_subgraphs": [], "gpu_layers": 1}
    assert parse_layer_placement(["Built engine"]) is None


@pytest.mark.parametrize("network", ["encoder", "search"])
def test_fp16_typed_graph_stays_close_to_fp32(exported, network, rng):
    """The fp16-typed graph (TensorRT 11's fp16 form; inlined here so onnxruntime can run it) vs fp32."""
    from edge.runtime.precision import to_fp16
    out, m = exported
    net = m["networks"][network]
    model = onnx.load(str(out / net["file"]))
    half = to_fp16(model)
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in half.graph.initializer)
    feeds = fresh_feeds(net, load_examples(out, network)[0], rng)
    a = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    b = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    err = float(np.abs(a - b).max())
    print(network, "fp16-typed vs fp32 max abs err", err, "scale", float(np.abs(a).max()))
    assert b.dtype == np.float32 and err < 1e-2 * max(1.0, float(np.abs(a).max()))


def test_runtime_uses_only_names_tensorrt_lean_has():
    trt = pytest.importorskip("tensorrt_lean")
    missing = []
    for dotted in RUNTIME_API:
        obj = trt
        for part in dotted.split("."):
            if not hasattr(obj, part):
                missing.append(dotted)
                break
            obj = getattr(obj, part)
    print("tensorrt_lean", trt.__version__, "checked", len(RUNTIME_API), "names")
    assert missing == []
