"""Streaming action classifier on engines (torch-free): ``ClassifierRuntime`` (the engines and the batched
step) and one ``ClassifierSession`` per stream (preprocessing, ring buffer, windows, hysteresis, last label).

The classifier sees a stream's frames at the model's own clock (``edge.classify.sampling``: the manifest's
``sample_fps``, by timestamp); frames in between get no flow, no encoder and carry the last label. Per sampled
frame the ``encoder`` engine (rgb + flow -> ``features``, ``attention``) runs once; its features go
into the session's ring buffer of the last ``window`` (T) frames. Every ``stride`` frames, once T features
are there, the window runs through the ConvLSTM ``step`` engine from zero state (h = c = 0, T steps, host
loop); the last step's ``logits`` give the label and its calibrated score (``edge.classify.decision``:
temperature, open-set rule, per-class alarm rules from the manifest). Overlapping windows never recompute the
encoder. ``Hysteresis`` turns per-window labels into ``ActionStart`` / ``ActionEnd`` events.

Protocol shared with ``edge.tracking.session`` (see ``edge.stream.pipeline``): ``session.prepare(frame)``
in the stream's preprocessing thread (resize + DIS flow); ``runtime.step(items)`` in the inference thread,
batched across streams (encoder frames and ConvLSTM windows each run as one batch where the engine's batch
axis is dynamic); ``session.close(last_frame)`` ends an open action.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from edge.classify.decision import Decider, Hysteresis, softmax  # noqa: F401 (Hysteresis, softmax re-exported)
from edge.classify.preprocess import FrameStream
from edge.classify.sampling import FrameSampler, sample_rate
from edge.errors import UserError
from edge.events import Event
from edge.runtime.base import Engine, Engines
from edge.runtime.recurrent import WINDOW, unroll


def batch_capacity(engine: Engine) -> int | None:
    """How many items the engine's first input takes at once: None = dynamic batch axis, else its size."""
    shape = engine.inputs[0].shape if engine.inputs else ()
    if not shape:
        return 1
    b = shape[0]
    return None if (b is None or isinstance(b, str) or (isinstance(b, int) and b < 0)) else int(b)


def run_batched(engine: Engine, feeds: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Run ``engine`` on a list of single-item feeds (batch 1 each), batching as its batch axis allows;
    returns one output dict (batch 1 each) per item, in order."""
    cap = batch_capacity(engine)
    chunk = len(feeds) if cap is None else max(cap, 1)
    out: list[dict[str, np.ndarray]] = []
    for s in range(0, len(feeds), chunk):
        part = feeds[s:s + chunk]
        n = len(part)
        joined = {k: np.concatenate([f[k] for f in part]) if n > 1 else part[0][k] for k in part[0]}
        if cap is not None and cap > n:       # fixed batch larger than what we have: pad by repetition
            joined = {k: np.concatenate([v] + [v[-1:]] * (cap - n)) for k, v in joined.items()}
        res = engine.run(joined)
        out.extend({k: v[i:i + 1] for k, v in res.items()} for i in range(n))
    return out


@dataclass
class WindowResult:
    """The classification of one window ending at ``frame``."""
    frame: int
    label: str
    index: int
    score: float                  # calibrated probability of ``index`` (``edge.classify.decision``)
    logits: np.ndarray
    probs: np.ndarray | None = None
    rejected: bool = False        # the open-set rule said "none of my classes" (label ``unknown``)


@dataclass
class ClassifierUpdate:
    """The classifier's state after one frame: the latest window's label and score, the attention map."""
    label: str | None
    label_score: float | None
    attention: np.ndarray | None
    events: list[Event] = field(default_factory=list)
    action: str | None = None     # the event in progress after this frame (alarm rules + hysteresis), else None


class ClassifierSession:
    """One stream's classifier state. ``prepare`` (the preprocessing thread) owns the flow state; the ring
    buffer, window counter, hysteresis and last label belong to the inference thread (``runtime.step``)."""

    def __init__(self, runtime: "ClassifierRuntime") -> None:
        self.runtime = runtime
        cfg = runtime.cfg
        self.prep = FrameStream(cfg.input_size, cfg.flow_preset, cfg.flow_bound)
        self.sampler = FrameSampler(runtime.sample_fps)
        self.window, self.stride = runtime.window, runtime.stride
        self.hysteresis = runtime.decider.hysteresis(**runtime.hysteresis_args)
        self.features: deque = deque(maxlen=self.window)
        self.attention: np.ndarray | None = None
        self.since = 0                     # frames pushed since the last window ran
        self.started = False               # a window has run since the last reset
        self.last: WindowResult | None = None

    # -- preprocessing thread ----------------------------------------------------------------------
    def prepare(self, frame) -> dict[str, np.ndarray] | None:
        """Frame -> encoder feeds (batch 1): resize, DIS flow from this stream's previously sampled frame; the
        flow restarts from zero after a reconnect. None when the model's clock skips this frame."""
        if getattr(frame, "reconnected", False):
            self.prep.reset()
            self.sampler.reset()
        if not self.sampler(getattr(frame, "timestamp", None)):
            return None
        rgb, flow = self.prep(frame.image if hasattr(frame, "image") else frame)
        return dict(zip(self.runtime.cfg.encoder_inputs, (rgb, flow)))

    def prime(self, image: np.ndarray) -> None:
        """Seed the optical flow with ``image`` without classifying it (a clip's first frame)."""
        self.prep(image)

    # -- inference thread --------------------------------------------------------------------------
    def reset_window(self) -> None:
        """Empty the feature ring (after a reconnect): the next window needs T new frames."""
        self.features.clear()
        self.since, self.started = 0, False

    def push(self, features: np.ndarray, attention: np.ndarray | None) -> list[np.ndarray] | None:
        """Add one frame's features; returns the window (T features, oldest first) when one is due: the
        first time T frames are there, then every ``stride`` frames."""
        self.features.append(features)
        if attention is not None:
            self.attention = attention
        self.since += 1
        if len(self.features) == self.window and (not self.started or self.since >= self.stride):
            self.since, self.started = 0, True
            return list(self.features)
        return None

    def close(self, last_frame: int) -> list[Event]:
        """End an open action at the end of the stream."""
        return self.hysteresis.close(last_frame)


class ClassifierRuntime:
    """The classifier over ``Engines`` with networks ``encoder`` and ``step`` (``edge.contract.ClassifierConfig``).

    ``window``/``stride`` (in sampled frames) and ``sample_fps`` default to the manifest's (``sample_fps=0``:
    every frame, e.g. clips already at the model's rate); ``hysteresis`` overrides ``Hysteresis`` defaults."""

    def __init__(self, engines: Engines, window: int | None = None, stride: int | None = None,
                 hysteresis: dict | None = None, alarms: str | Path | dict | None = None,
                 sample_fps: float | None = None) -> None:
        if engines.kind != "classifier":
            raise UserError(f"classifier engines needed (encoder + step), got {engines.kind} engines "
                            f"({', '.join(engines.networks)})")
        self.engines, self.cfg = engines, engines.config
        self.encoder, self.step_engine = engines["encoder"], engines["step"]
        self.window = int(window if window is not None else self.cfg.window)
        self.stride = int(stride if stride is not None else (self.cfg.stride if window is None
                                                              else max(1, self.window // 2)))
        if self.window < 1 or self.stride < 1:
            raise UserError(f"classifier window and stride must be >= 1 (got {self.window}, {self.stride})")
        try:
            self.sample_fps = sample_rate(self.cfg.sample_fps if sample_fps is None else sample_fps)
        except ValueError as e:
            raise UserError(str(e)) from None
        self.labels = list(self.cfg.classes)
        self.hysteresis_args = dict(hysteresis or {})
        # calibration, open-set rule and per-class alarm rules: the manifest's, ``alarms`` overriding its rules
        self.decider = Decider.from_config({"calibration": self.cfg.calibration, "alarms": self.cfg.alarms},
                                           self.labels, alarms)

    def session(self) -> ClassifierSession:
        return ClassifierSession(self)

    # -- the inference stage -----------------------------------------------------------------------
    def step(self, items: Sequence[tuple[ClassifierSession, dict, object]]) -> list[ClassifierUpdate]:
        """One update per ``(session, encoder feeds, frame)`` item, in order: the encoder on every frame at
        once, features pushed per stream, the due windows through the ConvLSTM at once, then each stream's
        label carried forward in frame order (its later frames in the batch see its newest window). Items whose
        feeds are None (frames the model's clock skipped) only carry the label forward."""
        if not items:
            return []
        before = {id(sess): (sess.last, sess.hysteresis.active) for sess, _, _ in items}
        sampled = [k for k, (_, feeds, _) in enumerate(items) if feeds is not None]
        encoded = dict(zip(sampled, self.encode([items[k][1] for k in sampled]))) if sampled else {}
        due: list[tuple[int, list]] = []
        for k, (sess, _, frame) in enumerate(items):
            if getattr(frame, "reconnected", False):
                sess.reset_window()
            if k not in encoded:
                continue
            win = sess.push(*encoded[k])
            if win is not None:
                due.append((k, win))
        windows: dict[int, tuple[tuple[WindowResult, str | None], list[Event]]] = {}
        if due:
            for (k, _), lg in zip(due, self.classify([w for _, w in due])):
                sess, _, frame = items[k]
                res, events = self.result(sess, lg, frame.index)
                windows[k] = (res, sess.hysteresis.active), events
        current = dict(before)
        out = []
        for k, (sess, _, _) in enumerate(items):
            events: list[Event] = []
            if k in windows:
                current[id(sess)], events = windows[k]
            last, action = current[id(sess)]
            out.append(ClassifierUpdate(last.label if last else None, last.score if last else None,
                                        attention_map(sess.attention), events, action))
        return out

    def encode(self, feeds: Sequence[dict[str, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Encoder on several frames at once -> [(features [1,C,H,W], attention or None)] per frame."""
        outs = run_batched(self.encoder, list(feeds))
        return [(o["features"], o.get("attention")) for o in outs]

    def classify(self, windows: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        """ConvLSTM over windows (each T features [1,C,H,W]) from zero state -> logits [B, K]."""
        cap = batch_capacity(self.step_engine)
        if cap is not None and cap != len(windows):
            return np.concatenate([self.classify(windows[i:i + 1]) for i in range(len(windows))]) \
                if cap == 1 else self._classify_padded(windows, cap)
        stacked = np.stack([np.concatenate(w) for w in windows])        # [B, T, C, H, W]
        window = self.engines.composites.get(WINDOW)
        if window is not None:               # the whole window in one call (a served classifier: one request)
            return window.run({"features": stacked})["logits"]
        return unroll(self.step_engine, stacked)

    def _classify_padded(self, windows, cap):
        res = []
        for s in range(0, len(windows), cap):
            part = list(windows[s:s + cap])
            n = len(part)
            part += [part[-1]] * (cap - n)
            res.append(self.classify(part)[:n])
        return np.concatenate(res)

    def result(self, session: ClassifierSession, logits: np.ndarray, frame: int) -> tuple[WindowResult, list[Event]]:
        """Logits [K] of a window ending at ``frame`` -> the session's new label (calibrated score, open-set
        rule) + hysteresis events."""
        d = self.decider.decide(logits)
        res = WindowResult(frame=frame, label=d.label, index=d.index, score=d.score, logits=np.asarray(logits),
                           probs=d.probs, rejected=d.rejected)
        session.last = res
        return res, session.hysteresis.update(res.label, res.score, frame)


def attention_map(attention: np.ndarray | None) -> np.ndarray | None:
    """Encoder attention output (any of [1,1,h,w], [1,h,w], [1,h*w]) -> [h, w] float32 in [0, 1]."""
    if attention is None:
        return None
    a = np.asarray(attention, np.float32).reshape(-1) if attention.ndim <= 2 else \
        np.asarray(attention, np.float32).reshape(attention.shape[-2], attention.shape[-1])
    if a.ndim == 1:
        side = int(round(np.sqrt(a.size)))
        if side * side != a.size:
            return None
        a = a.reshape(side, side)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


