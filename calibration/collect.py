"""Representative network inputs drawn THROUGH THE REAL RUNTIME: the fp32 exported graphs run behind the
torch-free tracker / classifier logic, and a recording wrapper keeps every feed each network receives.

- tracker (``edge.tracking.SiameseTracker``): per segment the tracker is initialised on a box (ground truth
  when the folder has it, else a seeded box near the middle of the frame) and tracks the segment; ``search``
  sees the real search crops + candidate rois + template embedding, ``template`` the init crops (plus
  re-inits on the tracked box every few frames, for more template samples).
- classifier (``edge.classify.runtime.ClassifierRuntime``): per segment a fresh stream; ``encoder`` sees the
  resized frames + DIS flow, ``step`` the window's features and the recurrent states h, c as they evolve.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from edge.runtime.base import Engines, TensorSpec

from .dataset import Segment, Source, iter_segments, plan

TEMPLATE_EVERY = 4  # re-init a throwaway tracker on the tracked box every N frames (template samples)


class Recorder:
    """An ``Engine`` that keeps a copy of every feed before running the wrapped engine."""

    def __init__(self, engine, sink: list):
        self.engine, self.sink = engine, sink
        self.name, self.inputs, self.outputs = engine.name, engine.inputs, engine.outputs

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.sink.append({k: np.array(v, dtype=np.float32, copy=True) for k, v in feeds.items()})
        return self.engine.run(feeds)


def _specs(entries: Sequence[dict]) -> list[TensorSpec]:
    return [TensorSpec(e["name"], tuple(e["shape"]), e.get("dtype", "float32")) for e in entries]


def fp32_engines(export_dir: str | Path, manifest: dict, threads: int = 2,
                 files: Mapping[str, str | Path] | None = None, precision: str = "fp32") -> Engines:
    """The exported fp32 graphs (or ``files[network]`` instead, e.g. the int8 Q/DQ graphs) as onnxruntime
    engines (functions inlined by onnxruntime, all graph optimisations)."""
    from edge.runtime.ort_backend import OrtEngine, session
    nets = {}
    for name, net in manifest["networks"].items():
        path = Path((files or {}).get(name) or Path(export_dir) / net.get("file", f"{name}.onnx"))
        sess = session(path, threads, optimized_offline=False)
        nets[name] = OrtEngine(name, sess, _specs(net["inputs"]), _specs(net["outputs"]))
    return Engines(nets, manifest, backend="onnxruntime", precision=precision)


def recording(engines: Engines) -> tuple[Engines, dict[str, list]]:
    sinks = {n: [] for n in engines.networks}
    rec = Engines({n: Recorder(e, sinks[n]) for n, e in engines.networks.items()}, engines.manifest,
                  engines.backend, engines.precision)
    return rec, sinks


def task_of(manifest: dict) -> str:
    nets = set(manifest.get("networks", {}))
    if {"template", "search"} <= nets:
        return "tracker"
    if {"encoder", "step"} <= nets:
        return "classifier"
    raise ValueError(f"model.json names networks {sorted(nets)}: not a tracker (template+search) "
                     f"or classifier (encoder+step) export")


def segment_length(manifest: dict, task: str) -> int:
    cfg = manifest.get("config", {})
    if task == "classifier":
        return int(cfg.get("clip_frames") or int(cfg.get("clip_len", 8)) + 1)
    return 16


def init_box(source: Source, seg: Segment, frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ground truth at the segment start when there is some, else a seeded box in the middle of the frame."""
    if source.boxes is not None and seg.start < len(source.boxes):
        b = source.boxes[seg.start]
        if b[2] > 1 and b[3] > 1:
            return b.astype(np.float64)
    h, w = frame.shape[:2]
    bw, bh = w * rng.uniform(0.1, 0.3), h * rng.uniform(0.15, 0.4)
    cx, cy = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7)
    return np.array([cx - bw / 2, cy - bh / 2, bw, bh])


def collect_tracker(engines: Engines, sources: Sequence[Source], segs: Sequence[Segment], seed: int,
                    tick: Callable[[int], None]) -> dict[str, list]:
    from edge.tracking import SiameseTracker
    rec, sinks = recording(engines)
    rng = np.random.default_rng(seed + 1)
    for seg, frames in iter_segments(sources, segs):
        trk = SiameseTracker(rec)
        trk.init(frames[0], init_box(sources[seg.source], seg, frames[0], rng))
        tick(1)
        for i, f in enumerate(frames[1:], 1):
            box = trk.update(f)
            if i % TEMPLATE_EVERY == 0 and box[2] > 2 and box[3] > 2:
                try:
                    SiameseTracker(rec).init(f, box)
                except ValueError:  # box drifted out of the frame
                    pass
            tick(1)
    return sinks


def collect_classifier(engines: Engines, sources: Sequence[Source], segs: Sequence[Segment], seed: int,
                       tick: Callable[[int], None]) -> dict[str, list]:
    from edge.classify.runtime import ClassifierRuntime
    rec, sinks = recording(engines)
    rt = ClassifierRuntime(rec)
    for seg, frames in iter_segments(sources, segs):
        stream = rt.new_stream()
        for f in frames:
            (feats, att), = rt.encode([rt.prepare(stream, f)])
            due = rt.push(stream, feats, att)   # the window (T features) when one is due
            if due is not None and due is not False:
                rt.classify([due if isinstance(due, list) else list(stream.features)])
            tick(1)
    return sinks


def collect(export_dir: str | Path, manifest: dict, sources: Sequence[Source], frames: int, seed: int,
            progress: bool = True) -> dict[str, list]:
    """Calibration samples per network (deterministic for ``seed``), with a tqdm progress bar."""
    from tqdm import tqdm
    task = task_of(manifest)
    segs = plan(sources, frames, segment_length(manifest, task), seed)
    engines = fp32_engines(export_dir, manifest)
    total = sum(s.length for s in segs)
    with tqdm(total=total, desc=f"calibration frames ({task})", unit="frame", disable=not progress,
              leave=False) as bar:
        fn = collect_tracker if task == "tracker" else collect_classifier
        sinks = fn(engines, sources, segs, seed, bar.update)
    empty = [n for n, v in sinks.items() if not v]
    if empty:
        raise ValueError(f"the runtime never ran network(s) {empty} on this data; use longer videos "
                         f"or more --frames")
    return sinks
