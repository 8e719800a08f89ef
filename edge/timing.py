"""The one interleaved timer (torch-free): candidates timed in turn, in short blocks, so that load from
other processes hits every candidate alike. ``edge build`` keeps the fastest form by it, ``edge calibrate``
judges int8 by it and ``edge bench`` times its rows by it (``edge.bench.timing``)."""
from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import numpy as np


def interleaved(fns: Sequence[Callable[[int], object]], *, warmup_runs: int = 3, warmup_s: float = 0.2,
                min_runs: int = 10, min_s: float = 1.0, max_runs: int = 1000, settle: int = 1, block: int = 2,
                after_call: Callable[[int], None] | None = None) -> list[list[float] | Exception]:
    """Per candidate: the wall times (s) of its timed calls, or the exception it raised (it then leaves the
    rotation). ``fn(i)`` is called with a running call index (to cycle through inputs).

    Each candidate first warms up alone (``warmup_runs`` calls and ``warmup_s`` seconds), then the rotation
    gives each a turn of ``settle`` untimed calls (they absorb the previous candidate's leftovers: thread
    pools still spinning, caches) and ``block`` timed calls, until it has at least ``min_runs`` timed calls
    and ``min_s`` seconds of them, or ``max_runs``. ``after_call(k)`` runs after each timed call of ``k``."""
    times: list[list[float] | Exception] = [[] for _ in fns]
    spent = [0.0] * len(fns)
    live = list(range(len(fns)))
    for k in list(live):
        try:
            t0, i = time.perf_counter(), 0
            while i < warmup_runs or time.perf_counter() - t0 < warmup_s:
                fns[k](i)
                i += 1
        except Exception as e:  # noqa: BLE001 - a candidate that cannot run leaves with its error
            times[k] = e
            live.remove(k)
    i = 0
    while live:
        for k in list(live):
            try:
                for _ in range(settle):
                    fns[k](i)
                for j in range(block):
                    t0 = time.perf_counter()
                    fns[k](i + j)
                    dt = time.perf_counter() - t0
                    times[k].append(dt)
                    if after_call is not None:
                        after_call(k)
                    spent[k] += dt
                    n = len(times[k])
                    if n >= max_runs or (n >= min_runs and spent[k] >= min_s):
                        live.remove(k)
                        break
            except Exception as e:  # noqa: BLE001
                times[k] = e
                live.remove(k)
        i += block
    return times


def _reduce(fns: Mapping[str, Callable[[], object]], how, **kw) -> dict[str, float]:
    keys = list(fns)
    got = interleaved([lambda i, f=fns[k]: f() for k in keys], **kw)
    for k, t in zip(keys, got):
        if isinstance(t, Exception):
            raise t
    return {k: float(how(t)) * 1e3 for k, t in zip(keys, got)}


def fastest_ms(fns: Mapping[str, Callable[[], object]], **kw) -> dict[str, float]:
    """The minimum time (ms) of each candidate: its uncontended cost (on a shared or loaded CPU, medians
    mostly measure the other processes) — what ``edge build`` keeps forms by."""
    return _reduce(fns, np.min, **kw)


def median_ms(fns: Mapping[str, Callable[[], object]], **kw) -> dict[str, float]:
    """The median time (ms) of each candidate."""
    return _reduce(fns, np.median, **kw)
