"""INT8 (Q/DQ) calibration and FP16 typing of exported graphs (``edge calibrate``; workstation side).

- ``dataset``: video / image-sequence sources, frame plans spread over them, the saved calibration set;
- ``collect``: representative inputs recorded through the real torch-free tracker / classifier runtime;
- ``quantize``: onnxruntime ``quantize_static`` per backend flavour (``ort`` u8 activations, ``trt``
  symmetric s8), custom ``edge.ops`` nodes left float with their functions intact;
- ``fallback``: per-layer sensitivity and the keep-in-float search against a tolerance;
- ``fp16``: fp16-typed graphs with L2 norm / softmax / custom ops / cell-state path pinned to fp32;
- ``pipeline``: the whole run and ``DIR/calibration/report.json``.
"""
