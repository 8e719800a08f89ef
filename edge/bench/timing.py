"""Timed engine calls for ``edge bench``: the one interleaved timer (``edge.timing``) over engines and
recorded inputs, with trtexec's latency set per row (torch-free)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from edge.bench.stats import latency_stats
from edge.timing import interleaved


def time_round_robin(engines: Sequence, feeds: Sequence[Mapping[str, np.ndarray]], *, warmup_runs: int = 3,
                     warmup_s: float = 0.2, min_runs: int = 10, min_s: float = 1.0, max_runs: int = 1000,
                     settle: int = 1, block: int = 2) -> list[dict | Exception]:
    """Time several engines of the same network on the same ``feeds``, in turn, so that load from other
    processes hits every row alike. A turn is ``settle`` untimed calls then ``block`` timed calls of one
    engine: the untimed call absorbs the previous row's leftovers (onnxruntime's default sessions keep their
    threads spinning after a call, which slowed the next row's calls up to 2x here). Each engine: warm-up, then
    at least ``min_runs`` timed calls and about ``min_s`` seconds of them (at most ``max_runs``). An engine
    that raises gets its exception back in its slot and leaves the rotation.

    GPU engines may expose ``last_timings`` (ms per phase of the last call, e.g. ``{"h2d": .., "compute": ..,
    "d2h": ..}``, trtexec's host-to-device / GPU compute / device-to-host split); each phase then gets its own
    statistics under ``"phases"``."""
    if not feeds:
        raise ValueError("time_round_robin: no inputs")
    phases: list[dict[str, list[float]]] = [{} for _ in engines]

    def after_call(k: int) -> None:
        for name, ms in (getattr(engines[k], "last_timings", None) or {}).items():
            phases[k].setdefault(name, []).append(float(ms) / 1e3)
    got = interleaved([lambda i, e=e: e.run(feeds[i % len(feeds)]) for e in engines], warmup_runs=warmup_runs,
                      warmup_s=warmup_s, min_runs=min_runs, min_s=min_s, max_runs=max_runs, settle=settle,
                      block=block, after_call=after_call)
    out: list[dict | Exception] = []
    for k, t in enumerate(got):
        if isinstance(t, Exception):
            out.append(t)
            continue
        st = latency_stats(t)
        st["times_ms"] = [round(x * 1e3, 4) for x in t]
        if phases[k]:
            st["phases"] = {name: latency_stats(v) for name, v in phases[k].items()}
        out.append(st)
    return out
