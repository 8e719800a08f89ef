"""Engines behind a Triton Inference Server (``edge serve``), over gRPC (torch-free; needs ``.[serve]``).

``load_remote_engines("grpc://127.0.0.1:8001", "tracker")`` gives the same ``Engines`` as
``load_engines(ENGINE_DIR)``: one ``RemoteEngine`` per network (Triton model ``<model>_<network>``), the
manifest read back from the served model's ``edge_manifest`` parameter, so a camera process needs no local
engine files. A classifier's served ``<model>_window`` (when the server has it) becomes
``Engines.composites["window"]``: the classifier runs a whole window in one request; a tracker's
``<model>_search_probed`` becomes ``Engines.composites["search_probed"]`` (``edge.runtime.probes``). With
``shared_memory=True`` (``edge run --remote-shm on``; server on the same host) large inputs travel in a
registered system shared-memory region (``SharedInputs``) instead of inside the gRPC messages. Tensors
travel with the manifest's names, dtypes and shapes (the batch axis included).

When the server goes away (restart, network blip) a request is retried on a fresh channel with back-off
(0.5 s doubling to 2 s) until ``retry_s`` has passed; every network here is
stateless, so resending is safe and no frame is lost or run twice. The wait is counted in ``RemoteStats``
(``reconnects``, ``gap_s``), never hidden. A request the server refuses (wrong shape, dtype, missing input)
raises ``ValueError`` with the server's one-line reason.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

import numpy as np

from edge.errors import UserError
from edge.runtime.base import Engines, TensorSpec
from edge.runtime.probes import PROBED, manifest_probed_network
from edge.runtime.recurrent import WINDOW
from edge.runtime.triton_config import (PARAM_BACKEND, PARAM_MANIFEST, PARAM_MODEL, PARAM_PRECISION, manifest_model,
                                        model_name, window_network)

log = logging.getLogger("edge.remote")

#: gRPC status codes after which a request is retried (server down, restarting, or its model reloading)
RETRY_CODES = ("StatusCode.UNAVAILABLE", "StatusCode.CANCELLED", "StatusCode.DEADLINE_EXCEEDED")
MODEL_GONE = ("unknown model", "not ready", "no available versions", "is not found")
# short cap: a restarted server is back in seconds, and every second waited after that is a longer gap
BACKOFF_S, BACKOFF_MAX_S = 0.5, 2.0
# below this many bytes per request, inputs travel inside the gRPC message (the search's rois, a window's state)
SHM_MIN_BYTES = 64 * 1024
_WIRE = {"float32": "FP32", "float16": "FP16", "float64": "FP64", "int64": "INT64", "int32": "INT32",
         "int16": "INT16", "int8": "INT8", "uint8": "UINT8", "bool": "BOOL"}


def _shm():
    import tritonclient.utils.shared_memory as shm
    return shm


def _grpc():
    try:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
    except ImportError:
        raise UserError("--remote needs the Triton client: pip install '.[serve]' (tritonclient[grpc])") from None
    return grpcclient, InferenceServerException


def parse_url(url: str) -> str:
    """``grpc://HOST:PORT`` (or ``HOST:PORT``) -> ``HOST:PORT``."""
    u = urlparse(url if "://" in url else f"grpc://{url}")
    if u.scheme != "grpc":
        raise UserError(f"remote {url!r}: only grpc://HOST:PORT is supported")
    if not u.hostname or not u.port:
        raise UserError(f"remote {url!r}: expected grpc://HOST:PORT")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return f"{host}:{u.port}"


@dataclass
class RemoteStats:
    """Counts shared by the networks of one server connection."""
    requests: int = 0            # inference requests answered
    retries: int = 0
    reconnects: int = 0          # outages survived (a success after >= 1 failed try)
    gap_s: float = 0.0           # total time spent waiting for the server
    gaps: list = field(default_factory=list)
    shared_memory: int = 0       # requests whose inputs travelled in shared memory

    def summary(self) -> dict:
        return {"requests": self.requests, "shared_memory": self.shared_memory, "retries": self.retries,
                "reconnects": self.reconnects,
                "gap_s": round(self.gap_s, 3), "gaps_s": [round(g, 3) for g in self.gaps]}


class Connection:
    """One server address: a gRPC client per thread (recreated after an outage), retry policy, stats."""

    def __init__(self, url: str, retry_s: float = 60.0, timeout_s: float = 30.0) -> None:
        self.url, self.target = url, parse_url(url)
        self.retry_s, self.timeout_s = float(retry_s), float(timeout_s)
        self.stats = RemoteStats()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._grpc, self._exc = _grpc()

    def client(self):
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self._grpc.InferenceServerClient(self.target)
        return c

    def reset(self) -> None:
        c = getattr(self._local, "client", None)
        self._local.client = None
        if c is not None:
            try:
                c.close()
            except Exception:
                pass

    def call(self, what: str, fn, inference: bool = False):
        """``fn(client)`` with retries on outages; a refusal raises ValueError (the server's reason).
        ``inference``: count it in ``stats.requests``."""
        t_fail = None
        delay = BACKOFF_S
        while True:
            try:
                out = fn(self.client())
            except self._exc as e:
                status = str(e.status() or "")
                msg = e.message() or str(e)
                # a model that was there at load and is gone now: the server is stopping or reloading it
                retryable = status in RETRY_CODES or "failed to connect" in msg.lower() or (
                    inference and any(m in msg.lower() for m in MODEL_GONE))
                if not retryable:
                    raise ValueError(f"{what}: server refused the request: {msg.splitlines()[0]}") from None
                now = time.monotonic()
                t_fail = now if t_fail is None else t_fail
                if now - t_fail > self.retry_s:
                    raise UserError(f"{what}: server {self.url} unreachable for {now - t_fail:.0f} s "
                                    f"({msg.splitlines()[0]})") from None
                with self._lock:
                    self.stats.retries += 1
                log.warning("%s: server %s unavailable (%s); retrying in %.1f s", what, self.url,
                            msg.splitlines()[0][:120], delay)
                self.reset()
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            with self._lock:
                self.stats.requests += int(inference)
                if t_fail is not None:
                    gap = time.monotonic() - t_fail
                    self.stats.reconnects += 1
                    self.stats.gap_s += gap
                    self.stats.gaps.append(gap)
            if t_fail is not None:
                log.warning("%s: server %s back after %.1f s", what, self.url, time.monotonic() - t_fail)
            return out

    def count_shared(self) -> None:
        with self._lock:
            self.stats.shared_memory += 1

    def model_config(self, name: str) -> dict:
        got = self.call(f"config of {name}", lambda c: c.get_model_config(name, as_json=True))
        return got.get("config", got)

    def model_names(self) -> list[str]:
        index = self.call("repository index", lambda c: c.get_model_repository_index(as_json=True))
        return [m["name"] for m in index.get("models", [])]


class NoSharedMemory(Exception):
    """The server cannot map this host's shared memory (another host or container): send tensors inline."""


class SharedInputs:
    """The inputs of one ``RemoteEngine`` in a system shared-memory region the server maps (client and server
    on one host; perf_analyzer's ``--shared-memory system``): each tensor is copied once into the region
    instead of being serialised into the gRPC message and parsed out of it again. Registered on first use and
    again after a server restart (a restarted server has no registrations), grown when a request needs more
    room; ``close`` unregisters and unlinks it. One request at a time (``lock``)."""

    _count = 0

    def __init__(self, owner: str) -> None:
        SharedInputs._count += 1
        self.base = f"edge_{os.getpid()}_{SharedInputs._count}_{''.join(c if c.isalnum() else '_' for c in owner)}"
        self.handle, self.size, self.gen, self.registered = None, 0, 0, False
        self.lock = threading.Lock()
        self.shm = _shm()
        _LIVE.add(self)

    @property
    def name(self) -> str:
        return f"{self.base}_{self.gen}"

    def _grow(self, client, need: int) -> None:
        self.release(client)
        self.gen += 1
        self.size = max(need, 2 * self.size)
        self.handle = self.shm.create_shared_memory_region(self.name, f"/{self.name}", self.size)

    def write(self, client, arrays: Mapping[str, np.ndarray], exc) -> dict[str, tuple[int, int]]:
        """Copy ``arrays`` into the region (registering it if needed) -> {name: (offset, nbytes)}."""
        layout, end = {}, 0
        for n, a in arrays.items():
            layout[n] = (end, a.nbytes)
            end += -(-a.nbytes // 64) * 64                  # 64-byte aligned, as the server's copies like
        if end > self.size:
            self._grow(client, end)
        if not self.registered:
            try:
                client.register_system_shared_memory(self.name, f"/{self.name}", self.size)
            except exc as e:
                if str(e.status() or "") in RETRY_CODES or "failed to connect" in (e.message() or "").lower():
                    raise                                    # an outage: the caller's retry loop waits it out
                raise NoSharedMemory((e.message() or str(e)).splitlines()[0]) from None
            self.registered = True
        for n, a in arrays.items():
            self.shm.set_shared_memory_region(self.handle, [a], offset=layout[n][0])
        return layout

    def release(self, client=None) -> None:
        """Unregister (when a client is given and the server is there) and unlink the region."""
        if self.registered and client is not None:
            try:
                client.unregister_system_shared_memory(self.name)
            except Exception:                        # the server is gone: nothing to unregister
                pass
        self.registered = False
        if self.handle is not None:
            try:
                self.shm.destroy_shared_memory_region(self.handle)
            except Exception as e:                   # already unlinked by hand: nothing left to free
                log.debug("shared memory %s: %s", self.name, e)
            self.handle = None
        _LIVE.discard(self)


_LIVE: "weakref.WeakSet[SharedInputs]" = weakref.WeakSet()


@atexit.register
def _unlink_all() -> None:
    """Regions not closed (a run that died): unlink them so nothing is left in /dev/shm."""
    for region in list(_LIVE):
        region.release()


class RemoteEngine:
    """One network served by Triton: ``run(feeds) -> outputs`` as a local engine, over gRPC. With
    ``shared_memory`` the inputs of a request of at least ``SHM_MIN_BYTES`` travel in a ``SharedInputs``
    region (falls back to inline tensors for good, with one warning, if the server cannot map it)."""

    backend = "triton"

    def __init__(self, name: str, model: str, conn: Connection, inputs: list[TensorSpec],
                 outputs: list[TensorSpec], shared_memory: bool = False) -> None:
        self.name, self.model, self.conn = name, model, conn
        self.inputs, self.outputs = list(inputs), list(outputs)
        self._grpc = conn._grpc
        self.latencies: deque = deque(maxlen=20000)      # seconds per answered request (retries included)
        self.shared = SharedInputs(model) if shared_memory else None

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [s.name for s in self.inputs if s.name not in feeds]
        if missing:
            raise ValueError(f"{self.name}: missing inputs {missing} (expects {[s.name for s in self.inputs]})")
        arrays = {s.name: np.ascontiguousarray(feeds[s.name], dtype=s.dtype) for s in self.inputs}
        t0 = time.perf_counter()
        res = None
        if self.shared is not None and sum(a.nbytes for a in arrays.values()) >= SHM_MIN_BYTES:
            try:
                with self.shared.lock:
                    res = self.conn.call(self.model, lambda client: self._infer_shared(client, arrays),
                                         inference=True)
                self.conn.count_shared()
            except NoSharedMemory as e:
                log.warning("%s: server cannot map this host's shared memory (%s); sending tensors inline",
                            self.model, e)
                self.close()
        if res is None:
            res = self.conn.call(self.model, lambda client: self._infer(client, arrays), inference=True)
        self.latencies.append(time.perf_counter() - t0)
        return {s.name: res.as_numpy(s.name) for s in self.outputs}

    def _inputs(self, arrays, layout=None) -> list:
        ins = []
        for s in self.inputs:                  # built per try: a request never reuses a half-sent buffer
            x = self._grpc.InferInput(s.name, list(arrays[s.name].shape), _WIRE[s.dtype])
            if layout is None:
                x.set_data_from_numpy(arrays[s.name])
            else:
                x.set_shared_memory(self.shared.name, layout[s.name][1], offset=layout[s.name][0])
            ins.append(x)
        return ins

    def _infer(self, client, arrays):
        return client.infer(self.model, self._inputs(arrays), client_timeout=self.conn.timeout_s)

    def _infer_shared(self, client, arrays):
        for attempt in (0, 1):
            layout = self.shared.write(client, arrays, self.conn._exc)
            try:
                return client.infer(self.model, self._inputs(arrays, layout), client_timeout=self.conn.timeout_s)
            except self.conn._exc as e:
                # a restarted server has forgotten the region: register it again once, then resend
                if attempt == 0 and "shared memory" in (e.message() or "").lower():
                    self.shared.registered = False
                    continue
                raise

    def close(self) -> None:
        """Free the shared-memory region (unregistered when the server is there)."""
        if self.shared is not None:
            shared, self.shared = self.shared, None
            try:
                client = self.conn.client()
            except Exception:
                client = None
            shared.release(client)


def _specs(entries) -> list[TensorSpec]:
    return [TensorSpec(e["name"], tuple(e["shape"]), e["dtype"]) for e in entries]


def _params(config: dict) -> dict[str, str]:
    return {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}


def load_remote_engines(url: str, model: str, prefix: str | None = None, retry_s: float = 60.0,
                        timeout_s: float = 30.0, shared_memory: bool = False) -> Engines:
    """The networks of ``model`` served at ``url`` (``grpc://HOST:PORT``) as ``Engines``.

    ``model``: the served model name (``tracker``, ``classifier``, or the ``--prefix`` given to ``edge serve``),
    or a local engine folder (its manifest names the model). ``prefix`` overrides the served name.
    ``shared_memory``: large inputs through system shared memory (``SharedInputs``; client and server on one
    host), falling back to inline tensors if the server cannot map it (another host or container). Off by
    default: on this 2-core machine -4 % to +7 % end to end over three runs (README, serving)."""
    path = Path(model)
    if (path / "model.json").is_file():
        from edge.fileio import read_json
        model = manifest_model(read_json(path / "model.json", "engine manifest"), path)
    name = prefix or model
    conn = Connection(url, retry_s=retry_s, timeout_s=timeout_s)
    served = [m for m in conn.model_names() if m.startswith(f"{name}_")]
    manifest = None
    for m in served:
        params = _params(conn.model_config(m))
        if PARAM_MANIFEST in params and params.get(PARAM_MODEL, name) == name:
            manifest, backend, precision = json.loads(params[PARAM_MANIFEST]), params.get(PARAM_BACKEND), \
                params.get(PARAM_PRECISION)
            break
    if manifest is None:
        raise UserError(f"server {url} serves no edge model {name!r} (models: {', '.join(conn.model_names()) or 'none'})")
    nets = {}
    for net, spec in manifest["networks"].items():
        served_name = model_name(model, net, prefix)
        if served_name not in served:
            raise UserError(f"server {url} lacks {served_name} (serves: {', '.join(served)})")
        nets[net] = RemoteEngine(net, served_name, conn, _specs(spec["inputs"]), _specs(spec["outputs"]),
                                 shared_memory)
    composites = {}
    window = model_name(model, WINDOW, prefix)
    if "step" in manifest["networks"] and WINDOW not in manifest["networks"] and window in served:
        spec = window_network(manifest["networks"]["step"])       # one request per window, not T
        composites[WINDOW] = RemoteEngine(WINDOW, window, conn, _specs(spec["inputs"]), _specs(spec["outputs"]),
                                          shared_memory)
    probed, spec = model_name(model, PROBED, prefix), manifest_probed_network(manifest)
    if spec is not None and probed in served:                       # products, not 2 MB of embeddings
        composites[PROBED] = RemoteEngine(PROBED, probed, conn, _specs(spec["inputs"]), _specs(spec["outputs"]),
                                          shared_memory)
    eng = Engines(nets, manifest, backend=f"triton({backend or '?'})", precision=precision or "fp32",
                  composites=composites)
    eng.connection = conn                       # stats for the caller (reconnects, gap)
    return eng
