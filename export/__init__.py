"""Export of the PyTorch reference models to ONNX (workstation side).

Calling the package is the API function ``edge.api.export``: ``edge.export("tracker", "out/tracker")``."""
from edge._callable import make_callable

make_callable(__name__, "export")
