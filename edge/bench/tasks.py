"""Task metrics through the shipped runtime logic (torch-free): the tracker on OTB/GOT-10k sequences
(one-pass evaluation, got10k metrics from ``edge.eval.otb``) and the classifier on labelled clips.

A task is split into ``units`` (a sequence; a group of clips) so the benchmark can run the rows in turn
unit by unit: ``run_unit(engines, i)`` gives a partial record, ``finish(partials)`` a :class:`TaskResult`
(metrics, per-frame wall times for end-to-end FPS, per-frame/per-clip outputs for agreement with the
reference); ``run(engines)`` does all units of one row.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from edge.runtime.base import Engines


@dataclass
class TaskResult:
    metrics: dict
    frame_times: list[float]
    outputs: list = field(default_factory=list)


@dataclass
class TrackSequence:
    """One loaded sequence: frames (HxWx3 uint8 BGR) and ground-truth boxes [N, 4] (x, y, w, h)."""
    name: str
    frames: list[np.ndarray]
    gt: np.ndarray
    attributes: tuple[str, ...] = ()      # OTB-style tags (edge.data.sequences.read_attributes)
    index: np.ndarray | None = None       # each frame's index in its stream when the loop dropped frames


@dataclass
class _RealRun:
    """A real-footage unit's partial record: the sequence and the boxes (scored in ``finish``)."""
    name: str
    boxes: np.ndarray


class TrackerTask:
    """OTB one-pass evaluation (got10k): init on the first ground-truth box, ``update`` on every later
    frame; success curve over IoU thresholds, precision curve over centre-error thresholds, per sequence,
    averaged over sequences; FPS from the ``update`` wall times (images decoded beforehand).

    ``real``: sequences of real footage with boxes drawn on some frames (``edge.bench.real_tracking``), run as
    further units and reported apart (``real_auc``, ``real_precision20``, ``real_sequences``: see
    :func:`real_metrics`); the main metrics, FPS and box agreement come from ``sequences`` alone. ``params``:
    tracker parameters over each model's own (``edge.tracking.TrackerParams``), the same for every row."""

    def __init__(self, sequences: Sequence[TrackSequence], description: str,
                 real: Sequence[TrackSequence] = (), params: dict | None = None):
        if not sequences:
            raise ValueError("tracker benchmark: no sequences")
        self.sequences, self.description, self.real = list(sequences), description, list(real)
        self.params = dict(params or {})

    @property
    def units(self) -> int:
        return len(self.sequences) + len(self.real)

    def run_unit(self, engines: Engines, i: int) -> tuple:
        """One-pass run of sequence ``i``: (name, evaluation, update times, boxes); past the task's own
        sequences, of a real one (a ``_RealRun``)."""
        from edge.eval import otb
        from edge.tracking import SiameseTracker
        real = i >= len(self.sequences)
        seq = self.real[i - len(self.sequences)] if real else self.sequences[i]
        boxes, t = otb.run_sequence(SiameseTracker(engines, self.params or None), seq.frames, seq.gt[0], seq.index)
        if real:
            return _RealRun(seq.name, boxes)
        ev = otb.evaluate(boxes, seq.gt)
        ev["fps"] = (len(t) - 1) / float(np.sum(t[1:])) if len(t) > 1 else None
        return seq.name, ev, [float(x) for x in t[1:]], boxes      # t[0] is init, not an update

    def finish(self, partials: Sequence[tuple]) -> TaskResult:
        real = {p.name: p.boxes for p in partials if isinstance(p, _RealRun)}
        partials = [p for p in partials if not isinstance(p, _RealRun)]
        metrics = summarize_sequences({name: ev for name, ev, _, _ in partials},
                                      {s.name: s.attributes for s in self.sequences})
        times = [x for _, _, t, _ in partials for x in t]
        metrics["fps"] = len(times) / sum(times) if times else None
        if real:
            metrics.update(real_metrics({s.name: (real[s.name], s.gt) for s in self.real if s.name in real}))
        return TaskResult(metrics, times, [b for *_, b in partials])

    def run(self, engines: Engines) -> TaskResult:
        return self.finish([self.run_unit(engines, i) for i in range(self.units)])

    def agreement(self, result: TaskResult, ref: TaskResult) -> dict:
        """Mean per-frame IoU of this row's boxes with the reference's boxes (1 = identical tracks)."""
        from edge.eval import otb
        ious = np.concatenate([otb.iou(a[1:], b[1:]) for a, b in zip(result.outputs, ref.outputs)])
        return {"box_iou_vs_reference": float(ious.mean()) if ious.size else None}


def real_metrics(runs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Real footage: {name: (boxes [N, 4], drawn boxes [N, 4], NaN where none)} -> ``real_auc`` /
    ``real_precision20`` (means over the sequences) and ``real_sequences`` (each one's AUC, precision@20 and
    success at IoU 0.5), scored on the drawn frames except the init frame (that box is the input)."""
    from edge.eval import otb
    seq = {}
    for name, (boxes, gt) in runs.items():
        gt = np.array(gt, np.float64)
        gt[0] = np.nan
        ev = otb.evaluate(boxes, gt)
        seq[name] = {"auc": ev["auc"], "precision20": ev["precision"], "success50": float(np.mean(ev["ious"] > 0.5)),
                     "frames": int(len(ev["ious"]))}
    if not seq:
        return {}
    return {"real_auc": float(np.mean([v["auc"] for v in seq.values()])),
            "real_precision20": float(np.mean([v["precision20"] for v in seq.values()])),
            "real_sequences": seq}


def summarize_sequences(evals: dict[str, dict], attributes: dict[str, Sequence[str]] | None = None) -> dict:
    """got10k's OTB report over sequences: success and precision curves averaged over sequences (each
    from ``edge.eval.otb.evaluate``), AUC = mean of the averaged success curve, precision = its value at
    20 px; with ``attributes`` (sequence -> tags) the same per attribute over its sequences."""
    from edge.eval.otb import summarize_by_attribute
    if not evals:
        raise ValueError("no sequences evaluated")
    s_curve = np.mean([e["success_curve"] for e in evals.values()], axis=0)
    p_curve = np.mean([e["precision_curve"] for e in evals.values()], axis=0)
    return {"auc": float(np.mean(s_curve)), "precision20": float(p_curve[20]),
            "attributes": summarize_by_attribute(evals, attributes or {}),
            "success_curve": s_curve.tolist(), "precision_curve": p_curve.tolist(),
            "sequences": {name: {"auc": float(e["auc"]), "precision20": float(e["precision"]),
                                 "frames": int(len(e["ious"])), "fps": e.get("fps")}
                          for name, e in evals.items()}}


@dataclass
class LabelledClip:
    """One labelled clip: frames (HxWx3 uint8 BGR, T+1 of them) and its class index."""
    name: str
    frames: list[np.ndarray]
    label: int


class ClassifierTask:
    """Top-1 accuracy on labelled clips through the streaming classifier (``ClassifierRuntime`` and a
    session per clip): DIS flow and the encoder on each frame (the first frame only seeds the flow), then the
    window of the last T frames from zero state. End-to-end time per frame = (flow + encoder for every frame
    + the window) / T."""

    per_unit = 10

    def __init__(self, clips: Sequence[LabelledClip], description: str):
        if not clips:
            raise ValueError("classifier benchmark: no clips")
        self.clips, self.description = list(clips), description

    @property
    def units(self) -> int:
        return -(-len(self.clips) // self.per_unit)

    def run(self, engines: Engines) -> TaskResult:
        return self.finish([self.run_unit(engines, i) for i in range(self.units)])

    def finish(self, partials: Sequence[tuple]) -> TaskResult:
        preds = [k for p, _, _ in partials for k in p]
        times = [x for _, t, _ in partials for x in t]
        correct = sum(c for *_, c in partials)
        metrics = {"accuracy": correct / len(preds), "fps": len(times) / sum(times) if times else None,
                   "clips": len(preds)}
        return TaskResult(metrics, times, preds)

    def run_unit(self, engines: Engines, i: int) -> tuple:
        """Clips ``i * per_unit ...``: (predicted classes, per-frame times, number correct). Each clip runs
        through a fresh classifier session as one stream does in ``edge run`` (batch 1 per frame): the
        frame before the last T only seeds the flow, the window is the last T frames."""
        from edge.classify.runtime import ClassifierRuntime
        from edge.stream.sources import Frame
        preds, times, correct = [], [], 0
        for clip in self.clips[i * self.per_unit:(i + 1) * self.per_unit]:
            T = min(max(len(clip.frames) - 1, 1), engines.config.window)
            rt = ClassifierRuntime(engines, window=T, stride=T, sample_fps=0)   # clips are at the model's clock
            sess = rt.session()
            frames = clip.frames[-(T + 1):]
            t0 = time.perf_counter()
            sess.prime(frames[0])
            for j, image in enumerate(frames[1:], 1):
                frame = Frame(0, j, float(j), image, 0.0)
                rt.step([(sess, sess.prepare(frame), frame)])
            dt = time.perf_counter() - t0
            times.extend([dt / T] * T)
            k = sess.last.index
            preds.append(k)
            correct += int(k == clip.label)
        return preds, times, correct

    def agreement(self, result: TaskResult, ref: TaskResult) -> dict:
        """Fraction of clips whose predicted class equals the reference's."""
        same = [a == b for a, b in zip(result.outputs, ref.outputs)]
        return {"prediction_agreement": float(np.mean(same)) if same else None}
