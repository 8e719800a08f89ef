"""kernels/CMakeLists.txt, as the device builds libedge_plugins.so: a missing libnvinfer is a configure error
(a library without it cannot resolve getPluginRegistry when Python's tensorrt has loaded its own libnvinfer
privately), and with a TensorRT library present the library builds with no undefined symbol, loads with
RTLD_NOW and registers both creators. Here the only TensorRT library is tensorrt_lean's, so the build links
it under the name libnvinfer (same exported plugin API; the device links the real libnvinfer)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from edge.kernels import build_tools

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None or build_tools.find_nvcc() is None,
                                reason="needs cmake and nvcc")


def _configure(build_dir, *defs):
    cmd = ["cmake", "-S", str(build_tools.KERNELS_DIR), "-B", str(build_dir), "-DCMAKE_CUDA_ARCHITECTURES=87",
           f"-DCMAKE_CUDA_COMPILER={build_tools.find_nvcc()}", *defs]
    return subprocess.run(cmd, capture_output=True, text=True)


def _headers(tensorrt_include_dirs, major: int) -> str:
    for inc in tensorrt_include_dirs:
        if build_tools.tensorrt_header_version(inc)[0] == major:
            return inc
    pytest.skip(f"no TENSORRT_INCLUDE_DIR entry for TensorRT {major}")


@pytest.mark.slow
def test_plugin_library_needs_libnvinfer_then_builds_links_and_registers(tensorrt_include_dirs, tmp_path):
    trt = pytest.importorskip("tensorrt_lean")
    major = int(trt.__version__.split(".")[0])
    headers = f"-DTENSORRT_INCLUDE_DIR={_headers(tensorrt_include_dirs, major)}"
    build, empty, fake = tmp_path / "b", tmp_path / "no_trt_libs", tmp_path / "trt_lib"
    empty.mkdir()
    proc = _configure(build, headers, f"-DTENSORRT_LIB_DIR={empty}")
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0 and "libnvinfer not found: pass -DTENSORRT_LIB_DIR" in out
    # the same build folder with a TensorRT library: configures, builds, links it
    libs = os.path.dirname(__import__("tensorrt_lean_libs").__file__)
    fake.mkdir()
    (fake / "libnvinfer.so").symlink_to(os.path.join(libs, f"libnvinfer_lean.so.{major}"))
    proc = _configure(build, headers, f"-DTENSORRT_LIB_DIR={fake}", "-DCMAKE_BUILD_TYPE=Release")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(["cmake", "--build", str(build), "-j", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr            # -Wl,--no-undefined: all symbols found
    lib = build / "libedge_plugins.so"
    needed = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True).stdout
    assert f"libnvinfer_lean.so.{major}" in needed                    # linked, not left to the process
    # a fresh process, as the runtime does it: import TensorRT, then dlopen the library (RTLD_NOW: every
    # symbol resolved now, from the linked library)
    code = ("import ctypes, os, tensorrt_lean as trt\n"
            f"ctypes.CDLL({str(lib)!r}, mode=os.RTLD_NOW | os.RTLD_GLOBAL)\n"
            "print(sorted((c.name, c.plugin_version) for c in trt.get_plugin_registry().all_creators))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "('ConvLSTMCell', '1')" in proc.stdout and "('RoiPool', '1')" in proc.stdout
