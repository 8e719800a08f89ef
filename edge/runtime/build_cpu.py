"""CPU engines: onnxruntime graphs optimised offline (build side; onnx + onnxruntime, no torch).

Per network: the graph of the requested precision (fp32 export, fp16-typed copy, or the calibrated
int8 Q/DQ graph for onnxruntime) is optimised offline (``ORT_ENABLE_ALL``) and saved, so the device
loads it with optimisations off. Precisions and the ROI cut are *measured* together on the example inputs:
a graph with ``edge.ops::RoiPool`` nodes is also built as segments with the numba kernel between when the
kernel's measured decision (``edge.kernels.roi_pool.cpu.should_use_numba``) says it may pay, and each
precision is judged in its fastest form: fp16 is refused when slower than fp32; an int8 network that does
not pay stays fp32 (said so). Exact clean-ups (``edge.runtime.graph_cleanup``) run before the optimisation.
Plain onnxruntime on the raw export is timed in the same rotation (never kept): every network's line says
what the build adds over it (``vs_plain_onnxruntime`` in the fingerprint), and where that is nothing, a note
says so with everything that was tried.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edge.errors import UserError
from edge.runtime.feeds import load_examples
from edge.runtime.graph_cleanup import clean
from edge.fileio import atomic_write_bytes, sha256_bytes
from edge.runtime.ort_backend import (OrtEngine, SplitEngine, net_specs as specs, probed_engine, probed_segment,
                                      session)
from edge.runtime.precision import PAYS_RATIO, int8_pays
from edge.runtime.probes import PROBES, PRODUCTS, run_probed
from edge.runtime.split import has_roi_pool, is_roi_pool, split_at_roi_pool
from edge.timing import fastest_ms

ROI_KERNELS = ("auto", "numba", "onnxruntime")
PLAIN = "plain_onnxruntime"       # timing key of the reference: a default session on the raw export


def _form(key: str) -> str:
    """``onnxruntime+numba_split_int8`` -> ``int8 numba ROI split``, ``onnxruntime_fp32`` -> ``fp32 one graph``."""
    precision = key.rsplit("_", 1)[-1]
    return f"{precision} {'numba ROI split' if 'numba_split' in key else 'one graph'}"


def adds_message(net_name: str, kept: str, timings: dict[str, float], cleanups: dict, ratio: float) -> str:
    """One line: what the build kept for a network, against plain onnxruntime on the raw export in the same
    interleaved timing, and everything it tried (so a build that adds nothing says so, with its numbers)."""
    tried = [f"{_form(k)} {v:.2f} ms" for k, v in sorted(timings.items(), key=lambda kv: kv[1])
             if k != PLAIN and k.rsplit("_", 1)[-1] in PRECISION_TAGS]
    clean = ", ".join(f"{k} x{n}" for k, n in cleanups.items()) or "none applied"
    head = (f"{net_name}: kept {_form(kept)} {timings[kept]:.2f} ms vs plain onnxruntime on the export "
            f"{timings[PLAIN]:.2f} ms ({ratio:.2f}x)")
    if ratio < PAYS_RATIO:
        head += (": on this CPU this build adds nothing over onnxruntime's own optimisation of this network "
                 "(see the README, 'What the CPU build adds')")
    return f"{head}; tried {', '.join(tried)}; exact graph clean-ups: {clean}"


PRECISION_TAGS = ("fp32", "fp16", "int8")


def optimize_offline(model: bytes, threads: int | None) -> bytes:
    """Apply onnxruntime's graph optimisations (all levels, this CPU) and return the saved graph."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "optimized.onnx"
        session(model, threads, optimized_offline=False, save_optimized_to=out)
        return out.read_bytes()


def _max_err(engine, feeds, ref) -> float:
    got = engine.run(feeds)
    return max(float(np.max(np.abs(got[k] - v))) if v.size else 0.0 for k, v in ref.items())


def source_graph(export_dir: Path, net_name: str, net: dict, precision: str) -> tuple[bytes, str]:
    """(graph bytes, description) of the requested precision before optimisation."""
    if precision == "int8":
        path = export_dir / "calibration" / f"{net_name}.int8.ort.onnx"
        if not path.is_file():
            raise UserError(f"no int8 calibration for network {net_name!r} ({path} missing): run "
                            f"`edge calibrate {export_dir} --data VIDEO...` first")
        return path.read_bytes(), str(path)
    data = (export_dir / net["file"]).read_bytes()
    if precision == "fp16":
        from edge.runtime.precision import to_fp16
        return to_fp16(onnx.load_from_string(data)).SerializeToString(), "fp16-typed copy of " + net["file"]
    return data, net["file"]


def roi_decision(model: onnx.ModelProto, roi_kernel: str, num_rois: int | None) -> tuple[bool, str]:
    """Whether to try the numba split, and why."""
    if not has_roi_pool(model):
        return False, "no RoiPool nodes"
    if roi_kernel != "auto":
        return roi_kernel == "numba", f"--roi-kernel {roi_kernel}"
    from edge.kernels.roi_pool import cpu as roi_cpu
    if not getattr(roi_cpu, "MEASURED_SPEEDUP", None):
        return True, "no recorded numba-vs-onnxruntime measurement for the kernel: measured here"
    should_use_numba = roi_cpu.should_use_numba
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {vi.name: [d.dim_value or None for d in vi.type.tensor_type.shape.dim]
              for vi in [*inferred.graph.input, *inferred.graph.value_info]}
    for node in model.graph.node:
        if is_roi_pool(node):
            shp = shapes.get(node.input[0], [])
            pooled = next(list(a.ints) for a in node.attribute if a.name == "pooled_shape")
            if len(shp) != 4 or None in shp[1:]:
                return True, "feature map size unknown: measured"
            ok = should_use_numba(shp[1], shp[2], shp[3], pooled, num_rois or 256)
            if ok:
                return True, f"numba kernel decision for C={shp[1]} {shp[2]}x{shp[3]} pooled {pooled}: try the split"
    return False, "numba kernel decision: onnxruntime MaxRoiPool is fast enough at these sizes"


class _Candidate:
    """One precision's graph, optimised once, as one onnxruntime graph and (when tried) as the numba split."""

    def __init__(self, precision: str, src: bytes, desc: str, net_name: str, net: dict, threads: int | None,
                 roi_kernel: str):
        self.precision, self.src, self.desc = precision, src, desc
        ins, outs = specs(net)
        model, self.cleanups = clean(onnx.load_from_string(src))     # exact rewrites (edge.runtime.graph_cleanup)
        graph = model.SerializeToString() if self.cleanups else src
        self.opt = optimize_offline(graph, threads)
        self.whole = OrtEngine(net_name, session(self.opt, threads), ins, outs)
        num_rois = next((e["example_shape"][0] for e in net["inputs"] if "roi" in e["name"].lower()), None)
        self.try_split, self.why = roi_decision(model, roi_kernel, num_rois)
        self.split = self.stages = self.seg_bytes = None
        if self.try_split:
            self.stages, segs = split_at_roi_pool(model)
            self.seg_bytes = {k: optimize_offline(m.SerializeToString(), threads) for k, m in segs.items()}
            self.split = SplitEngine(net_name, self.stages,
                                     {k: session(b, threads) for k, b in self.seg_bytes.items()}, ins, outs,
                                     threads)

    def forms(self) -> dict[str, object]:
        """Engines by candidate key: ``onnxruntime_<p>`` (one graph), ``onnxruntime+numba_split_<p>``."""
        out = {f"onnxruntime_{self.precision}": self.whole}
        if self.split is not None:
            out[f"onnxruntime+numba_split_{self.precision}"] = self.split
        return out


def probed_graph(model: bytes, embeddings: str) -> bytes:
    """The graph with its output ``embeddings`` [R, D] replaced by ``products`` [R, K] = embeddings @ probes^T,
    ``probes`` [K, D] a new float32 input (``edge.runtime.probes``): the read-outs are taken inside the run,
    and the R x D embeddings never leave it."""
    m = onnx.load_from_string(model)
    g = m.graph
    emb = next(o for o in g.output if o.name == embeddings)
    rows, dim = (d.dim_value or d.dim_param or None for d in emb.type.tensor_type.shape.dim)
    g.input.append(onnx.helper.make_tensor_value_info(PROBES, onnx.TensorProto.FLOAT, [PROBES, dim]))
    g.node.append(onnx.helper.make_node("Gemm", [embeddings, PROBES], [PRODUCTS], transB=1, name="edge_probes"))
    outs = [onnx.helper.make_tensor_value_info(PRODUCTS, onnx.TensorProto.FLOAT, [rows, PROBES])
            if o.name == embeddings else o for o in g.output]
    del g.output[:]
    g.output.extend(outs)
    return m.SerializeToString()


def _probed_form(net_name: str, engine, files: dict[str, bytes], embeddings: str, feeds: dict,
                 threads: int | None, log) -> tuple[dict, bytes | None]:
    """Build and time the probed form of a kept search engine (``probed_graph`` of the graph, or segment, that
    outputs ``embeddings``) against the engine plus the product in numpy, interleaved; (fingerprint entry,
    its graph bytes when kept else None). Kept when faster and equal within float tolerance."""
    seg = probed_segment(engine, embeddings)
    data = probed_graph(files[f"{net_name}.{seg}.ort.onnx" if seg else f"{net_name}.ort.onnx"], embeddings)
    probed = probed_engine(engine, session(data, threads), embeddings)
    dim = next(s for s in engine.outputs if s.name == embeddings).dim(1)      # static: the probes' width
    # the tracker's probes: the IoU head's weight and the box regression's 4 columns
    pfeeds = {**feeds, PROBES: np.random.default_rng(0).standard_normal((5, dim)).astype(np.float32)}
    ref, got = run_probed(engine, embeddings, pfeeds)[PRODUCTS], probed.run(pfeeds)[PRODUCTS]
    err = float(np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-12))
    t = fastest_ms({"embeddings_then_numpy": lambda: run_probed(engine, embeddings, pfeeds),
                    "probed": lambda: probed.run(pfeeds)}, warmup_runs=2, warmup_s=0.0, block=3, min_runs=9,
                   max_runs=48, min_s=2.0)
    kept = t["probed"] < t["embeddings_then_numpy"] and err <= 1e-4
    name = f"{net_name}.{seg}.probed.ort.onnx" if seg else f"{net_name}.probed.ort.onnx"
    log(f"{net_name}: probed read-outs inside the graph {t['probed']:.2f} ms vs embeddings out + numpy product "
        f"{t['embeddings_then_numpy']:.2f} ms (relative error {err:.1e}): "
        f"{'kept as ' + name if kept else 'not kept'}")
    entry = {"kept": kept, "segment": seg, "timings_ms": {k: round(v, 4) for k, v in t.items()},
             "max_rel_err": err}
    if kept:
        entry["file"] = name
    return entry, data if kept else None


def build_network(export_dir: Path, out_dir: Path, net_name: str, net: dict, precision: str,
                  threads: int | None, roi_kernel: str = "auto", log=print, probe_output: str | None = None) -> dict:
    """Build one network; writes its files into ``out_dir``; returns its fingerprint entry.

    Every candidate engine ({requested precision, fp32} x {one graph, numba split when tried}) is timed in
    one interleaved timing (``edge.timing.fastest_ms``); each precision is judged by its fastest form (``--roi-kernel numba``
    restricts that to the split), the requested precision is kept unless fp32 is faster, and the kept
    precision's form is the faster one (or the forced one). ``probe_output`` (a tracker's search embeddings):
    also try the kept form with the read-outs inside (``probed_graph``; kept when faster, as the composite
    ``search_probed`` the tracker then calls)."""
    feeds, ref = load_examples(export_dir, net_name)
    cands = {precision: _Candidate(precision, *source_graph(export_dir, net_name, net, precision), net_name,
                                   net, threads, roi_kernel)}
    if precision != "fp32":
        cands["fp32"] = _Candidate("fp32", *source_graph(export_dir, net_name, net, "fp32"), net_name, net,
                                   threads, roi_kernel)
    engines = {k: e for c in cands.values() for k, e in c.forms().items()}
    # the reference, timed in the same rotation (never kept): what a user gets without this build, a default
    # onnxruntime session on the raw export (its own online optimisations, its default threads)
    ins, outs = specs(net)
    plain = OrtEngine(net_name, session(export_dir / net["file"], None, optimized_offline=False), ins, outs)
    timed = {**engines, PLAIN: plain}
    # fastest of interleaved blocks of 3 (after one settling call), up to 48 calls each: on a loaded machine
    # the minimum of 18 calls still flipped decisions between rebuilds (template split 7.2 / 15.9 ms)
    timings = fastest_ms({k: (lambda e=e: e.run(feeds)) for k, e in timed.items()}, warmup_runs=2,
                         warmup_s=0.0, block=3, min_runs=9, max_runs=48, min_s=6.0 / max(len(timed), 1))

    def best(c: _Candidate) -> tuple[float, str]:
        forms = {"split": f"onnxruntime+numba_split_{c.precision}", "one graph": f"onnxruntime_{c.precision}"}
        if roi_kernel == "numba" and c.split is not None:
            forms.pop("one graph")
        return min((timings[k], form) for form, k in forms.items() if k in timings)

    notes = []
    chosen = cands[precision]
    if precision != "fp32":
        (a, fa), (b, fb) = best(cands[precision]), best(cands["fp32"])
        if a >= b and precision == "fp16":
            raise UserError(f"fp16 is slower than fp32 on this CPU for network {net_name!r} ({a:.2f} ms vs "
                            f"{b:.2f} ms, best forms, onnxruntime {ort.__version__}): build with --precision "
                            f"fp32 (or int8)")
        if precision == "int8" and not int8_pays(a, b):
            msg = (f"{net_name}: int8 does not pay on this CPU ({a:.2f} ms, {fa}, vs fp32 {b:.2f} ms, {fb}; "
                   f"needs x{PAYS_RATIO}): keeping this network in fp32")
            log(msg)
            notes.append(msg)
            chosen = cands["fp32"]
    p = chosen.precision
    files = {f"{net_name}.ort.onnx": chosen.opt}
    entry = {"kind": "onnxruntime", "precision": p, "source": chosen.desc,
             "source_sha256": sha256_bytes(chosen.src), "onnx_sha256": net.get("sha256"),
             "roi_kernel_decision": chosen.why}
    if chosen.cleanups:
        entry["graph_cleanups"] = dict(chosen.cleanups)
    engine = chosen.whole
    if chosen.split is not None:
        t_whole, t_split = timings[f"onnxruntime_{p}"], timings[f"onnxruntime+numba_split_{p}"]
        timings["onnxruntime+numba_split"] = t_split
        faster = t_split < t_whole
        log(f"{net_name}: numba ROI split {t_split:.2f} ms vs one onnxruntime graph {t_whole:.2f} ms ({p}): "
            f"{'split kept' if faster or roi_kernel == 'numba' else 'one graph kept'}")
        if faster or roi_kernel == "numba":
            stages = [dict(st) for st in chosen.stages]
            for st in stages:
                if st["kind"] == "onnxruntime":
                    st["file"] = f"{net_name}.{st['segment']}.ort.onnx"
            files = {st["file"]: chosen.seg_bytes[st["segment"]] for st in stages if st["kind"] == "onnxruntime"}
            entry.update(kind="onnxruntime+numba", stages=stages)
            engine = chosen.split
        entry["numba_split_faster"] = faster
    if probe_output is not None:
        entry["probed"], data = _probed_form(net_name, engine, files, probe_output, feeds, threads, log)
        if data is not None:
            files[entry["probed"]["file"]] = data
    for name, data in files.items():
        atomic_write_bytes(out_dir / name, data)
    kept = f"onnxruntime+numba_split_{p}" if entry["kind"] == "onnxruntime+numba" else f"onnxruntime_{p}"
    ratio = round(timings[PLAIN] / timings[kept], 3) if timings[kept] > 0 else 0.0
    entry["vs_plain_onnxruntime"] = ratio
    msg = adds_message(net_name, kept, timings, chosen.cleanups, ratio)
    log(msg)
    if ratio < PAYS_RATIO:
        notes.append(msg)
    entry["files"] = {name: sha256_bytes(data) for name, data in files.items()}
    entry["timings_ms"] = {k: round(v, 4) for k, v in timings.items()}
    entry["max_abs_err_vs_pytorch_example"] = _max_err(engine, feeds, ref)
    if notes:
        entry["notes"] = notes
    return entry
