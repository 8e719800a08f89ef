"""The Triton Python-backend model behind ``edge serve``: one network of one engine folder (torch-free).

Runs inside Triton's Python backend stub (``triton_python_backend_utils`` is the stub's module). Each
served model's ``1/model.py`` imports ``TritonPythonModel`` from here; its ``config.pbtxt`` parameters
name the engine folder and network. The engine is loaded with ``edge.runtime.load_engines`` (fingerprint
checks included), so the server runs exactly what ``edge run`` would run in-process.

Batching: with ``max_batch_size > 0`` Triton's dynamic batcher hands ``execute`` several requests (from
any clients); they are concatenated along the batch axis, run as one call and split back. When that call
fails (one bad request among good ones) every request runs alone, so only the bad one gets the error.

A composite model (parameter ``edge_composite``): ``window`` runs a classifier's ``step`` engine over a whole
window here (``edge.runtime.recurrent.unroll``: ``features`` [B,T,C,H,W] -> ``logits``), one request
instead of T round trips; ``search_probed`` runs a tracker's ``search`` and returns its embeddings' products with
the request's ``probes`` (``edge.runtime.probes``: [R, K] instead of [R, D]).
"""
from __future__ import annotations

import json
import time

import numpy as np

from edge.runtime.probes import PROBED, PROBES, PRODUCTS, run_probed
from edge.runtime.recurrent import WINDOW, unroll
from edge.runtime.triton_config import PARAM_COMPOSITE, PARAM_ENGINE_DIR, PARAM_NETWORK


def _params(config: dict) -> dict[str, str]:
    return {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb
        from edge.runtime import load_engines
        from edge.runtime.blas import limit_blas_for_good
        limit_blas_for_good()           # this process runs one engine; OpenBLAS's spinning pool only costs CPU
        self.pb = pb
        config = json.loads(args["model_config"])
        params = _params(config)
        threads = int(params["edge_threads"]) if params.get("edge_threads") else None
        engines = load_engines(params[PARAM_ENGINE_DIR], threads=threads)
        self.engine = engines[params[PARAM_NETWORK]]
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.in_names = [s.name for s in self.engine.inputs]
        self.out_names = [s.name for s in self.engine.outputs]
        self.run, self.name = self.engine.run, self.engine.name
        if params.get(PARAM_COMPOSITE) == WINDOW:
            self.name = WINDOW
            step = self.engine
            self.in_names, self.out_names = ["features"], ["logits"]
            self.run = lambda feeds: {"logits": unroll(step, feeds["features"])}
        elif params.get(PARAM_COMPOSITE) == PROBED:
            self.name = PROBED
            search, emb = self.engine, engines.config.search_embeddings
            self.in_names = [*self.in_names, PROBES]
            self.out_names = [n if n != emb else PRODUCTS for n in self.out_names]
            # the build's probed form where it kept one (the read-outs inside the run), else the product here
            probed = engines.composites.get(PROBED)
            self.run = probed.run if probed is not None else (lambda feeds: run_probed(search, emb, feeds))
        elif params.get(PARAM_COMPOSITE):
            raise ValueError(f"unknown edge composite model {params[PARAM_COMPOSITE]!r}")
        self.calls = self.batched_requests = 0
        self.busy_s = 0.0

    # -- one request ---------------------------------------------------------------------------------
    def _feeds(self, request) -> dict[str, np.ndarray]:
        feeds = {}
        for name in self.in_names:
            t = self.pb.get_input_tensor_by_name(request, name)
            if t is None:           # Triton checks inputs against the config first; keep a clear message
                raise ValueError(f"missing input {name!r} (expects {self.in_names})")
            feeds[name] = t.as_numpy()
        return feeds

    def _response(self, request, outs: dict[str, np.ndarray]):
        wanted = request.requested_output_names() or self.out_names
        return self.pb.InferenceResponse(
            output_tensors=[self.pb.Tensor(n, np.ascontiguousarray(outs[n])) for n in self.out_names if n in wanted])

    def _error(self, e: BaseException):
        msg = f"{self.name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(msg))

    def _run_one(self, request):
        try:
            return self._response(request, self.run(self._feeds(request)))
        except Exception as e:          # the error goes to this request's client; the server keeps serving
            return self._error(e)

    # -- Triton entry points -------------------------------------------------------------------------
    def execute(self, requests):
        t0 = time.perf_counter()
        self.calls += 1
        if not self.batched or len(requests) == 1:
            out = [self._run_one(r) for r in requests]
        else:
            out = self._run_batch(requests)
        self.busy_s += time.perf_counter() - t0
        return out

    def _run_batch(self, requests):
        try:
            feeds = [self._feeds(r) for r in requests]
            sizes = [f[self.in_names[0]].shape[0] for f in feeds]
            joined = {n: np.concatenate([f[n] for f in feeds], axis=0) for n in self.in_names}
            outs = self.run(joined)
        except Exception:
            return [self._run_one(r) for r in requests]
        self.batched_requests += len(requests)
        bounds = np.cumsum([0] + sizes)
        return [self._response(r, {n: v[bounds[i]:bounds[i + 1]] for n, v in outs.items()})
                for i, r in enumerate(requests)]

    def finalize(self) -> None:
        self.engine = None
