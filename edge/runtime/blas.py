"""numpy's BLAS held to one thread while edge's loops run (torch-free; ``threadpoolctl``).

The runtime's own numpy products are small (the box regression, a served search's probes, ...) and run next to
the engines' thread pools and the pipeline's stage threads. OpenBLAS's worker threads spin after every call
(numpy and OpenCV each bring an OpenBLAS; both are limited), so on a small device they take cores from the
engines. Measured on 2 cores (2026-12-02): a served tracker search in the Python backend 11.5 vs 22 CPU ms per
request (13.0 vs 17 without probes); in-process ``edge run`` (both models, 200 frames of bikes.mp4, 4
interleaved runs) 5.32 vs 5.59 s CPU, within this machine's noise.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from threadpoolctl import threadpool_limits


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within the block numpy's BLAS uses one thread (the process's setting is restored after)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def limit_blas_for_good() -> None:
    """One BLAS thread for the rest of this process (a server's model process that runs nothing else)."""
    threadpool_limits(limits=1, user_api="blas")
