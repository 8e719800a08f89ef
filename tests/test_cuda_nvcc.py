"""nvcc compiles both CUDA launchers (kernels/*/*.cu) for the GPU architectures (skipped without nvcc)."""
from __future__ import annotations

import pytest

from edge.kernels import build_tools


@pytest.mark.parametrize("op", ["roi_pool", "convlstm"])
def test_nvcc_compiles_launchers(nvcc, tmp_path_factory, op):
    """nvcc -c for Orin (sm_87) and a desktop part (sm_75) in one invocation, all warnings as errors."""
    # session-wide, content-addressed: tests/test_plugin_registry.py links these same objects
    out = build_tools.nvcc_compile(build_tools.KERNELS_DIR / op / f"{op}.cu",
                                   tmp_path_factory.getbasetemp() / "edge_build", archs=("87", "75"))
    data = out.read_bytes()
    assert b"sm_87" in data and b"sm_75" in data
