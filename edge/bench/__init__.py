"""``edge bench``: speed, numerics and task accuracy of engines against the PyTorch reference.

Every row (PyTorch reference, plain onnxruntime on the un-optimised export, each engine directory) runs
through the same code with a different :class:`edge.runtime.base.Engines`. Torch is imported lazily, only
to build the reference row.

Calling the package is the API function ``edge.api.bench``: ``edge.bench(["engines/tracker"])``.
"""
from edge._callable import make_callable

make_callable(__name__, "bench")
