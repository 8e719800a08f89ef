"""The TensorRT build path as far as it runs without a GPU: builder choices per TensorRT *version*, narrow
profiles from the manifest, graph preparation (functions of plugin ops dropped, fp16-typed graph for 11.x),
the runtime API names against ``tensorrt_lean``; and a ``gpu`` test that builds and runs the real thing."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import test_export_standin as standin
from edge.errors import UserError
from edge.export.onnx_export import export_model
from edge.runtime.build import prepare_trt_graph
from edge.runtime.build_trt import plan, prepare_graph, profile
from edge.runtime.feeds import fresh_feeds, load_examples
from edge.runtime.trt_backend import RUNTIME_API
from edge.targets import get_target, load_targets


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export_trt")
    return out, export_model(standin, out, seed=1)


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
    assert p["builder_flags"] == ["FP16", "GPU_FALLBACK"] and p["dla_core"] == 0 and p["gpu_fallback"]
    assert p["parser_plugin_override_flag"] is False            # 10.3 has no such flag: functions are stripped
    assert p["strip_functions_of_registered_plugins"] and p["workspace_mb"] == 4096
    q = plan("10.3.0.30", get_target("agx-orin"), "int8")
    assert q["builder_flags"] == ["FP16", "INT8", "GPU_FALLBACK"] and q["graph"] == "int8-qdq"
    f = plan("10.3.0.30", get_target("agx-orin"), "fp32")
    assert f["dla_core"] is None and "DLA runs fp16/int8 only" in f["dla_note"]
    n = plan("10.3.0.30", get_target("orin-nano"), "fp16")
    assert n["dla_core"] is None and n["builder_flags"] == ["FP16"]        # Orin Nano has no DLA
    assert plan("10.3.0.30", get_target("agx-orin"), "fp16", use_dla=False)["dla_core"] is None


def test_plan_tensorrt_11_is_strongly_typed():
    p = plan("11.4.0.106", get_target("x86-gpu"), "fp16")
    assert p["strongly_typed"] and p["graph"] == "fp16-typed" and p["builder_flags"] == []
    assert p["parser_plugin_override_flag"] is True
    assert plan("11.4.0", get_target("x86-gpu"), "int8")["builder_flags"] == []
    assert plan("10.12.0", get_target("x86-gpu"), "fp16")["builder_flags"] == ["FP16"]


def test_plan_refuses_too_old_tensorrt():
    with pytest.raises(UserError, match="thor needs TensorRT >= 10.13, found 10.3"):
        plan("10.3.0.30", get_target("thor"), "fp16")
    with pytest.raises(ValueError, match="not a TensorRT target"):
        plan("10.3", get_target("cpu"), "fp32")


def test_profile_is_narrow_from_manifest(exported):
    nets = exported[1]["networks"]
    search = profile(nets["search"])
    assert search["image"] == ([1, 3, 32, 32],) * 3
    assert search["rois"] == ([1, 5], [12, 5], [12, 5])           # dynamic candidates: 1 .. example count
    step = profile(nets["step"])
    assert step["h"] == ([1, 8, 8, 8], [2, 8, 8, 8], [2, 8, 8, 8])
    custom = dict(nets["step"], profile={"h": {"0": [1, 4, 16]}})
    assert profile(custom)["h"] == ([1, 8, 8, 8], [4, 8, 8, 8], [16, 8, 8, 8])


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


@pytest.mark.gpu
def test_tensorrt_engine_builds_and_matches_pytorch(exported, tmp_path, rng):
    import os

    from edge.models.registry import torch_engines
    from edge.runtime import load_engines
    from edge.runtime.build import build
    out = tmp_path / "trt"
    fp = build(exported[0], "x86-gpu", "fp32", out, plugins=os.environ.get("EDGE_PLUGIN_LIBRARY"))
    assert (out / "timing.cache").is_file() and fp["device"]["kind"] == "gpu"
    engines, ref = load_engines(out), torch_engines(standin)
    for name, net in engines.manifest["networks"].items():
        feeds = fresh_feeds(net, load_examples(out, name)[0], rng)
        got, want = engines[name].run(feeds), ref[name].run(feeds)
        err = max(float(np.abs(got[k] - want[k]).max()) for k in want)
        print(name, "TensorRT fp32 max abs err", err)
        assert err < 1e-3
    assert build(exported[0], "x86-gpu", "fp32", out, plugins=os.environ.get("EDGE_PLUGIN_LIBRARY"))["cache_hit"]
