"""The TensorRT plugin sources compile against every TensorRT header set in TENSORRT_INCLUDE_DIR.

Set ``TENSORRT_INCLUDE_DIR`` to one or more include folders (os.pathsep-separated), e.g. headers extracted
from NVIDIA/TensorRT ``release/10.3`` (JetPack 6.2) and ``main`` (11.x); skipped when unset. The .cpp files
are compiled with the host compiler (all warnings as errors, TensorRT/CUDA headers as system headers),
which is how CMake builds them on the device; the .cu kernels are covered by tests/test_cuda_nvcc.py.
"""
from __future__ import annotations

import pytest

from edge.kernels import build_tools

PLUGIN_SOURCES = ["roi_pool/plugin/roi_pool_plugin.cpp", "convlstm/plugin/convlstm_plugin.cpp"]


@pytest.fixture(scope="session")
def cuda_include():
    inc = build_tools.cuda_include_dir()
    if inc is None:
        pytest.skip("CUDA headers (cuda_runtime_api.h) not found")
    return inc


@pytest.mark.parametrize("source", PLUGIN_SOURCES)
def test_plugin_compiles_against_each_tensorrt_header_set(tensorrt_include_dirs, cuda_include, tmp_path_factory,
                                                          source):
    out_dir = tmp_path_factory.mktemp("plugin_objs")
    for inc in tensorrt_include_dirs:
        major, minor = build_tools.tensorrt_header_version(inc)
        assert major >= 10, f"{inc}: TensorRT {major}.{minor} has no IPluginV3"
        obj = build_tools.cxx_compile(build_tools.KERNELS_DIR / source, out_dir, include_dirs=[inc, cuda_include])
        assert obj.stat().st_size > 0, f"TensorRT {major}.{minor}: empty object"
