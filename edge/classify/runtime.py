"""Streaming action classifier on engines (torch-free).

Per frame the ``encoder`` engine (rgb + flow -> ``features``, ``attention``) runs once; its features go
into a ring buffer of the last ``window`` (T) frames. Every ``stride`` frames, once T features are there,
the window runs through the ConvLSTM ``step`` engine from zero state (h = c = 0, T steps, host loop);
the last step's ``logits`` give the label and its calibrated score (``edge.classify.decision``: temperature,
open-set rule, per-class alarm rules from the manifest). Overlapping windows never recompute the encoder.
``Hysteresis`` turns per-window labels into ``action_start`` / ``action_end`` events.

Encoder and step calls take a batch: frames (or windows) of several streams run together when the
engine's batch axis is dynamic.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edge.classify.decision import BACKGROUND, Decider, Hysteresis, softmax  # noqa: F401 (re-exported)
from edge.runtime.base import Engine, Engines


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
class ClassifierStream:
    """One stream's classifier state: preprocessing state, feature ring buffer, hysteresis."""
    prep: Callable
    window: int
    stride: int
    hysteresis: Hysteresis
    features: deque = field(default_factory=deque)
    attention: np.ndarray | None = None
    since: int = 0                     # frames pushed since the last window ran
    started: bool = False              # a window has run since the last reset
    last: WindowResult | None = None

    def reset_window(self) -> None:
        """Empty the feature ring (after a reconnect): the next window needs T new frames."""
        self.features.clear()
        self.since, self.started = 0, False

    def reset(self) -> None:
        """Forget the past: empty ring, flow restarts from zero."""
        self.reset_window()
        self.prep.reset()


class ClassifierRuntime:
    """The classifier over ``Engines`` with networks ``encoder`` and ``step``.

    Constants come from the manifest config (``window``/``T``, ``stride``, ``input_size``, ``labels``)
    unless given. ``prepare`` runs in the preprocessing stage (per stream, flow + resize); ``encode`` and
    ``classify`` run in the inference stage, batched across streams.
    """

    def __init__(self, engines: Engines, window: int | None = None, stride: int | None = None,
                 labels: Sequence[str] | None = None, input_size: int | None = None,
                 hysteresis: dict | None = None, flow_preset: str = "ultrafast",
                 alarms: str | Path | dict | None = None) -> None:
        cfg = dict(engines.config or {})
        self.engines = engines
        self.encoder, self.step = engines["encoder"], engines["step"]
        self.window = int(window or _first(cfg, "window", "T", "clip_len", "seq_len", default=8))
        self.stride = int(stride or _first(cfg, "stride", default=max(1, self.window // 2)))
        if self.window < 1 or self.stride < 1:
            raise ValueError(f"classifier window and stride must be >= 1 (got {self.window}, {self.stride})")
        self.input_size = int(input_size or _first(cfg, "input_size", "size", "image_size", default=0)
                              or _spatial(self.encoder))
        n_cls = int(self.step.outputs[[o.name for o in self.step.outputs].index("logits")].shape[-1]) \
            if any(o.name == "logits" for o in self.step.outputs) else 0
        labels = list(labels or _first(cfg, "labels", "classes", "class_names", default=[]) or [])
        if not labels and n_cls:
            labels = [f"class_{i}" for i in range(n_cls)]
        self.labels = labels
        self.hysteresis_args = dict(hysteresis or {})
        # calibration, open-set rule and per-class alarm rules: manifest config, ``alarms`` overriding
        self.decider = Decider.from_config(cfg, self.labels, alarms)
        flow = cfg.get("flow") if isinstance(cfg.get("flow"), dict) else {}
        self.flow_preset = flow.get("preset", flow_preset)
        self.flow_bound = float(flow.get("bound", 0) or 0) or None
        self._enc_in = [s.name for s in self.encoder.inputs]
        h_spec = {s.name: s for s in self.step.inputs}
        self._state_shape = {k: tuple(int(d) if isinstance(d, int) and d > 0 else None
                                      for d in h_spec[k].shape) for k in ("h", "c")}

    # -- per stream ------------------------------------------------------------------------------------
    def new_stream(self) -> ClassifierStream:
        from edge.classify.preprocess import FrameStream
        prep = FrameStream(self.input_size, self.flow_preset, **({"bound": self.flow_bound} if self.flow_bound else {}))
        return ClassifierStream(prep=prep, window=self.window,
                                stride=self.stride, hysteresis=self.decider.hysteresis(**self.hysteresis_args))

    def prepare(self, stream: ClassifierStream, image: np.ndarray) -> dict[str, np.ndarray]:
        """Frame -> encoder feeds (batch 1): resize, DIS flow from the previous frame of this stream."""
        rgb, flow = stream.prep(image)
        names = self._enc_in
        if set(names) >= {"rgb", "flow"}:
            return {"rgb": rgb, "flow": flow}
        return dict(zip(names, (rgb, flow)))

    # -- inference stage -------------------------------------------------------------------------------
    def encode(self, feeds: Sequence[dict[str, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Encoder on several frames at once -> [(features [1,C,H,W], attention or None)] per frame."""
        outs = run_batched(self.encoder, list(feeds))
        return [(o["features"], o.get("attention")) for o in outs]

    def push(self, stream: ClassifierStream, features: np.ndarray,
             attention: np.ndarray | None) -> list[np.ndarray] | None:
        """Add one frame's features; returns the window (T features, oldest first) when one is due: the
        first time T frames are there, then every ``stride`` frames."""
        stream.features.append(features)
        while len(stream.features) > stream.window:
            stream.features.popleft()
        if attention is not None:
            stream.attention = attention
        stream.since += 1
        if len(stream.features) == stream.window and (not stream.started or stream.since >= stream.stride):
            stream.since, stream.started = 0, True
            return list(stream.features)
        return None

    def classify(self, windows: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        """ConvLSTM over windows (each T features [1,C,H,W]) from zero state -> logits [B, K]."""
        cap = batch_capacity(self.step)
        if cap is not None and cap != len(windows):
            return np.concatenate([self.classify(windows[i:i + 1]) for i in range(len(windows))]) \
                if cap == 1 else self._classify_padded(windows, cap)
        b = len(windows)
        feats0 = windows[0][0]
        h = np.zeros(self._zero_shape("h", b, feats0), np.float32)
        c = np.zeros_like(h) if self._state_shape["c"] == self._state_shape["h"] else \
            np.zeros(self._zero_shape("c", b, feats0), np.float32)
        logits = None
        for t in range(len(windows[0])):
            x = np.concatenate([w[t] for w in windows]) if b > 1 else windows[0][t]
            out = self.step.run({"features": x, "h": h, "c": c})
            h, c, logits = out["h_next"], out["c_next"], out["logits"]
        return logits

    def _classify_padded(self, windows, cap):
        res = []
        for s in range(0, len(windows), cap):
            part = list(windows[s:s + cap])
            n = len(part)
            part += [part[-1]] * (cap - n)
            res.append(self.classify(part)[:n])
        return np.concatenate(res)

    def _zero_shape(self, name: str, batch: int, feats: np.ndarray) -> tuple:
        shape = list(self._state_shape[name])
        shape[0] = batch
        for i in range(1, len(shape)):
            if shape[i] is None:            # dynamic spatial dims follow the features
                shape[i] = feats.shape[i]
        return tuple(shape)

    def result(self, stream: ClassifierStream, logits: np.ndarray, frame: int) -> tuple[WindowResult, list[dict]]:
        """Logits [K] of a window ending at ``frame`` -> result (calibrated score, open-set rule) + events."""
        d = self.decider.decide(logits)
        res = WindowResult(frame=frame, label=d.label, index=d.index, score=d.score, logits=np.asarray(logits),
                           probs=d.probs, rejected=d.rejected)
        stream.last = res
        return res, stream.hysteresis.update(res.label, res.score, frame)


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


def _first(cfg: dict, *keys, default=None):
    for k in keys:
        if k in cfg and cfg[k] is not None:
            return cfg[k]
    return default


def _spatial(engine: Engine) -> int:
    for s in engine.inputs:
        if len(s.shape) == 4 and isinstance(s.shape[-1], int) and s.shape[-1] > 0:
            return int(s.shape[-1])
    raise ValueError("classifier input size unknown: not in the manifest config and the encoder's "
                     "input shape is dynamic")
