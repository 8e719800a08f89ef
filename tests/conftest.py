"""Shared test fixtures and the ``gpu`` marker's skip rule."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest


def _terminal_signals() -> None:
    """The signal tests send SIGINT/SIGHUP/SIGQUIT as a terminal does, to ``edge`` processes started from here.
    A suite started under ``nohup`` or as a background job (``cmd &``) inherits those signals as ignored, and
    ``edge run`` rightly keeps an inherited ignore: give the children a terminal's defaults instead (the
    inherited-ignore test sets its own)."""
    import signal
    for name in ("SIGHUP", "SIGQUIT"):
        if signal.getsignal(getattr(signal, name)) is signal.SIG_IGN:
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_terminal_signals()


@pytest.fixture(scope="module")
def one_thread():
    """One PyTorch intra-op thread for the module: on a shared 2-core machine OpenMP spinning makes two
    threads many times slower."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gpu_reason() -> str | None:
    """Why GPU tests cannot run here, or None when TensorRT + pycuda + a device are usable."""
    try:
        import tensorrt  # noqa: F401  (the full builder, not tensorrt_lean)
    except Exception:
        return "no GPU here: the full tensorrt package is not installed (only tensorrt_lean is installable)"
    try:
        import pycuda.driver as cuda
        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA device"
    except Exception as e:
        return f"no GPU here: pycuda/CUDA driver unavailable ({type(e).__name__})"
    return None


def pytest_collection_modifyitems(config, items):
    gpu_items = [it for it in items if "gpu" in it.keywords]
    if not gpu_items:
        return
    reason = _gpu_reason()
    if reason:
        for it in gpu_items:
            it.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def rng():
    """Fresh random inputs every run; the seed is printed so a failure can be replayed."""
    seed = int(os.environ.get("EDGE_TEST_SEED", np.random.SeedSequence().entropy % (2**31)))
    print(f"EDGE_TEST_SEED={seed}")
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def nvcc() -> str:
    path = shutil.which("nvcc")
    if not path:
        pytest.skip("nvcc not found")
    return path


@pytest.fixture(scope="session")
def tensorrt_include_dirs() -> list[str]:
    """TensorRT public header folders from TENSORRT_INCLUDE_DIR (os.pathsep-separated)."""
    value = os.environ.get("TENSORRT_INCLUDE_DIR", "")
    dirs = [d for d in value.split(os.pathsep) if d]
    if not dirs:
        pytest.skip("TENSORRT_INCLUDE_DIR not set: TensorRT plugin compile check skipped")
    return dirs
