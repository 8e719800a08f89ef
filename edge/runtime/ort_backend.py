"""onnxruntime engines (torch-free): one optimised graph, or graph segments with the numba ROI kernel between."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnxruntime as ort

from edge.contract import NetworkManifest, NetworkPlan, TensorSpec

# numba's OpenMP layer busy-waits between parallel regions by default: next to onnxruntime's own pool (or
# on a loaded 2-core board) a 0.04 ms ROI pooling call then takes 10-40 ms. Must be set before libgomp loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


#: How idle onnxruntime worker threads wait for work (recorded in the fingerprint):
#: ``always`` (onnxruntime's default) keeps them spinning after ``Run`` returns, stealing the cores from
#: whatever runs next; ``never`` puts them to sleep between every operator (each op pays a wake-up);
#: ``during_run`` spins inside a ``Run`` and stops when it returns (``session.force_spinning_stop``).
#: Measured here (2 cores, template 2 threads alone / template + classifier encoder alternating):
#: always 1.5-2.0 / 9.9 ms, never 2.2-3.2 / 6.2 ms, during_run 1.6-2.0 / 4.7 ms.
SPIN_POLICIES = ("during_run", "never", "always")
SPIN_POLICY = "during_run"


def session(path_or_bytes, threads: int | None = None, optimized_offline: bool = True,
            spin: str = SPIN_POLICY, save_optimized_to: str | Path | None = None) -> ort.InferenceSession:
    """The one way this package makes an onnxruntime CPU session.

    ``optimized_offline``: the graph was optimised by ``edge build`` (load with optimisations off); else
    onnxruntime's own online optimisations run, as for a raw export (``save_optimized_to`` keeps their
    result: ``edge build``'s offline optimisation). ``threads``: intra-op threads (None: onnxruntime's
    default). ``spin``: how idle worker threads wait (see ``SPIN_POLICY``)."""
    if spin not in SPIN_POLICIES:
        raise ValueError(f"unknown spin policy {spin!r} (one of {', '.join(SPIN_POLICIES)})")
    opts = ort.SessionOptions()
    if spin == "never":
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    elif spin == "during_run":
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
        opts.add_session_config_entry("session.force_spinning_stop", "1")
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_DISABLE_ALL if optimized_offline
                                     else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    if save_optimized_to is not None:
        opts.optimized_model_filepath = str(save_optimized_to)
    data = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _check_feeds(name: str, inputs: Sequence[TensorSpec], feeds: Mapping[str, np.ndarray]) -> dict:
    missing = [s.name for s in inputs if s.name not in feeds]
    if missing:
        raise ValueError(f"{name}: missing inputs {missing} (expects {[s.name for s in inputs]})")
    return {s.name: np.ascontiguousarray(feeds[s.name], dtype=s.dtype) for s in inputs}


class OrtEngine:
    """One network = one onnxruntime session."""

    backend = "onnxruntime"

    def __init__(self, name: str, sess: ort.InferenceSession, inputs: Sequence[TensorSpec],
                 outputs: Sequence[TensorSpec]):
        self.name, self.session = name, sess
        self.inputs, self.outputs = list(inputs), list(outputs)
        self._out_names = [s.name for s in self.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        got = self.session.run(self._out_names, _check_feeds(self.name, self.inputs, feeds))
        return dict(zip(self._out_names, got))


class SplitEngine:
    """Graph segments in onnxruntime with host ROI pooling (numba) between them."""

    backend = "onnxruntime+numba"

    def __init__(self, name: str, stages: Sequence, sessions: dict[str, ort.InferenceSession],
                 inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], threads: int | None = None):
        from edge.kernels.roi_pool.cpu import roi_pool  # numba, torch-free
        from edge.contract import Stage
        self._roi_pool = roi_pool
        # an engine given one thread keeps its ROI kernel on one thread too (another model may be running
        # on the other cores); otherwise the kernel's own rule (parallel unless the CPU is oversubscribed)
        self._roi_parallel = False if threads == 1 else None
        self.name, self.sessions = name, sessions
        self.stages = [s if isinstance(s, Stage) else Stage.from_dict(s, name) for s in stages]
        self.inputs, self.outputs = list(inputs), list(outputs)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        env = _check_feeds(self.name, self.inputs, feeds)
        for st in self.stages:
            if st.kind == "roi_pool":
                x, rois = (env[t] for t in st.inputs)
                env[st.outputs[0]] = self._roi_pool(x, rois, st.pooled_shape, st.spatial_scale,
                                                    parallel=self._roi_parallel)
            else:
                got = self.sessions[st.segment].run(list(st.outputs), {t: env[t] for t in st.inputs})
                env.update(zip(st.outputs, got))
        return {s.name: env[s.name] for s in self.outputs}


def probed_segment(engine: "OrtEngine | SplitEngine", embeddings: str) -> str | None:
    """The segment of a split ``engine`` whose graph outputs ``embeddings`` (None: a one-graph engine)."""
    if isinstance(engine, OrtEngine):
        return None
    return next(st.segment for st in reversed(engine.stages) if st.kind == "onnxruntime" and embeddings in st.outputs)


def probed_engine(engine: "OrtEngine | SplitEngine", probed: ort.InferenceSession,
                  embeddings: str) -> "OrtEngine | SplitEngine":
    """The composite ``search_probed`` (``edge.runtime.probes``) of a CPU search ``engine``: the same engine with
    the graph that outputs ``embeddings`` (the whole graph, or that segment) replaced by ``probed``, its form
    that takes ``probes`` and outputs ``products`` instead (``edge.runtime.build_cpu.probed_graph``)."""
    from edge.runtime.probes import PROBED, PROBES, PRODUCTS, probed_specs
    ins, outs = probed_specs(engine.inputs, engine.outputs, embeddings)
    if isinstance(engine, OrtEngine):
        return OrtEngine(PROBED, probed, ins, outs)
    seg = probed_segment(engine, embeddings)
    stages = [dataclasses.replace(st, inputs=(*st.inputs, PROBES),
                                  outputs=tuple(PRODUCTS if o == embeddings else o for o in st.outputs))
              if st.segment == seg else st for st in engine.stages]
    out = SplitEngine(PROBED, stages, {**engine.sessions, seg: probed}, ins, outs)
    out._roi_parallel = engine._roi_parallel
    return out


def net_specs(net: dict) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) of one network entry of a ``model.json`` dict."""
    m = NetworkManifest.from_dict(net.get("name", "network"), net, "model.json")
    return list(m.inputs), list(m.outputs)


def load_network(engine_dir: Path, net_name: str, plan: NetworkPlan, net: NetworkManifest, threads: int | None,
                 spin: str = SPIN_POLICY):
    """The runtime engine of one CPU network from its build plan."""
    ins, outs = list(net.inputs), list(net.outputs)
    if plan.kind == "onnxruntime+numba":
        sessions = {st.segment: session(engine_dir / st.file, threads, spin=spin)
                    for st in plan.stages if st.kind == "onnxruntime"}
        return SplitEngine(net_name, plan.stages, sessions, ins, outs, threads)
    (file,) = [f for f in plan.files if f != plan.probed_file]
    return OrtEngine(net_name, session(engine_dir / file, threads, spin=spin), ins, outs)
