"""Serving engines on NVIDIA Triton Inference Server (``edge serve``, ``edge export-triton``).

``config``: Triton model configurations from a manifest (shared by both commands); ``repository``: the
Python-backend repository ``edge serve`` runs; ``python_model``: the model inside Triton's Python backend;
``server``: the ``tritonserver`` process. The client side is ``edge.runtime.triton_backend``.
"""
