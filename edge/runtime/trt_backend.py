"""TensorRT engines at run time (torch-free): pycuda on the device's primary CUDA context, pinned host +
device buffers, one stream per engine, ``set_input_shape`` (only when a shape changes) /
``set_tensor_address`` / ``execute_async_v3``, every TensorRT result checked.

Needs the full ``tensorrt`` package (JetPack: ``python3-libnvinfer``): ``tensorrt_lean`` runs only
version-compatible engines and the plugin library links ``libnvinfer``, so it is no fallback. Every TensorRT
name used here is listed in ``RUNTIME_API`` (a test checks them against ``tensorrt_lean``, whose runtime API
is the same). The plugin library is loaded after ``import tensorrt`` and before an engine is deserialized.
Only called after the ``fingerprint`` checks passed.

CUDA context: the device's *primary* context, which the CUDA runtime (hence TensorRT) uses too, retained per
engine and pushed around every call (``edge run`` calls from worker threads). ``close()`` frees the buffers
and TensorRT objects with that context current; engines still open at interpreter exit are closed first
(``atexit``), so nothing is freed after the context is gone.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import threading
import weakref
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edge.errors import UserError
from edge.runtime.base import TensorSpec

#: TensorRT names this module uses (module attributes and class members)
RUNTIME_API = (
    "Logger", "Logger.WARNING", "Runtime", "Runtime.deserialize_cuda_engine", "Runtime.DLA_core",
    "ICudaEngine.num_io_tensors",
    "ICudaEngine.get_tensor_name", "ICudaEngine.get_tensor_mode", "ICudaEngine.get_tensor_dtype",
    "ICudaEngine.get_tensor_profile_shape", "ICudaEngine.create_execution_context", "TensorIOMode.INPUT",
    "IExecutionContext.set_input_shape", "IExecutionContext.get_tensor_shape",
    "IExecutionContext.set_tensor_address", "IExecutionContext.execute_async_v3", "nptype", "__version__",
)


class TensorRTError(UserError):
    """TensorRT refused a call at run time (shape outside the profile, failing plugin enqueue, CUDA error):
    one line naming the network; no result is returned."""


def import_tensorrt():
    """The full ``tensorrt`` module; a one-line ``UserError`` when it is not installed."""
    try:
        import tensorrt
    except ImportError:
        raise UserError("TensorRT engines need the full `tensorrt` Python package (JetPack: `sudo apt install "
                        "python3-libnvinfer`; desktop: `pip install '.[tensorrt]'`); tensorrt_lean cannot run "
                        "them") from None
    return tensorrt


def tensorrt_version() -> str | None:
    """``tensorrt.__version__`` of the module this runtime would import (what ``edge build`` records), or None."""
    try:
        import tensorrt
    except ImportError:
        return None
    return getattr(tensorrt, "__version__", None)


def load_plugin_library(path: str | os.PathLike) -> ctypes.CDLL:
    """dlopen the plugin library globally, after ``import tensorrt``: the library links libnvinfer, and with
    TensorRT's own copy already loaded the loader reuses it, so the creators register in the registry the
    Python bindings use (not in a second libnvinfer)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"plugin library not found: {path} (build it from kernels/CMakeLists.txt)")
    import_tensorrt()
    try:
        return ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        raise UserError(f"cannot load the plugin library {path}: {e}") from None


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


_OPEN: "weakref.WeakSet[TrtEngine]" = weakref.WeakSet()
_OPEN_LOCK = threading.Lock()


@atexit.register
def _close_open_engines() -> None:
    with _OPEN_LOCK:
        engines = list(_OPEN)
    for e in engines:
        e.close()


class TrtEngine:
    """One network = one TensorRT engine + execution context on one CUDA stream."""

    backend = "tensorrt"

    def __init__(self, name: str, engine_path: Path, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 plugin_library: str | None = None, dla_core: int | None = None):
        trt = import_tensorrt()
        try:
            import pycuda.driver as cuda
        except ImportError as e:
            raise UserError(f"TensorRT engines need pycuda with a CUDA driver (`pip install pycuda`): {e}") from None
        self._trt, self._cuda = trt, cuda
        self.name, self.inputs, self.outputs = name, list(inputs), list(outputs)
        self._closed = False
        self._dev: dict[str, object] = {}
        self._pinned: dict[str, np.ndarray] = {}
        self._host: dict[str, np.ndarray] = {}
        self._shapes: dict[str, tuple] = {}          # buffer shapes
        self._input_shapes: dict[str, tuple] = {}    # shapes the context was last given
        self.engine = self.context = self.stream = self._runtime = None
        cuda.init()
        self._ctx = cuda.Device(0).retain_primary_context()
        self._ctx.push()
        try:
            if plugin_library:
                load_plugin_library(plugin_library)
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            if dla_core is not None:            # the core the engine was built for (the runtime's default is -1)
                self._runtime.DLA_core = int(dla_core)
            self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
            if self.engine is None:
                raise TensorRTError(f"TensorRT could not deserialize {engine_path} (see its log above)")
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise TensorRTError(f"{name}: TensorRT could not create an execution context (out of GPU memory?)")
            self.stream = cuda.Stream()
        except BaseException:
            self._free()
            cuda.Context.pop()
            self._ctx.detach()
            raise
        cuda.Context.pop()
        self._io = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in self._io}
        self._dtype = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in self._io}
        with _OPEN_LOCK:
            _OPEN.add(self)

    def __enter__(self) -> "TrtEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Free the device/pinned buffers and the TensorRT objects with the CUDA context current, then release
        the context. Idempotent; the engine cannot run afterwards."""
        if self._closed:
            return
        self._closed = True
        with _OPEN_LOCK:
            _OPEN.discard(self)
        try:
            self._ctx.push()
        except Exception:       # noqa: BLE001  (driver already shut down: nothing left to free)
            return
        try:
            self._free()
        finally:
            self._cuda.Context.pop()
            self._ctx.detach()

    def _free(self) -> None:
        """Drop everything that lives in the context (which must be current)."""
        try:
            if self.stream is not None:
                self.stream.synchronize()
            for d in self._dev.values():
                d.free()
            for p in self._pinned.values():
                p.base.free()
        finally:
            self._dev.clear(), self._pinned.clear(), self._host.clear()
            self.context = self.engine = self._runtime = self.stream = None   # TensorRT frees them here

    def _buffers(self, name: str, shape: tuple) -> None:
        if self._shapes.get(name) == shape:
            return
        cuda = self._cuda
        size = int(np.prod(shape)) if shape else 1
        if name in self._dev:
            self._dev.pop(name).free()
            self._pinned.pop(name).base.free()
        self._pinned[name] = cuda.pagelocked_empty(max(size, 1), self._dtype[name])
        self._host[name] = self._pinned[name][:size].reshape(shape)
        self._dev[name] = cuda.mem_alloc(max(self._host[name].nbytes, 1))
        self._shapes[name] = shape
        self.context.set_tensor_address(name, int(self._dev[name]))

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._closed:
            raise TensorRTError(f"{self.name}: the engine was closed")
        self._ctx.push()
        try:
            return self._run(feeds)
        finally:
            self._cuda.Context.pop()

    def _set_shape(self, name: str, shape: tuple) -> None:
        """``set_input_shape`` only when the shape changed (each call makes plugins re-run ``onShapeChange``)."""
        if self._input_shapes.get(name) == shape:
            return
        self._input_shapes.pop(name, None)     # unknown until TensorRT accepts the new one
        if not self.context.set_input_shape(name, shape):
            lo, _, hi = (tuple(d) for d in self.engine.get_tensor_profile_shape(name, 0))
            raise TensorRTError(f"{self.name}: TensorRT rejected input {name!r} of shape {shape} (profile min {lo}, "
                                f"max {hi}): feed a shape inside the profile or rebuild the engine for it")
        self._input_shapes[name] = shape

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda = self._cuda
        inputs = [n for n in self._io if self._is_input[n]]
        outs = [n for n in self._io if not self._is_input[n]]
        arrays = {}
        for n in inputs:
            if n not in feeds:
                raise ValueError(f"{self.name}: missing input {n!r}")
            arrays[n] = np.ascontiguousarray(feeds[n], dtype=self._dtype[n])
            self._set_shape(n, arrays[n].shape)
        for n in inputs:
            self._buffers(n, arrays[n].shape)
            self._host[n][...] = arrays[n]
        for n in outs:
            shape = tuple(self.context.get_tensor_shape(n))
            if any(d < 0 for d in shape):
                raise TensorRTError(f"{self.name}: output {n!r} has no shape for these inputs ({shape})")
            self._buffers(n, shape)
        try:
            for n in inputs:
                cuda.memcpy_htod_async(self._dev[n], self._host[n], self.stream)
            ok = self.context.execute_async_v3(self.stream.handle)
            if ok:
                for n in outs:
                    cuda.memcpy_dtoh_async(self._host[n], self._dev[n], self.stream)
            self.stream.synchronize()
        except cuda.Error as e:
            raise TensorRTError(f"{self.name}: CUDA error while running the engine: {e}") from None
        if not ok:
            raise TensorRTError(f"{self.name}: TensorRT could not enqueue the engine (a plugin or kernel failed; "
                                f"see TensorRT's log above); no result")
        return {n: self._host[n].copy() for n in outs}
