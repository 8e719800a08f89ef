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

from edge.contract import Manifest
from edge.runtime.base import Engines
from edge.runtime.record import recording

from .dataset import Segment, Source, iter_segments, plan

TEMPLATE_EVERY = 4  # re-init a throwaway tracker on the tracked box every N frames (template samples)


def fp32_engines(export_dir: str | Path, manifest: dict, threads: int = 2,
                 files: Mapping[str, str | Path] | None = None, precision: str = "fp32") -> Engines:
    """The exported fp32 graphs (or ``files[network]`` instead, e.g. the int8 Q/DQ graphs) as onnxruntime
    engines (functions inlined by onnxruntime, all graph optimisations)."""
    from edge.runtime.ort_backend import OrtEngine, session
    typed = Manifest.from_dict(manifest, str(Path(export_dir) / "model.json"))
    nets = {}
    for name, net in typed.networks.items():
        path = Path((files or {}).get(name) or Path(export_dir) / net.file)
        sess = session(path, threads, optimized_offline=False)
        nets[name] = OrtEngine(name, sess, list(net.inputs), list(net.outputs))
    return Engines(nets, typed, backend="onnxruntime", precision=precision)


def task_of(manifest: dict) -> str:
    """``tracker`` or ``classifier`` (``edge.contract``'s one rule)."""
    return Manifest.from_dict(manifest).kind


def segment_length(manifest: dict, task: str) -> int:
    if task == "classifier":
        return Manifest.from_dict(manifest).config.window + 1
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
    rec, recorders = recording(engines, limit=None)
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
    return {n: r.feeds for n, r in recorders.items()}


def collect_classifier(engines: Engines, sources: Sequence[Source], segs: Sequence[Segment], seed: int,
                       tick: Callable[[int], None]) -> dict[str, list]:
    """Each segment as one stream through a fresh classifier session (the protocol of ``edge run``)."""
    from edge.classify.runtime import ClassifierRuntime
    from edge.stream.sources import Frame
    rec, recorders = recording(engines, limit=None)
    rt = ClassifierRuntime(rec)
    for seg, frames in iter_segments(sources, segs):
        sess = rt.session()
        for j, image in enumerate(frames):
            frame = Frame(0, j, float(j), image, 0.0)
            rt.step([(sess, sess.prepare(frame), frame)])
            tick(1)
    return {n: r.feeds for n, r in recorders.items()}


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
