"""TensorRT engines at run time (torch-free): pycuda pinned host + device buffers, one stream,
``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``, optional CUDA graph capture.

Works with the full ``tensorrt`` package or ``tensorrt_lean``; every TensorRT name used here is listed in
``RUNTIME_API`` (a test checks them against ``tensorrt_lean``). The plugin library is loaded before the
engine is deserialized. Only called after ``fingerprint`` checks passed.
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edge.runtime.base import TensorSpec

#: TensorRT names this module uses (module attributes and class members)
RUNTIME_API = (
    "Logger", "Logger.WARNING", "Runtime", "Runtime.deserialize_cuda_engine", "ICudaEngine.num_io_tensors",
    "ICudaEngine.get_tensor_name", "ICudaEngine.get_tensor_mode", "ICudaEngine.get_tensor_dtype",
    "ICudaEngine.create_execution_context", "TensorIOMode.INPUT", "IExecutionContext.set_input_shape",
    "IExecutionContext.get_tensor_shape", "IExecutionContext.set_tensor_address",
    "IExecutionContext.execute_async_v3", "nptype", "__version__",
)


def import_tensorrt():
    """``tensorrt`` if installed, else ``tensorrt_lean``, else None."""
    for name in ("tensorrt", "tensorrt_lean"):
        try:
            return __import__(name)
        except ImportError:
            continue
    return None


def tensorrt_version() -> str | None:
    """Installed TensorRT version from package metadata (does not load TensorRT)."""
    from importlib import metadata
    for dist in ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_lean", "tensorrt-lean"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    trt = import_tensorrt()
    return getattr(trt, "__version__", None) if trt else None


def gpu_device() -> dict | None:
    """Name + compute capability of CUDA device 0 via pycuda, or None when no GPU/driver is usable."""
    try:
        import pycuda.driver as cuda
        cuda.init()
        if cuda.Device.count() == 0:
            return None
        dev = cuda.Device(0)
        major, minor = dev.compute_capability()
        return {"kind": "gpu", "name": dev.name(), "compute_capability": f"{major}.{minor}"}
    except Exception:
        return None


class TrtEngine:
    """One network = one TensorRT engine + execution context on one CUDA stream."""

    backend = "tensorrt"

    def __init__(self, name: str, engine_path: Path, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 plugin_library: str | None = None, cuda_graph: bool = False):
        import pycuda.autoinit  # creates the context (current in this thread only)
        import pycuda.driver as cuda
        self._cuda = cuda
        self._ctx = pycuda.autoinit.context   # pushed around every run: edge run calls from worker threads
        if plugin_library:
            ctypes.CDLL(str(plugin_library), mode=ctypes.RTLD_GLOBAL)
        trt = import_tensorrt()
        self._trt = trt
        self.name, self.inputs, self.outputs = name, list(inputs), list(outputs)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {engine_path}")
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        self._io = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in self._io}
        self._dtype = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in self._io}
        self._host: dict[str, np.ndarray] = {}
        self._dev: dict[str, object] = {}
        self._shapes: dict[str, tuple] = {}
        self._graph = None
        self._use_graph = cuda_graph

    def _buffers(self, name: str, shape: tuple) -> None:
        if self._shapes.get(name) == shape:
            return
        size = int(np.prod(shape)) if shape else 1
        self._host[name] = self._cuda.pagelocked_empty(max(size, 1), self._dtype[name])[:size].reshape(shape)
        self._dev[name] = self._cuda.mem_alloc(max(self._host[name].nbytes, 1))
        self._shapes[name] = shape
        self.context.set_tensor_address(name, int(self._dev[name]))
        self._graph = None

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._ctx.push()
        try:
            return self._run(feeds)
        finally:
            self._ctx.pop()

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda = self._cuda
        for n in (n for n in self._io if self._is_input[n]):
            if n not in feeds:
                raise ValueError(f"{self.name}: missing input {n!r}")
            x = np.ascontiguousarray(feeds[n], dtype=self._dtype[n])
            self.context.set_input_shape(n, x.shape)
            self._buffers(n, x.shape)
            self._host[n][...] = x
        for n in (n for n in self._io if not self._is_input[n]):
            self._buffers(n, tuple(self.context.get_tensor_shape(n)))
        for n in (n for n in self._io if self._is_input[n]):
            cuda.memcpy_htod_async(self._dev[n], self._host[n], self.stream)
        self._execute()
        outs = [n for n in self._io if not self._is_input[n]]
        for n in outs:
            cuda.memcpy_dtoh_async(self._host[n], self._dev[n], self.stream)
        self.stream.synchronize()
        return {n: self._host[n].copy() for n in outs}

    def _execute(self) -> None:
        """Enqueue the engine; with ``cuda_graph`` the enqueue is captured once per shape set and replayed
        (pycuda stream capture; any failure turns graphs off and runs plainly)."""
        if self._use_graph:
            try:
                if self._graph is None:
                    self.context.execute_async_v3(self.stream.handle)   # warm-up outside capture
                    self.stream.begin_capture()
                    self.context.execute_async_v3(self.stream.handle)
                    graph = self.stream.end_capture()
                    make = getattr(graph, "instantiate", None) or getattr(graph, "instance")
                    self._graph = make()
                self._graph.launch(self.stream)
                return
            except Exception as e:  # noqa: BLE001  (optional optimisation)
                import warnings
                warnings.warn(f"{self.name}: CUDA graph capture unavailable ({type(e).__name__}: {e}); "
                              f"running without it")
                self._use_graph, self._graph = False, None
        self.context.execute_async_v3(self.stream.handle)
