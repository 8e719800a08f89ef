"""Custom ops, one folder each: ``roi_pool`` and ``convlstm``.

Each op has five faces: PyTorch reference (``reference.py``), ONNX export as a custom-domain node
with a model-local function (``onnx_function.py``), CUDA kernel (``*.cuh`` body + ``*.cu`` launcher),
TensorRT IPluginV3 plugin (``plugin/``), and a CPU path (``cpu.py``).
Importing a package here never imports torch; only ``reference.py`` does.
"""
DOMAIN = "edge.ops"
