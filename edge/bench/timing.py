"""Timed engine calls: warm-up first, then per-call latency, rows interleaved round-robin in short blocks
(torch-free)."""
from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np

from edge.bench.stats import latency_stats


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
    out: list[dict | Exception | None] = [None] * len(engines)
    times: list[list[float]] = [[] for _ in engines]
    phases: list[dict[str, list[float]]] = [{} for _ in engines]
    spent = [0.0] * len(engines)
    live = list(range(len(engines)))
    for k in list(live):                            # warm-up, engine by engine
        try:
            t0, i = time.perf_counter(), 0
            while i < warmup_runs or time.perf_counter() - t0 < warmup_s:
                engines[k].run(feeds[i % len(feeds)])
                i += 1
        except Exception as e:  # noqa: BLE001
            out[k] = e
            live.remove(k)
    i = 0
    while live:
        for k in list(live):
            try:
                for _ in range(settle):
                    engines[k].run(feeds[i % len(feeds)])
                for j in range(block):
                    t0 = time.perf_counter()
                    engines[k].run(feeds[(i + j) % len(feeds)])
                    dt = time.perf_counter() - t0
                    times[k].append(dt)
                    for name, ms in (getattr(engines[k], "last_timings", None) or {}).items():
                        phases[k].setdefault(name, []).append(float(ms) / 1e3)
                    spent[k] += dt
                    n = len(times[k])
                    if n >= max_runs or (n >= min_runs and spent[k] >= min_s):
                        live.remove(k)
                        break
            except Exception as e:  # noqa: BLE001
                out[k] = e
                live.remove(k)
        i += block
    for k, t in enumerate(times):
        if out[k] is None:
            out[k] = latency_stats(t)
            out[k]["times_ms"] = [round(x * 1e3, 4) for x in t]
            if phases[k]:
                out[k]["phases"] = {name: latency_stats(v) for name, v in phases[k].items()}
    return out
