"""What ``edge run`` reports: one type per event kind, per-stream and per-run summaries (torch-free).

Events are values; JSON exists only at the file boundary (``to_record`` / ``from_record``, used by the
events sink and by readers of an events file). Every JSON line has the common fields ``stream``, ``source``,
``frame`` (the source's frame index), ``time`` (source clock, s), ``wall`` (Unix s), ``type``, ``box``,
``score``, ``lost``, ``label``, ``label_score`` (the stream's state at that frame), then the event's own.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Mapping

COMMON = ("stream", "source", "frame", "time", "wall", "type", "box", "score", "lost", "label", "label_score")


@dataclass(frozen=True)
class Event:
    """Something that happened at ``frame`` of a stream; subclasses add their own fields."""
    frame: int
    type: ClassVar[str] = "event"

    def own_fields(self) -> dict[str, Any]:
        """The fields this kind adds to the common ones (``frame`` is common)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "frame"}


@dataclass(frozen=True)
class TrackInit(Event):
    """The tracker started (or restarted after a reconnect) on ``box``."""
    box: tuple
    type: ClassVar[str] = "track_init"


@dataclass(frozen=True)
class TrackLost(Event):
    box: tuple
    score: float | None
    type: ClassVar[str] = "track_lost"


@dataclass(frozen=True)
class TrackRecovered(Event):
    box: tuple
    score: float | None
    type: ClassVar[str] = "track_recovered"


@dataclass(frozen=True)
class ActionStart(Event):
    """An action began: ``score`` is the calibrated probability of the window that started it; ``alarm``
    whether its class is an alarm class (``edge/data/alarms.json``: take, put_back, sit_down, fall)."""
    label: str
    score: float
    alarm: bool = False
    type: ClassVar[str] = "action_start"


@dataclass(frozen=True)
class ActionEnd(Event):
    label: str
    start_frame: int | None
    type: ClassVar[str] = "action_end"


@dataclass(frozen=True)
class SourceReconnect(Event):
    reconnects: int
    type: ClassVar[str] = "source_reconnect"


@dataclass(frozen=True)
class StreamEnd(Event):
    type: ClassVar[str] = "stream_end"


KINDS: dict[str, type[Event]] = {k.type: k for k in (TrackInit, TrackLost, TrackRecovered, ActionStart, ActionEnd,
                                                    SourceReconnect, StreamEnd)}


def kinds(event: Event) -> tuple[str, ...]:
    """What an event counts as in a summary: its type, and ``alarm`` for an alarm class's start."""
    return (event.type, "alarm") if getattr(event, "alarm", False) else (event.type,)


def _num(v):
    if v is None:
        return None
    v = float(v)
    return round(v, 4) if math.isfinite(v) else None


def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):     # numpy scalars
        obj = obj.item()
    if isinstance(obj, float):
        return _num(obj)
    return obj


def to_record(common: Mapping[str, Any], event: Event | None = None) -> dict:
    """One JSON Lines record: the common fields, ``type`` (``frame`` without an event), the event's own."""
    rec = dict(common)
    if event is None:
        rec["type"] = "frame"
    else:
        rec.update(event.own_fields())
        rec["type"], rec["frame"] = event.type, event.frame
    return _jsonable(rec)


def from_record(rec: Mapping[str, Any]) -> Event | None:
    """The event of a JSON record (None for ``frame``, ``summary`` and unknown types)."""
    kind = KINDS.get(rec.get("type"))
    if kind is None:
        return None
    kw = {f.name: rec.get(f.name) for f in fields(kind)}
    if "box" in kw and kw["box"] is not None:
        kw["box"] = tuple(kw["box"])
    return kind(**kw)


@dataclass(frozen=True)
class StreamSummary:
    """One stream of a run (the last ``summary`` line of the events file)."""
    name: str
    live: bool
    captured: int
    processed: int
    drops: int
    corrupt: int
    reconnects: int
    fps: float
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    events: Mapping[str, int] = field(default_factory=dict)    # event counts by type, and "alarm"

    def to_record(self, stream: int, wall: float) -> dict:
        d = asdict(self)
        d.pop("events")
        name = d.pop("name")
        return _jsonable({"stream": stream, "source": name, "type": "summary", "wall": wall, **d})


@dataclass(frozen=True)
class RunSummary:
    """What ``edge.run`` returns: per-stream summaries and where the outputs went."""
    streams: tuple[StreamSummary, ...]
    videos: tuple[str, ...] = ()
    events_path: str | None = None
    events_lines: int = 0
    stopped_by: str | None = None        # the signal that stopped the run (SIGINT, SIGTERM, SIGHUP, SIGQUIT)
    aborted: bool = False                # a second signal after the grace period (or SIGQUIT) cut it short
    peak_rss_mb: float | None = None
    torch_imported: bool = False
    remote: tuple = ()                   # per `edge serve` connection: url, requests, reconnects, retries, gap_s

    @property
    def processed(self) -> int:
        return sum(s.processed for s in self.streams)

    def alarms(self) -> int:
        """Alarms started (``action_start`` of an alarm class) over all streams."""
        return sum(s.events.get("alarm", 0) for s in self.streams)
