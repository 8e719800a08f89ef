"""Window logits -> a decision the user can act on (torch-free).

* **Calibration**: ``softmax(logits / T)`` with the temperature ``T`` fitted on a validation split
  (:func:`fit_temperature`, minimum negative log-likelihood), so a ``label_score`` of 0.9 is right about 9 times
  in 10 (:func:`expected_calibration_error` measures it).
* **Open-set rule** (:class:`OODRule`): a window whose logits look like nothing the model was trained on is
  labelled ``unknown`` and never starts an event. Rules: ``max_prob`` (1 - max calibrated probability),
  ``energy`` (``-T logsumexp(logits / T)``), ``centroid`` (distance of the logit vector to the nearest class
  centroid, per-dimension scaled), each with a threshold fitted on validation data; ``none`` disables it.
* **Alarm rules** (:class:`AlarmRule`, file ``edge/data/alarms.json``): per class whether it starts events at
  all, whether its events are alarms, the calibrated probability a window needs to count towards a start
  (``start``) and to keep an active event (``end``), and how many consecutive windows make a start
  (``enter``) or an end (``exit``).
* :class:`Hysteresis` turns per-window decisions into ``action_start`` / ``action_end`` events.

The constants travel with the model: ``edge.models.two_in_one.config()`` writes ``calibration`` (temperature,
open-set rule) and ``alarms`` (the validated rules) into the export manifest, and :meth:`Decider.from_config`
reads them there.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edge.events import ActionEnd, ActionStart, Event
from edge.fileio import read_json

UNKNOWN = "unknown"          # label of a window the open-set rule rejects
BACKGROUND = ("background", "none", "idle", "no_action", "nothing", "bg", UNKNOWN)
OOD_RULES = ("none", "max_prob", "energy", "centroid")
DEFAULT_ALARMS = Path(__file__).resolve().parents[1] / "data" / "alarms.json"


# ------------------------------------------------------------------------------------------ calibration
def softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax over the last axis of ``x / temperature`` (float64)."""
    z = np.asarray(x, np.float64) / float(temperature)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def logsumexp(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Energy score ``-T logsumexp(logits / T)`` (Liu et al. 2020): higher = less like the training data."""
    return -float(temperature) * logsumexp(np.asarray(logits, np.float64) / float(temperature))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / T)``."""
    z = np.asarray(logits, np.float64) / float(temperature)
    labels = np.asarray(labels, int)
    return float(np.mean(logsumexp(z) - z[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, lo: float = 0.05, hi: float = 20.0,
                    iters: int = 80) -> float:
    """Temperature minimising the NLL of ``labels`` (Guo et al. 2017), golden-section search over log T in
    [lo, hi] (the NLL is unimodal in log T)."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, int)
    if logits.ndim != 2 or len(logits) != len(labels) or not len(labels):
        raise ValueError(f"fit_temperature: need logits [N, K] and N labels, got {logits.shape} and {labels.shape}")
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(logits, labels, math.exp(c)), nll(logits, labels, math.exp(d))
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(logits, labels, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(logits, labels, math.exp(d))
    return float(math.exp((a + b) / 2))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: sum over equal-width confidence bins of |accuracy - mean confidence| weighted by the
    bin's share of samples."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, int)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"expected_calibration_error: need probs [N, K] and N labels, got {probs.shape}")
    if not len(labels):
        return 0.0
    conf, pred = probs.max(1), probs.argmax(1)
    ok = (pred == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(ok[m].mean() - conf[m].mean())
    return float(ece)


# ------------------------------------------------------------------------------------------ open set
@dataclass(frozen=True)
class OODRule:
    """``score(logits)`` (higher = more out of distribution) and ``reject`` when it exceeds ``threshold``."""
    rule: str = "none"
    threshold: float | None = None
    centroids: tuple | None = None        # centroid rule: [K][K] mean logit vector per class
    scale: tuple | None = None            # centroid rule: [K] per-dimension std of the logits

    def __post_init__(self):
        if self.rule not in OOD_RULES:
            raise ValueError(f"unknown open-set rule {self.rule!r} (have: {', '.join(OOD_RULES)})")
        if self.rule != "none" and not _finite(self.threshold):
            raise ValueError(f"open-set rule {self.rule!r} needs a finite threshold, got {self.threshold!r}")
        if self.rule == "centroid":
            c, s = np.asarray(self.centroids, np.float64), np.asarray(self.scale, np.float64)
            if c.ndim != 2 or c.shape[0] < 1 or s.shape != (c.shape[1],) or not (s > 0).all():
                raise ValueError("open-set rule 'centroid' needs centroids [K][D] and a positive scale [D]")

    def score(self, logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """OOD score of logits [..., K] (float64, shape [...])."""
        z = np.asarray(logits, np.float64)
        if self.rule == "max_prob":
            return 1.0 - softmax(z, temperature).max(-1)
        if self.rule == "energy":
            return energy(z, temperature)
        if self.rule == "centroid":
            c, s = np.asarray(self.centroids, np.float64), np.asarray(self.scale, np.float64)
            d = np.sqrt((((z[..., None, :] - c) / s) ** 2).sum(-1))
            return d.min(-1)
        return np.zeros(z.shape[:-1])

    def reject(self, logits: np.ndarray, temperature: float = 1.0) -> np.ndarray | bool:
        if self.rule == "none":
            return False
        return self.score(logits, temperature) > self.threshold

    def to_config(self) -> dict:
        out: dict = {"rule": self.rule, "threshold": self.threshold}
        if self.rule == "centroid":
            out["centroids"] = [list(map(float, r)) for r in self.centroids]
            out["scale"] = list(map(float, self.scale))
        return out


@dataclass(frozen=True)
class Calibration:
    """Temperature and open-set rule of one model (manifest config key ``calibration``)."""
    temperature: float = 1.0
    ood: OODRule = field(default_factory=OODRule)

    def __post_init__(self):
        if not _finite(self.temperature) or self.temperature <= 0:
            raise ValueError(f"calibration temperature must be a positive number, got {self.temperature!r}")

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> "Calibration":
        """From the manifest's ``calibration`` object (absent -> temperature 1, no open-set rule)."""
        if not cfg:
            return cls()
        if not isinstance(cfg, Mapping):
            raise ValueError(f"classifier calibration must be an object, got {type(cfg).__name__}")
        ood = cfg.get("ood") or {"rule": "none"}
        if not isinstance(ood, Mapping):
            raise ValueError("classifier calibration.ood must be an object")
        unknown = set(ood) - {"rule", "threshold", "centroids", "scale"}
        if unknown:
            raise ValueError(f"classifier calibration.ood: unknown key(s) {sorted(unknown)}")
        centroids = tuple(tuple(float(v) for v in r) for r in ood["centroids"]) if ood.get("centroids") else None
        scale = tuple(float(v) for v in ood["scale"]) if ood.get("scale") else None
        return cls(float(cfg.get("temperature", 1.0)),
                   OODRule(str(ood.get("rule", "none")), ood.get("threshold"), centroids, scale))

    def to_config(self) -> dict:
        return {"temperature": float(self.temperature), "ood": self.ood.to_config()}

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits, self.temperature)


# ------------------------------------------------------------------------------------------ alarm rules
@dataclass(frozen=True)
class AlarmRule:
    """How windows of one class become events (see ``edge/data/alarms.json``)."""
    event: bool = True       # windows of this class may start an event
    alarm: bool = False      # its events are alarms (what the false-alarm benchmark counts)
    start: float = 0.5       # calibrated probability a window needs to count towards a start
    end: float = 0.35        # ... to keep the active event going
    enter: int = 2           # consecutive qualifying windows that start an event
    exit: int = 2            # consecutive non-qualifying windows that end it


_RULE_KEYS = {f.name for f in fields(AlarmRule)}


def _rule(raw, base: AlarmRule, where: str) -> AlarmRule:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be an object of {', '.join(sorted(_RULE_KEYS))}")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)} (known: {', '.join(sorted(_RULE_KEYS))})")
    for k in ("event", "alarm"):
        if k in raw and not isinstance(raw[k], bool):
            raise ValueError(f"{where}.{k} must be true or false, got {raw[k]!r}")
    for k in ("start", "end"):
        if k in raw and (isinstance(raw[k], bool) or not _finite(raw[k]) or not 0.0 <= raw[k] <= 1.0):
            raise ValueError(f"{where}.{k} must be a probability in [0, 1], got {raw[k]!r}")
    for k in ("enter", "exit"):
        if k in raw and (isinstance(raw[k], bool) or not isinstance(raw[k], int) or not 1 <= raw[k] <= 100):
            raise ValueError(f"{where}.{k} must be an integer number of windows in 1..100, got {raw[k]!r}")
    rule = AlarmRule(**{**asdict(base), **raw})
    if rule.end > rule.start:
        raise ValueError(f"{where}: end {rule.end} must not exceed start {rule.start}")
    if rule.alarm and not rule.event:
        raise ValueError(f"{where}: an alarm class must have event true")
    return rule


def load_alarm_rules(source: str | Path | Mapping | None, classes: Sequence[str],
                     strict: bool = True) -> dict[str, AlarmRule]:
    """Validated per-class rules for ``classes`` from a file path, an already parsed object, or None (the
    shipped ``edge/data/alarms.json``). Layout: ``{"default": {...}, "classes": {name: {...}}}``; classes the
    file does not name get ``default`` (background-like names never start events). Any unknown class, key
    or out-of-range value is a one-line ``ValueError``; ``strict=False`` ignores rules for classes the model
    does not have (the shipped file applied to a model with other classes), still validating their values."""
    where = "alarm rules"
    if source is None or isinstance(source, (str, Path)):
        path = Path(source) if source is not None else DEFAULT_ALARMS
        where = str(path)
        data = read_json(path, "alarm rules file")
    else:
        data = source
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected an object with 'default' and 'classes'")
    data = {k: v for k, v in data.items() if not str(k).startswith("_")}
    unknown = set(data) - {"default", "classes"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)} (known: default, classes)")
    default = _rule(data.get("default", {}), AlarmRule(), f"{where}: default")
    per = data.get("classes", {})
    if not isinstance(per, Mapping):
        raise ValueError(f"{where}: 'classes' must map class names to rules")
    classes = list(classes)
    extra = [c for c in per if c not in classes]
    if extra and strict:
        raise ValueError(f"{where}: unknown class {extra[0]!r} (model classes: {', '.join(classes)})")
    for c in extra:
        _rule(per[c], default, f"{where}: {c}")
    rules = {}
    for c in classes:
        base = default if c.lower() not in BACKGROUND else AlarmRule(**{**asdict(default), "event": False,
                                                                          "alarm": False})
        rules[c] = _rule(per[c], base, f"{where}: {c}") if c in per else base
    return rules


def rules_to_config(rules: Mapping[str, AlarmRule]) -> dict:
    """Rules -> the ``alarms`` object of the manifest (same layout as the file, every class spelled out)."""
    return {"classes": {c: asdict(r) for c, r in rules.items()}}


def alarm_classes(rules: Mapping[str, AlarmRule]) -> list[str]:
    return [c for c, r in rules.items() if r.alarm]


# ------------------------------------------------------------------------------------------ events
@dataclass
class Hysteresis:
    """Per-window labels -> start/end events.

    An action starts after ``enter`` consecutive windows with the same event label at (calibrated) score
    >= ``start``; it ends after ``exit`` consecutive windows whose label differs or whose score < ``end``
    (``end`` <= ``start``: a score that wobbles between them changes nothing). A different action can start
    once the current one has ended (the end event comes first). ``rules`` gives each label its own
    :class:`AlarmRule`; labels without one use ``on``/``off``/``enter``/``exit`` and start events unless they
    are background names (``BACKGROUND``, which includes ``unknown``).
    """
    on: float = 0.5
    off: float = 0.35
    enter: int = 2
    exit: int = 2
    background: tuple = BACKGROUND
    rules: Mapping[str, AlarmRule] | None = None
    active: str | None = None
    _cand: str | None = None
    _cand_n: int = 0
    _off_n: int = 0
    _start_frame: int | None = None

    def rule(self, label: str) -> AlarmRule:
        if self.rules and label in self.rules:
            return self.rules[label]
        return AlarmRule(event=label.lower() not in self.background, start=self.on, end=self.off,
                         enter=self.enter, exit=self.exit)

    def update(self, label: str, score: float, frame: int) -> list[Event]:
        events: list[Event] = []
        if self.active is not None:
            r = self.rule(self.active)
            if label == self.active and score >= r.end:
                self._off_n = 0
            else:
                self._off_n += 1
                if self._off_n >= r.exit:
                    events.append(ActionEnd(frame, self.active, self._start_frame))
                    self.active, self._off_n, self._start_frame = None, 0, None
                    self._cand, self._cand_n = None, 0
        if self.active is None:
            r = self.rule(label)
            if r.event and score >= r.start:
                self._cand_n = self._cand_n + 1 if self._cand == label else 1
                self._cand = label
                if self._cand_n >= r.enter:
                    self.active, self._start_frame, self._off_n = label, frame, 0
                    self._cand, self._cand_n = None, 0
                    events.append(ActionStart(frame, label, float(score), bool(r.alarm)))
            else:
                self._cand, self._cand_n = None, 0
        return events

    def close(self, frame: int) -> list[Event]:
        """End an open action at the end of the stream."""
        if self.active is None:
            return []
        ev: list[Event] = [ActionEnd(frame, self.active, self._start_frame)]
        self.active = None
        return ev


# ------------------------------------------------------------------------------------------ the decider
@dataclass(frozen=True)
class Decision:
    """One window's decision: ``label`` (a class or ``unknown``), ``index`` (the best class), ``score`` (its
    calibrated probability), all calibrated ``probs``, the open-set ``ood_score`` and whether it was
    ``rejected``."""
    label: str
    index: int
    score: float
    probs: np.ndarray
    ood_score: float
    rejected: bool


class Decider:
    """Logits of a window -> :class:`Decision`; makes the per-stream :class:`Hysteresis`."""

    def __init__(self, classes: Sequence[str], calibration: Calibration | None = None,
                 rules: Mapping[str, AlarmRule] | None = None):
        self.classes = list(classes)
        self.calibration = calibration or Calibration()
        self.rules = dict(rules) if rules is not None else None
        if self.calibration.ood.rule == "centroid" and self.classes and \
                len(self.calibration.ood.scale) != len(self.classes):
            raise ValueError(f"open-set centroids have {len(self.calibration.ood.scale)} dimensions for "
                             f"{len(self.classes)} classes")

    @classmethod
    def from_config(cls, cfg: Mapping | None, classes: Sequence[str],
                    alarms: str | Path | Mapping | None = None) -> "Decider":
        """From a manifest config: ``calibration`` and ``alarms``; ``alarms`` given here (a rules file or
        object) overrides the manifest's."""
        cfg = cfg or {}
        source = alarms if alarms is not None else cfg.get("alarms")
        rules = load_alarm_rules(source, classes) if source is not None else None
        return cls(classes, Calibration.from_config(cfg.get("calibration")), rules)

    def hysteresis(self, **overrides) -> Hysteresis:
        return Hysteresis(**overrides, rules=self.rules)

    def decide(self, logits: np.ndarray) -> Decision:
        z = np.asarray(logits, np.float64).reshape(-1)
        cal = self.calibration
        p = cal.probabilities(z)
        k = int(p.argmax())
        ood = float(cal.ood.score(z, cal.temperature))
        rejected = bool(cal.ood.reject(z, cal.temperature))
        label = UNKNOWN if rejected else (self.classes[k] if k < len(self.classes) else f"class_{k}")
        return Decision(label, k, float(p[k]), p, ood, rejected)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
