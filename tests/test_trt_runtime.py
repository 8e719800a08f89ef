"""The TensorRT runtime's contract where no GPU and no full TensorRT exist (this machine): it never falls back
to tensorrt_lean (which cannot run these engines), says so in one line, reads the TensorRT version from the
imported module (as ``edge build`` records it), and the install extras keep pip's TensorRT off a Jetson.
The runtime itself on a GPU: tests/test_trt_gpu.py."""
from __future__ import annotations

import importlib.metadata as md
import inspect

import pytest
from packaging.requirements import Requirement

from edge.errors import UserError
from edge.runtime import trt_backend


def test_no_tensorrt_lean_fallback_and_one_line_error(tmp_path):
    pytest.importorskip("tensorrt_lean")         # installed here, yet never used to run engines
    assert trt_backend.tensorrt_version() is None
    with pytest.raises(UserError) as e:
        trt_backend.import_tensorrt()
    assert "full `tensorrt` Python package" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="full `tensorrt`"):
        trt_backend.TrtEngine("net", tmp_path / "x.engine", [], [])


def test_plugin_library_is_loaded_only_after_tensorrt(tmp_path):
    """``load_plugin_library`` imports TensorRT first (so the library's libnvinfer is TensorRT's own copy):
    without TensorRT it refuses before dlopen; a missing file is a FileNotFoundError."""
    lib = tmp_path / "libedge_plugins.so"
    with pytest.raises(FileNotFoundError, match="plugin library not found"):
        trt_backend.load_plugin_library(lib)
    lib.write_bytes(b"not an ELF file")          # would fail to dlopen with OSError if it got that far
    with pytest.raises(UserError, match="full `tensorrt`"):
        trt_backend.load_plugin_library(lib)


def test_cuda_graph_option_is_gone():
    """The CUDA-graph path called pycuda capture APIs no release has (it warned and ran twice): removed."""
    from edge import runtime
    from edge.runtime import load
    for fn in (runtime.load_engines, load.load_engines, trt_backend.TrtEngine.__init__):
        assert "cuda_graph" not in inspect.signature(fn).parameters
    assert "capture" not in inspect.getsource(trt_backend)


def _extra(name: str) -> list[Requirement]:
    reqs = [Requirement(r) for r in md.requires("edge") or []]
    return [r for r in reqs if r.marker is not None and r.marker.evaluate({"extra": name})
            and not r.marker.evaluate({"extra": "__none__"})]


@pytest.mark.parametrize("extra,package", [("tensorrt", "tensorrt"), ("dev", "tensorrt-lean")])
def test_no_pip_tensorrt_on_a_jetson(extra, package):
    """On a Jetson (aarch64) TensorRT is JetPack's (apt): neither `.[tensorrt]` nor `.[dev]` pulls a TensorRT
    wheel there (it would shadow JetPack's with another version); on x86 they do."""
    reqs = {r.name.lower().replace("_", "-"): r for r in _extra(extra)}
    assert package in reqs, f"{package} missing from .[{extra}] (reinstall the package: make venv)"
    marker = reqs[package].marker
    assert marker.evaluate({"extra": extra, "platform_machine": "x86_64"})
    assert not marker.evaluate({"extra": extra, "platform_machine": "aarch64"})
    assert "pycuda" in {r.name for r in _extra("tensorrt")}
