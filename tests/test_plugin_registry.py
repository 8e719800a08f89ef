"""The plugins register with the real TensorRT plugin registry and validate their fields (no GPU needed).

The plugin sources + kernels are linked into a test library (built against the TENSORRT_INCLUDE_DIR header
set matching the installed ``tensorrt_lean`` major version) and loaded the way the runtime loads
libedge_plugins.so. Creation goes through TensorRT's own registry and creator objects (Python bindings);
the serialisation round trip, format combinations and shape checks call the plugin from a tiny C++ harness
(format combinations and output types on the plugin that TensorRT's registry creates), since the Python
bindings of IPluginV3 methods only target Python-implemented plugins.
"""
from __future__ import annotations

import ctypes
import os

import numpy as np
import pytest

from edge.kernels import build_tools

trt = pytest.importorskip("tensorrt_lean", reason="tensorrt_lean not installed")

HARNESS = r"""
#include "roi_pool/plugin/roi_pool_plugin.h"
#include "convlstm/plugin/convlstm_plugin.h"
using namespace nvinfer1;
using namespace edge::plugin;

static float field_float(PluginFieldCollection const* fc, char const* name) {
    PluginField const* f = find_field(fc, name);
    return f ? read_float(*f) : -1.0f;
}

extern "C" {
// create -> serialise -> create again in the runtime phase -> serialise: the fields survive unchanged
int roi_roundtrip(int ph, int pw, float scale, int* out) {
    RoiPoolCreator creator;
    int32_t pooled[2] = {ph, pw};
    PluginField fields[2] = {PluginField("pooled_shape", pooled, PluginFieldType::kINT32, 2),
                             PluginField("spatial_scale", &scale, PluginFieldType::kFLOAT32, 1)};
    PluginFieldCollection fc{2, fields};
    IPluginV3* a = creator.createPlugin("a", &fc, TensorRTPhase::kBUILD);
    if (!a) return -1;
    auto* rt = static_cast<IPluginV3OneRuntime*>(a->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    IPluginV3* b = creator.createPlugin("b", rt->getFieldsToSerialize(), TensorRTPhase::kRUNTIME);
    IPluginV3* c = b ? b->clone() : nullptr;
    if (!c) return -2;
    auto* rc = static_cast<IPluginV3OneRuntime*>(c->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    PluginFieldCollection const* s = rc->getFieldsToSerialize();
    std::vector<int64_t> p = read_ints(*find_field(s, "pooled_shape"));
    out[0] = static_cast<int>(p.at(0));
    out[1] = static_cast<int>(p.at(1));
    std::memcpy(out + 2, &scale, sizeof(float));
    float got = field_float(s, "spatial_scale");
    std::memcpy(out + 3, &got, sizeof(float));
    delete a; delete b; delete c;
    return 0;
}

static DynamicPluginTensorDesc desc(int type, int linear, std::vector<int64_t> const& dims) {
    DynamicPluginTensorDesc d{};
    d.desc.type = static_cast<DataType>(type);
    d.desc.format = linear ? TensorFormat::kLINEAR : TensorFormat::kCHW32;
    d.desc.dims.nbDims = static_cast<int32_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) d.desc.dims.d[i] = dims[i];
    return d;
}

// The plugin as TensorRT gets it: creator looked up in TensorRT's global registry, plugin created in the build
// phase, its build capability asked (the caller deletes the returned plugin).
static IPluginV3* from_registry(char const* name, PluginFieldCollection const* fc) {
    IPluginCreatorInterface* iface = getPluginRegistry()->getCreator(name, "1", "");
    if (iface == nullptr || std::strcmp(iface->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") != 0) return nullptr;
    return static_cast<IPluginCreatorV3One*>(iface)->createPlugin("fmt", fc, TensorRTPhase::kBUILD);
}

static IPluginV3OneBuild* build_capability(IPluginV3* p) {
    return static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
}

// supportsFormatCombination for position pos, all tensors given as (type, linear) pairs
int roi_supports(int pos, const int* types, int linear) {
    int32_t pooled[2] = {2, 2};
    PluginField f("pooled_shape", pooled, PluginFieldType::kINT32, 2);
    PluginFieldCollection fc{1, &f};
    IPluginV3* p = from_registry("RoiPool", &fc);
    if (!p) return -1;
    DynamicPluginTensorDesc io[3] = {desc(types[0], linear, {1, 1, 4, 4}), desc(types[1], linear, {3, 5}),
                                     desc(types[2], linear, {3, 1, 2, 2})};
    int ok = build_capability(p)->supportsFormatCombination(pos, io, 2, 1) ? 1 : 0;
    delete p;
    return ok;
}

int lstm_supports(int pos, const int* types, int linear) {
    PluginFieldCollection fc{0, nullptr};
    IPluginV3* p = from_registry("ConvLSTMCell", &fc);
    if (!p) return -1;
    DynamicPluginTensorDesc io[7];
    for (int i = 0; i < 7; ++i) io[i] = desc(types[i], linear, {1, 1, 1, 1});
    int ok = build_capability(p)->supportsFormatCombination(pos, io, 5, 2) ? 1 : 0;
    delete p;
    return ok;
}

int lstm_output_types(int x_type, int* out) {
    PluginFieldCollection fc{0, nullptr};
    IPluginV3* p = from_registry("ConvLSTMCell", &fc);
    if (!p) return -2;
    DataType in[5];
    for (int i = 0; i < 5; ++i) in[i] = static_cast<DataType>(x_type);
    DataType o[2] = {DataType::kINT32, DataType::kINT32};
    int rc = build_capability(p)->getOutputDataTypes(o, 2, in, 5);
    out[0] = static_cast<int>(o[0]);
    out[1] = static_cast<int>(o[1]);
    delete p;
    return rc;
}

// configurePlugin with the given dims (ranks[i] entries of dims per input, -1 = unknown)
int lstm_configure(const int* ranks, const long long* dims) {
    ConvLstmPlugin p;
    DynamicPluginTensorDesc in[5];
    DynamicPluginTensorDesc out[2];
    for (int i = 0, k = 0; i < 5; ++i) {
        std::vector<int64_t> d(dims + k, dims + k + ranks[i]);
        k += ranks[i];
        in[i] = desc(0, 1, d);
    }
    out[0] = desc(0, 1, {1, 1, 1, 1});
    out[1] = out[0];
    return p.configurePlugin(in, 5, out, 2);
}

int roi_configure(int x_rank, int rois_rank, long long rois_cols) {
    RoiPoolPlugin p(2, 2, 1.0f);
    std::vector<int64_t> xd(static_cast<size_t>(x_rank), 4);
    std::vector<int64_t> rd(static_cast<size_t>(rois_rank), 3);
    if (rois_rank >= 2) rd[1] = rois_cols;
    DynamicPluginTensorDesc in[2] = {desc(0, 1, xd), desc(0, 1, rd)};
    DynamicPluginTensorDesc out[1] = {desc(0, 1, {3, 4, 2, 2})};
    return p.configurePlugin(in, 2, out, 1);
}
}
"""


def _matching_headers(dirs: list[str]) -> str:
    major = int(trt.__version__.split(".")[0])
    for inc in dirs:
        if build_tools.tensorrt_header_version(inc)[0] == major:
            return inc
    pytest.skip(f"no TENSORRT_INCLUDE_DIR entry matches the installed tensorrt_lean {trt.__version__}")


@pytest.fixture(scope="module")
def harness(tensorrt_include_dirs, nvcc, tmp_path_factory):
    cuda_inc = build_tools.cuda_include_dir()
    if cuda_inc is None:
        pytest.skip("CUDA headers not found")
    cudart = os.path.join(os.path.dirname(cuda_inc), "lib")
    cudart = next((d for d in (cudart, cudart + "64") if os.path.isdir(d)), None)
    if cudart is None:
        pytest.skip("libcudart not found next to the CUDA headers")
    inc = _matching_headers(tensorrt_include_dirs)
    out = tmp_path_factory.mktemp("plugin_registry")
    shared = tmp_path_factory.getbasetemp() / "edge_build"      # same objects as tests/test_cuda_nvcc.py
    objs = [build_tools.nvcc_compile(build_tools.KERNELS_DIR / op / f"{op}.cu", shared, archs=("87", "75"))
            for op in ("roi_pool", "convlstm")]
    src = out / "harness.cpp"
    src.write_text(HARNESS)
    sources = [src, build_tools.KERNELS_DIR / "roi_pool/plugin/roi_pool_plugin.cpp",
               build_tools.KERNELS_DIR / "convlstm/plugin/convlstm_plugin.cpp"]
    lib_path = build_tools.build_host_library(
        sources, out, "edge_plugins_harness", extra_flags=["-isystem", inc, "-isystem", cuda_inc],
        objects=objs, link_flags=[f"-L{cudart}", "-lcudart", f"-Wl,-rpath,{cudart}"])
    # The plugin library calls getPluginRegistry(): make the runtime's copy globally visible first.
    libs = os.path.dirname(__import__("tensorrt_lean_libs").__file__)
    ctypes.CDLL(os.path.join(libs, f"libnvinfer_lean.so.{trt.__version__.split('.')[0]}"), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(lib_path), mode=ctypes.RTLD_GLOBAL)
    lib.roi_roundtrip.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_float, ctypes.c_void_p]
    for fn in (lib.roi_supports, lib.lstm_supports):
        fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    lib.lstm_configure.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.lstm_output_types.argtypes = [ctypes.c_int, ctypes.c_void_p]
    lib.roi_configure.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong]
    return lib


@pytest.fixture
def registry(harness):
    return trt.get_plugin_registry()


def _fc(**fields):
    kinds = {np.int32: trt.PluginFieldType.INT32, np.int64: trt.PluginFieldType.INT64,
             np.float32: trt.PluginFieldType.FLOAT32, np.float64: trt.PluginFieldType.FLOAT64}
    return trt.PluginFieldCollection([trt.PluginField(k, np.asarray(v), kinds[np.asarray(v).dtype.type])
                                      for k, v in fields.items()])


def test_both_creators_registered(registry):
    found = {(c.name, c.plugin_version, c.plugin_namespace) for c in registry.all_creators}
    assert {("RoiPool", "1", ""), ("ConvLSTMCell", "1", "")} <= found
    fields = {(f.name, f.type, f.size) for f in registry.get_creator("RoiPool", "1", "").field_names}
    assert fields == {("pooled_shape", trt.PluginFieldType.INT32, 2),
                      ("spatial_scale", trt.PluginFieldType.FLOAT32, 1)}
    assert len(registry.get_creator("ConvLSTMCell", "1", "").field_names) == 0


@pytest.mark.parametrize("fields", [
    dict(pooled_shape=np.array([7, 7], np.int32), spatial_scale=np.array([0.25], np.float32)),
    dict(pooled_shape=np.array([3, 5], np.int64), spatial_scale=np.array([1.0], np.float64)),
    dict(pooled_shape=np.array([1, 1], np.int32)),                  # spatial_scale defaults to 1.0 (ONNX)
])
def test_roi_pool_created_from_valid_fields(registry, fields):
    plugin = registry.get_creator("RoiPool", "1", "").create_plugin("roi", _fc(**fields), trt.TensorRTPhase.BUILD)
    assert plugin is not None
    core = plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
    assert (core.plugin_name, core.plugin_version, core.plugin_namespace) == ("RoiPool", "1", "")
    assert plugin.get_capability_interface(trt.PluginCapabilityType.BUILD).num_outputs == 1


@pytest.mark.parametrize("fields,message", [
    (dict(spatial_scale=np.array([0.25], np.float32)), "missing required field 'pooled_shape'"),
    (dict(pooled_shape=np.array([0, 7], np.int32)), "pooled_shape values must be in [1, 65535]"),
    (dict(pooled_shape=np.array([7, -2], np.int32)), "pooled_shape values must be in [1, 65535]"),
    (dict(pooled_shape=np.array([7, 7, 7], np.int32)), "pooled_shape must have 2 values"),
    (dict(pooled_shape=np.array([7, 7], np.float32)), "must be integer"),
    (dict(pooled_shape=np.array([7, 7], np.int32), spatial_scale=np.array([0.0], np.float32)),
     "spatial_scale must be a finite float > 0"),
    (dict(pooled_shape=np.array([7, 7], np.int32), spatial_scale=np.array([np.nan], np.float32)),
     "spatial_scale must be a finite float > 0"),
    (dict(pooled_shape=np.array([7, 7], np.int32), spatial_scal=np.array([0.5], np.float32)),
     "unknown field 'spatial_scal'"),
])
def test_roi_pool_rejects_bad_fields_with_a_message(registry, capfd, fields, message):
    creator = registry.get_creator("RoiPool", "1", "")
    assert creator.create_plugin("bad_roi", _fc(**fields), trt.TensorRTPhase.BUILD) is None
    err = capfd.readouterr().err   # no TensorRT logger without a CUDA device: the plugin falls back to stderr
    assert f"[edge plugins] RoiPool (node 'bad_roi'): " in err and message in err


def test_convlstm_created_and_rejects_fields(registry, capfd):
    creator = registry.get_creator("ConvLSTMCell", "1", "")
    plugin = creator.create_plugin("cell", _fc(), trt.TensorRTPhase.RUNTIME)
    assert plugin is not None
    assert plugin.get_capability_interface(trt.PluginCapabilityType.BUILD).num_outputs == 2
    assert creator.create_plugin("cell", _fc(hidden=np.array([4], np.int32)), trt.TensorRTPhase.BUILD) is None
    assert "unknown field 'hidden'" in capfd.readouterr().err


@pytest.mark.parametrize("ph,pw,scale", [(7, 7, 0.25), (1, 3, 1.0), (65535, 2, 0.0625)])
def test_roi_pool_serialisation_round_trip(harness, ph, pw, scale):
    out = np.zeros(4, np.int32)
    assert harness.roi_roundtrip(ph, pw, scale, out.ctypes.data) == 0
    assert (out[0], out[1]) == (ph, pw)
    assert out[2:].view(np.float32)[1] == np.float32(scale)


F, H, I32 = int(trt.DataType.FLOAT), int(trt.DataType.HALF), int(trt.DataType.INT32)


@pytest.mark.parametrize("types,linear,ok", [
    ((F, F, F), 1, (1, 1, 1)),
    ((H, F, H), 1, (1, 1, 1)),       # fp16 features with fp32 rois
    ((H, H, H), 1, (1, 0, 1)),       # fp16 rois rejected: a weakly typed fp16 build must keep the boxes fp32
    ((F, H, F), 1, (1, 0, 1)),
    ((H, F, F), 1, (1, 1, 0)),       # output must follow the features
    ((I32, F, I32), 1, (0, 1, 1)),
    ((F, F, F), 0, (0, 0, 0)),       # non-linear formats rejected
])
def test_roi_pool_format_combinations(harness, types, linear, ok):
    t = np.array(types, np.int32)
    assert tuple(harness.roi_supports(pos, t.ctypes.data, linear) for pos in range(3)) == ok


# positions: x, h, c, W, B | h', c'
@pytest.mark.parametrize("types,linear,ok", [
    ((F,) * 7, 1, (1,) * 7),
    ((H, H, F, H, H, H, F), 1, (1,) * 7),                  # the fp16 path: half I/O, float32 cell state
    ((H,) * 7, 1, (1, 1, 0, 1, 1, 1, 0)),                  # c and c' in half rejected
    ((F, F, H, F, F, F, H), 1, (1, 1, 0, 1, 1, 1, 0)),
    ((H, H, F, F, H, H, F), 1, (1, 1, 1, 0, 1, 1, 1)),     # weights must follow x's type
    ((H, H, F, H, H, F, F), 1, (1, 1, 1, 1, 1, 0, 1)),     # h' follows x
    ((F,) * 7, 0, (0,) * 7),
])
def test_convlstm_format_combinations(harness, types, linear, ok):
    t = np.array(types, np.int32)
    assert tuple(harness.lstm_supports(pos, t.ctypes.data, linear) for pos in range(7)) == ok


def test_convlstm_output_types_keep_the_state_float32(harness):
    out = np.zeros(2, np.int32)
    for x_type in (F, H):
        assert harness.lstm_output_types(x_type, out.ctypes.data) == 0
        assert tuple(out) == (x_type, F)
    assert harness.lstm_output_types(I32, out.ctypes.data) != 0


@pytest.mark.parametrize("dims,ok", [
    (([2, 3, 7, 9], [2, 4, 7, 9], [2, 4, 7, 9], [16, 7, 3, 3], [16]), True),
    (([-1, 3, -1, -1], [-1, 4, -1, -1], [-1, 4, -1, -1], [16, 7, 5, 5], [16]), True),   # dynamic N, H, W
    (([2, 3, 7, 9], [2, 4, 7, 9], [2, 4, 7, 9], [16, 7, 2, 2], [16]), False),          # even k
    (([2, 3, 7, 9], [2, 4, 7, 9], [2, 4, 7, 9], [12, 7, 3, 3], [16]), False),          # W rows != 4*Ch
    (([2, 3, 7, 9], [2, 4, 7, 9], [2, 4, 7, 9], [16, 6, 3, 3], [16]), False),          # W cols != Cx+Ch
    (([2, 3, 7, 9], [2, 4, 7, 9], [2, 4, 7, 9], [16, 7, 3, 3], [12]), False),          # B size
    (([2, 3, 7, 9], [2, 4, 7, 9], [2, 4, 5, 9], [16, 7, 3, 3], [16]), False),          # c != h
    (([2, 3, 7, 9], [1, 4, 7, 9], [1, 4, 7, 9], [16, 7, 3, 3], [16]), False),          # batch mismatch
    (([2, 3, 7], [2, 4, 7, 9], [2, 4, 7, 9], [16, 7, 3, 3], [16]), False),             # rank of x
])
def test_convlstm_shape_validation(harness, capfd, dims, ok):
    ranks = np.array([len(d) for d in dims], np.int32)
    flat = np.array([v for d in dims for v in d], np.int64)
    assert (harness.lstm_configure(ranks.ctypes.data, flat.ctypes.data) == 0) == ok
    assert ("[edge plugins] ConvLSTMCell: " in capfd.readouterr().err) == (not ok)


@pytest.mark.parametrize("x_rank,rois_rank,cols,ok", [(4, 2, 5, True), (4, 2, -1, True), (3, 2, 5, False),
                                                      (4, 2, 4, False), (4, 1, 5, False)])
def test_roi_pool_shape_validation(harness, x_rank, rois_rank, cols, ok):
    assert (harness.roi_configure(x_rank, rois_rank, cols) == 0) == ok
