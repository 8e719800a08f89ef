"""Every TensorRT *runtime* Python name the project uses exists in the installed ``tensorrt_lean``.

The list below is the contract for the engine runtime (edge/runtime): deserialize an engine, enumerate its
I/O tensors, bind device buffers and run asynchronously, with the plugin library loaded first. It is
checked by introspection (module attributes, class attributes), not by running anything: there is no GPU
here. The builder side (Builder, OnnxParser, OnnxParserFlag.ENABLE_PLUGIN_OVERRIDE) is not in the lean
package; the gpu-marked tests exercise it on a device.
"""
from __future__ import annotations

import pytest

trt = pytest.importorskip("tensorrt_lean", reason="tensorrt_lean not installed")

#: (owner, attribute): owner "" = the module itself. Keep this the single list of runtime names we rely on.
RUNTIME_API = [
    ("", "Logger"), ("Logger", "WARNING"), ("Logger", "ERROR"), ("Logger", "INFO"), ("Logger", "VERBOSE"),
    ("", "Runtime"), ("Runtime", "deserialize_cuda_engine"), ("Runtime", "get_plugin_registry"),
    ("", "ICudaEngine"), ("ICudaEngine", "num_io_tensors"), ("ICudaEngine", "get_tensor_name"),
    ("ICudaEngine", "get_tensor_mode"), ("ICudaEngine", "get_tensor_shape"), ("ICudaEngine", "get_tensor_dtype"),
    ("ICudaEngine", "get_tensor_profile_shape"), ("ICudaEngine", "create_execution_context"),
    ("ICudaEngine", "num_optimization_profiles"),
    ("", "IExecutionContext"), ("IExecutionContext", "set_input_shape"),
    ("IExecutionContext", "set_tensor_address"), ("IExecutionContext", "execute_async_v3"),
    ("IExecutionContext", "get_tensor_shape"), ("IExecutionContext", "all_binding_shapes_specified"),
    ("", "TensorIOMode"), ("TensorIOMode", "INPUT"), ("TensorIOMode", "OUTPUT"),
    ("", "DataType"), ("DataType", "FLOAT"), ("DataType", "HALF"), ("DataType", "INT32"), ("", "nptype"),
    ("", "get_plugin_registry"), ("IPluginRegistry", "load_library"), ("IPluginRegistry", "all_creators"),
    ("IPluginRegistry", "get_creator"),
]
# Present in some packages only, so the runtime must feature-detect it with hasattr: init_libnvinfer_plugins
# (full tensorrt has it; tensorrt_lean 11.4 does not).


def _owner(name: str):
    return trt if not name else getattr(trt, name)


@pytest.mark.parametrize("owner,attr", RUNTIME_API, ids=[f"{o or 'trt'}.{a}" for o, a in RUNTIME_API])
def test_runtime_name_exists(owner, attr):
    assert hasattr(_owner(owner), attr), f"tensorrt_lean {trt.__version__} has no {owner or 'module'}.{attr}"


def test_dtype_mapping_used_for_host_buffers():
    import numpy as np

    assert trt.nptype(trt.DataType.FLOAT) is np.float32
    assert trt.nptype(trt.DataType.HALF) is np.float16
    assert trt.TensorIOMode.INPUT != trt.TensorIOMode.OUTPUT
