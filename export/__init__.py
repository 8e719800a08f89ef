"""Export of the PyTorch reference models to ONNX (workstation side)."""
