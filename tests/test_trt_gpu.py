"""The production TensorRT path on a GPU: ``edge build`` (fp32, fp16 weakly typed on 10.x / typed on 11.x,
int8 Q/DQ) -> ``load_engines`` -> the tracker/classifier runtime through ``edge bench`` against PyTorch with
``edge/tolerances.json``; the builder config (TF32 cleared), DLA placement, the timing cache (reused,
rejected), failing enqueues and shapes as one error, plugin messages through TensorRT's logger, teardown.

Skipped without a GPU (conftest's ``gpu`` marker: the full tensorrt, pycuda and a device). On a Jetson:
``EDGE_GPU_TARGET=orin-nx`` (default ``x86-gpu``: any GPU), and ``TENSORRT_INCLUDE_DIR`` / ``TENSORRT_LIB_DIR``
where TensorRT is not under /usr (pip wheels: headers from ../shared, libraries in tensorrt_libs).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixtures import standin_classifier as tiny_classifier
from fixtures import standin_tracker as tiny_tracker
from edge.cli import main

pytestmark = pytest.mark.gpu

TARGET = os.environ.get("EDGE_GPU_TARGET", "x86-gpu")


@pytest.fixture(scope="session")
def trt():
    import tensorrt
    return tensorrt


def _matching_headers(trt) -> str | None:
    from edge.kernels import build_tools
    have = tuple(int(v) for v in trt.__version__.split(".")[:2])
    dirs = [d for d in os.environ.get("TENSORRT_INCLUDE_DIR", "").split(os.pathsep) if d]
    exact = [d for d in dirs if build_tools.tensorrt_header_version(d) == have]
    major = [d for d in dirs if build_tools.tensorrt_header_version(d)[0] == have[0]]
    return (exact or major or [None])[0]       # None: CMake's default paths (JetPack: /usr/include/...)


def _lib_dir() -> str | None:
    if os.environ.get("TENSORRT_LIB_DIR"):
        return os.environ["TENSORRT_LIB_DIR"]
    try:
        return os.path.dirname(__import__("tensorrt_libs").__file__)    # pip wheels
    except ImportError:
        return None


@pytest.fixture(scope="session")
def plugin_lib(trt, tmp_path_factory) -> Path:
    """libedge_plugins.so built with kernels/CMakeLists.txt for this GPU and loaded the production way."""
    from edge.kernels import build_tools
    from edge.runtime.trt_backend import gpu_device, load_plugin_library
    arch = gpu_device()["compute_capability"].replace(".", "")
    lib = build_tools.cmake_build_plugins(tmp_path_factory.mktemp("plugins"), cuda_archs=arch,
                                          tensorrt_include_dir=_matching_headers(trt), tensorrt_lib_dir=_lib_dir())
    load_plugin_library(lib)
    names = {c.name for c in trt.get_plugin_registry().all_creators}
    assert {"RoiPool", "ConvLSTMCell"} <= names
    return lib


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    """Both tiny stand-ins exported and calibrated (int8 + fp16-typed graphs), plus bench data."""
    from edge.data.actions import write_clips
    from edge.assets import video_clip
    from edge.data.tracking_gen import render_sequence, write_sequence
    from edge.export.onnx_export import export_model
    root = tmp_path_factory.mktemp("trt_gpu")
    clip = str(video_clip("carphone_pristine.mp4"))
    out = {}
    for name, mod in (("tracker", tiny_tracker), ("classifier", tiny_classifier)):
        export_model(mod, root / "export" / name, seed=0, log=lambda m: None)
        assert main(["calibrate", str(root / "export" / name), "--data", clip, "--frames", "24", "--quiet"]) == 0
        out[name] = root / "export" / name
    write_sequence(render_sequence(7, length=12), root / "otb")
    write_clips(root / "clips", "test", count=6)
    return root, out


def _build(exports, plugin_lib, model, precision, out, *extra) -> dict:
    src = exports[1][model]
    assert main(["build", str(src), "--target", TARGET, "--precision", precision, "--plugins", str(plugin_lib),
                 "-o", str(out), *extra]) == 0
    return json.loads((out / "fingerprint.json").read_text())


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_load_run_matches_pytorch(exports, plugin_lib, trt, tmp_path, precision):
    root, _ = exports
    dirs = {m: tmp_path / f"{m}-{precision}" for m in ("tracker", "classifier")}
    fps = {m: _build(exports, plugin_lib, m, precision, d) for m, d in dirs.items()}
    strongly_typed = int(trt.__version__.split(".")[0]) >= 11
    for m, fp in fps.items():
        assert fp["backend"] == "tensorrt" and fp["backend_version"] == trt.__version__
        for name, e in fp["networks"].items():
            rep = e["build"]
            if precision == "fp32":
                assert rep["flags_cleared"] == ["TF32"]
            elif not strongly_typed:
                assert "OBEY_PRECISION_CONSTRAINTS" in rep["flags_set"]
            assert rep["timing_cache"] in ("new", "reused")
    if precision != "fp32" and not strongly_typed:    # the L2 norms of the tracker's embeddings stay fp32
        assert fps["tracker"]["networks"]["search"]["build"]["fp32_layers"]
    forms = fps["classifier"]["networks"]["step"]["custom_op_forms"]      # plugin vs function body, timed
    assert forms["kept"] in ("plugin", "function_body") and set(forms["timings_ms"]) == {"plugin", "function_body"}
    if precision == "fp32":                          # both forms compute the same cell
        assert forms["max_abs_diff_plugin_vs_body"] < 1e-4
    assert fps["classifier"]["networks"]["step"]["plugins" if forms["kept"] == "plugin" else "function_bodies"] \
        == ["ConvLSTMCell"]
    assert fps["tracker"]["networks"]["search"]["plugins"] == ["RoiPool"]
    report = tmp_path / "bench.json"
    rc = main(["bench", str(dirs["tracker"]), str(dirs["classifier"]), "--data", str(root / "otb"),
               str(root / "clips"), "--samples", "12", "--duration", "0.05", "--no-baseline", "--json", str(report)])
    rep = json.loads(report.read_text())
    for m, sec in rep["models"].items():
        for row in sec["rows"][1:]:
            print(m, precision, row["name"], row["numerics"].get("max_abs_err"), row["verdict"])
            assert row["verdict"]["status"] == "pass", row["verdict"]
    assert rc == 0


def test_fp32_builder_config_has_tf32_cleared(trt, plugin_lib):
    """Builder-config introspection with the real bindings: TensorRT turns TF32 on by default; configure()
    clears it for fp32 and sets the plan's flags."""
    from edge.runtime import build_trt
    from edge.targets import get_target
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_network(0)
    net = {"inputs": []}
    config = builder.create_builder_config()
    assert config.get_flag(trt.BuilderFlag.TF32)           # the default this fixes
    build_trt.configure(trt, builder, network, config, net, build_trt.plan(trt.__version__, get_target(TARGET),
                                                                           "fp32"))
    assert not config.get_flag(trt.BuilderFlag.TF32)
    if hasattr(trt.BuilderFlag, "FP16"):
        config = builder.create_builder_config()
        build_trt.configure(trt, builder, network, config, net,
                            build_trt.plan(trt.__version__, get_target(TARGET), "fp16", use_dla=False))
        assert config.get_flag(trt.BuilderFlag.FP16) and config.get_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)


def test_dla_build_is_static_and_reports_placement(exports, plugin_lib, trt, tmp_path):
    from edge.targets import get_target
    if get_target(TARGET).get("dla_cores", 0) == 0 or trt.Builder(trt.Logger()).num_DLA_cores == 0:
        pytest.skip(f"no DLA on this device / target {TARGET}")
    fp = _build(exports, plugin_lib, "classifier", "fp16", tmp_path / "dla")
    for name, e in fp["networks"].items():
        assert all(lo == opt == hi for lo, opt, hi in e["profile"].values())
        dla = e["build"]["dla"]
        print(name, dla)
        assert dla["core"] == 0 and 0 <= dla["dla_capable_layers"] <= dla["network_layers"]
        assert "dla_subgraphs" in dla                        # TensorRT's build log reported the placement
    assert fp["networks"]["encoder"]["build"]["dla"]["dla_subgraphs"], "the conv encoder should land on DLA"


def test_timing_cache_reused_and_a_foreign_one_rejected(exports, plugin_lib, tmp_path):
    out = tmp_path / "cache"
    fp = _build(exports, plugin_lib, "tracker", "fp32", out)
    cache = out / fp["session"]["timing_cache"]
    assert cache.is_file() and cache.name.startswith("timing-trt")
    (out / "fingerprint.json").unlink()                      # no cache hit: really rebuild
    fp = _build(exports, plugin_lib, "tracker", "fp32", out)
    assert {e["build"]["timing_cache"] for e in fp["networks"].values()} == {"reused"}
    cache.write_bytes(b"\0" * 64 + cache.read_bytes()[64:])  # corrupt: TensorRT must refuse it
    (out / "fingerprint.json").unlink()
    fp = _build(exports, plugin_lib, "tracker", "fp32", out)
    first = fp["networks"]["template"]["build"]["timing_cache"]
    assert first == "rejected"                               # and the build went on with an empty cache


def _one_node_convlstm(trt, plugin_lib, path: Path):
    """A ConvLSTMCell engine whose c input has its own dynamic H (TensorRT cannot know it must equal h's)."""
    import onnx
    from onnx import helper, numpy_helper

    from edge.runtime import build_trt
    n, cx, ch, k = 1, 4, 4, 3
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((4 * ch, cx + ch, k, k)) * 0.2).astype(np.float32)
    b = rng.standard_normal(4 * ch).astype(np.float32)
    vi = lambda name, shape: helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)
    node = helper.make_node("ConvLSTMCell", ["x", "h", "c", "W", "B"], ["h_next", "c_next"], domain="edge.ops")
    graph = helper.make_graph([node], "cell", [vi("x", [n, cx, "H", 6]), vi("h", [n, ch, "H", 6]),
                                               vi("c", [n, ch, "Hc", 6])],
                              [vi("h_next", [n, ch, "H", 6]), vi("c_next", [n, ch, "H", 6])],
                              initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("edge.ops", 1)],
                              ir_version=10)
    net = {"inputs": [{"name": nm, "shape": [n, c, sym, 6], "example_shape": [n, c, 6, 6]}
                      for nm, c, sym in (("x", cx, "H"), ("h", ch, "H"), ("c", ch, "Hc"))],
           "profile": {nm: {"2": [4, 6, 8]} for nm in ("x", "h", "c")}}
    from edge.targets import get_target
    p = build_trt.plan(trt.__version__, get_target(TARGET), "fp32", use_dla=False)
    engine, _ = build_trt.build_engine(trt, model.SerializeToString(), net, p, path.parent / "t.cache")
    path.write_bytes(engine)
    return w, b


def test_failing_enqueue_and_bad_shapes_are_one_error(trt, plugin_lib, tmp_path):
    from edge.runtime.base import TensorSpec
    from edge.runtime.trt_backend import TensorRTError, TrtEngine
    path = tmp_path / "cell.engine"
    _one_node_convlstm(trt, plugin_lib, path)
    specs = [TensorSpec(nm, (1, 4, "H", 6)) for nm in ("x", "h", "c")]
    rng = np.random.default_rng(1)
    feed = lambda hh, hc: {"x": rng.standard_normal((1, 4, hh, 6)).astype(np.float32),
                           "h": rng.standard_normal((1, 4, hh, 6)).astype(np.float32),
                           "c": rng.standard_normal((1, 4, hc, 6)).astype(np.float32)}
    with TrtEngine("cell", path, specs, [], str(plugin_lib)) as eng:
        first = eng.run(feed(6, 6))
        assert first["h_next"].shape == (1, 4, 6, 6) and np.isfinite(first["c_next"]).all()
        assert eng.run(feed(6, 6))["h_next"].shape == (1, 4, 6, 6)       # same shapes: no set_input_shape
        assert eng.run(feed(4, 4))["h_next"].shape == (1, 4, 4, 6)       # a new shape inside the profile
        with pytest.raises(TensorRTError, match="profile min"):
            eng.run(feed(9, 9))                                            # outside the profile [4, 8]
        with pytest.raises(TensorRTError) as e:
            eng.run(feed(6, 5))                      # the plugin rejects c != h: its enqueue/shape check fails
        assert "\n" not in str(e.value) and "cell" in str(e.value)
        assert eng.run(feed(6, 6))["h_next"].shape == (1, 4, 6, 6)       # and the engine still works after
    with pytest.raises(TensorRTError, match="closed"):
        eng.run(feed(6, 6))
    eng.close()                                                            # idempotent


def test_plugin_errors_reach_tensorrts_logger(trt, plugin_lib):
    class Collect(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages = []

        def log(self, severity, msg):
            self.messages.append(msg)

    collect = Collect()
    builder = trt.Builder(collect)        # noqa: F841  (the application's logger, as edge build creates it)
    creator = trt.get_plugin_registry().get_creator("RoiPool", "1", "")
    fc = trt.PluginFieldCollection([trt.PluginField("spatial_scale", np.array([0.25], np.float32),
                                                    trt.PluginFieldType.FLOAT32)])
    assert creator.create_plugin("bad_roi", fc, trt.TensorRTPhase.BUILD) is None
    assert any("[edge plugins] RoiPool (node 'bad_roi'): missing required field 'pooled_shape'" in m
               for m in collect.messages), collect.messages


def test_engines_left_open_at_exit_tear_down_cleanly(exports, plugin_lib, tmp_path):
    """An engine never closed by the program is closed at interpreter exit with its context current (the
    pycuda.autoinit + TensorRT 'invalid context' crash at shutdown)."""
    out = tmp_path / "exit"
    _build(exports, plugin_lib, "classifier", "fp32", out)
    code = ("from edge.runtime import load_engines\n"
            f"e = load_engines({str(out)!r})\n"
            "import numpy as np\n"
            "print(sorted(e.networks))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "invalid" not in proc.stderr.lower() and "error" not in proc.stderr.lower(), proc.stderr
