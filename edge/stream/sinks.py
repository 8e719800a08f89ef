"""Sinks for ``edge run`` (torch-free): overlay video, JSON Lines events, live status line, display window.

Events file (JSON Lines, one object per line, flushed per line, so a killed run leaves only whole lines):
every processed frame gives a ``frame`` record; state changes give their own records. Common fields:
``stream`` (int), ``source`` (str), ``frame`` (int, index in that stream), ``time`` (s, source clock),
``wall`` (s, Unix time), ``type``, ``box`` ([x, y, w, h] or null), ``score`` (tracker score or null),
``lost`` (bool or null), ``label`` / ``label_score`` (latest window's class and softmax score, or null).
Types: ``frame``, ``track_init``, ``track_lost``, ``track_recovered``, ``action_start`` (+``score``),
``action_end`` (+``start_frame``), ``source_reconnect`` (+``reconnects``), ``stream_end``, and a final
``summary`` per stream (``captured``, ``processed``, ``drops``, ``corrupt``, ``reconnects``, ``fps``).

The overlay video is written to a temporary file beside the target and renamed into place when it is
finalised (end, SIGINT, SIGTERM), so the path only ever holds a complete, playable file.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge.errors import UserError
from edge.stream.pipeline import Pipeline, Result, Sink

FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v"}


def stream_path(path: Path, stream: int) -> Path:
    """``out.mp4`` for stream 0, ``out.1.mp4`` for stream 1, ..."""
    return path if stream == 0 else path.with_name(f"{path.stem}.{stream}{path.suffix}")


def check_video_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FOURCC:
        raise UserError(f"--out-video {path}: use one of {', '.join(FOURCC)} (mp4v / MJPG codecs)")
    if not path.parent.is_dir():
        raise UserError(f"--out-video {path}: folder {path.parent} does not exist")
    return path


def draw_overlay(r: Result, fps: float | None = None, heatmap: bool = False) -> np.ndarray:
    """The frame with box, score, label, FPS and optionally the attention heat map."""
    img = r.image.copy()
    H, W = img.shape[:2]
    if heatmap and r.attention is not None:
        a = cv2.resize((r.attention * 255).astype(np.uint8), (W, H), interpolation=cv2.INTER_LINEAR)
        img = cv2.addWeighted(img, 0.6, cv2.applyColorMap(a, cv2.COLORMAP_JET), 0.4, 0)
    scale = max(0.35, min(W, H) / 600)
    thick = max(1, int(round(scale * 2)))
    if r.box is not None:
        x, y, w, h = (int(round(v)) for v in r.box)
        color = (0, 0, 255) if r.lost else (0, 220, 0)
        cv2.rectangle(img, (x, y), (x + w, y + h), color, thick)
        if r.score is not None:
            txt = f"{r.score:.2f}" + (" LOST" if r.lost else "")
            cv2.putText(img, txt, (x, max(y - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick)
    top = f"#{r.index}"
    if fps:
        top += f"  {fps:.1f} fps"
    if r.label is not None:
        top += f"  {r.label} {r.label_score:.2f}"
    cv2.putText(img, top, (4, int(18 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2)
    cv2.putText(img, top, (4, int(18 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick)
    return img


class VideoSink(Sink):
    """Overlay video per stream (``mp4v`` for .mp4, ``MJPG`` for .avi)."""

    def __init__(self, path: str | os.PathLike, fps: float | None = None, heatmap: bool = False) -> None:
        self.path = check_video_path(path)
        self.fps, self.heatmap = fps, heatmap
        self.writers: dict[int, tuple[cv2.VideoWriter, Path, Path, tuple]] = {}
        self.pipeline: Pipeline | None = None
        self.written: dict[int, int] = {}

    def open(self, pipeline):
        self.pipeline = pipeline

    def _writer(self, r: Result):
        w = self.writers.get(r.stream)
        if w is None:
            final = stream_path(self.path, r.stream)
            tmp = final.with_name(f".{final.stem}.partial{final.suffix}")
            src = self.pipeline.streams[r.stream].source if self.pipeline else None
            fps = self.fps or getattr(src, "fps", None) or 30.0
            size = (r.image.shape[1], r.image.shape[0])
            vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC[final.suffix.lower()]), float(fps), size)
            if not vw.isOpened():
                raise OSError(f"cannot write video {final} ({FOURCC[final.suffix.lower()]})")
            w = self.writers[r.stream] = (vw, tmp, final, size)
            self.written[r.stream] = 0
        return w

    def write(self, r):
        if r.image is None:
            return
        vw, _, _, size = self._writer(r)
        fps = self.pipeline.stats[r.stream].fps() if self.pipeline else None
        img = draw_overlay(r, fps, self.heatmap)
        if (img.shape[1], img.shape[0]) != size:          # a live source changed resolution
            img = cv2.resize(img, size)
        vw.write(img)
        self.written[r.stream] += 1

    def close(self, pipeline):
        for vw, tmp, final, _ in self.writers.values():
            vw.release()
            os.replace(tmp, final)
        self.writers.clear()

    def paths(self) -> list[Path]:
        return [stream_path(self.path, s) for s in sorted(self.written)]


def _num(v):
    if v is None:
        return None
    v = float(v)
    return round(v, 4) if math.isfinite(v) else None


class EventsSink(Sink):
    """JSON Lines events (schema in the module docstring), one flushed line per record."""
    wants_events_only = True

    def __init__(self, path: str | os.PathLike, frames: bool = True) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise UserError(f"--events {self.path}: folder {self.path.parent} does not exist")
        self.frames = frames
        self.f = None
        self.lines = 0

    def open(self, pipeline):
        self.f = open(self.path, "w", encoding="utf-8", buffering=1)

    def _line(self, rec: dict) -> None:
        self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.f.flush()
        self.lines += 1

    def write(self, r):
        base = {"stream": r.stream, "source": r.name, "frame": r.index, "time": _num(r.timestamp),
                "wall": round(time.time(), 3),
                "box": [round(float(v), 2) for v in r.box] if r.box is not None else None,
                "score": _num(r.score), "lost": r.lost, "label": r.label, "label_score": _num(r.label_score)}
        if self.frames and r.image is not None:
            self._line({**base, "type": "frame"})
        for ev in r.events:
            rec = {**base, **{k: v for k, v in ev.items() if k != "type"}, "type": ev["type"]}
            if "frame" in ev:
                rec["frame"] = ev["frame"]
            self._line(_jsonable(rec))

    def close(self, pipeline):
        if self.f is None:
            return
        for i, st in enumerate(pipeline.stats):
            self._line({"stream": i, "source": st.name, "type": "summary", "wall": round(time.time(), 3),
                        **{k: v for k, v in st.summary().items() if k != "name"}})
        self.f.close()
        self.f = None


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return _num(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


class StatusSink(Sink):
    """A live status line on stderr: FPS per stream, drops, latency (rewritten in place on a terminal)."""

    def __init__(self, interval: float = 1.0, stream=None) -> None:
        self.interval, self.out = interval, stream or sys.stderr
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.last = 0.0
        self.pipeline = None

    def open(self, pipeline):
        self.pipeline = pipeline

    def line(self) -> str:
        parts = []
        for i, st in enumerate(self.pipeline.stats):
            lat = st.times["latency"]
            ms = 1000 * float(np.median(list(lat)[-50:])) if lat else 0.0
            parts.append(f"s{i} {st.processed} fr {st.fps():.1f} fps drop {st.drops} lat {ms:.0f} ms")
        return "edge run | " + " | ".join(parts)

    def write(self, r):
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.out.write(("\r" + self.line() + "\x1b[K") if self.tty else self.line() + "\n")
            self.out.flush()

    def close(self, pipeline):
        self.out.write(("\r" + self.line() + "\x1b[K\n") if self.tty else self.line() + "\n")
        self.out.flush()


class DisplaySink(Sink):
    """Show the overlay in a window per stream (needs an OpenCV build with GUI); ``q`` stops."""

    def __init__(self, heatmap: bool = False) -> None:
        try:
            cv2.namedWindow("edge run", cv2.WINDOW_NORMAL)
            cv2.destroyWindow("edge run")
        except cv2.error:
            raise UserError("--display needs OpenCV with GUI support (this build has none: "
                            "opencv-python-headless); write --out-video instead") from None
        self.heatmap, self.pipeline = heatmap, None

    def open(self, pipeline):
        self.pipeline = pipeline

    def write(self, r):
        if r.image is None:
            return
        cv2.imshow(f"edge run s{r.stream}", draw_overlay(r, self.pipeline.stats[r.stream].fps(), self.heatmap))
        if cv2.waitKey(1) & 0xFF == ord("q"):
            self.pipeline.stop()

    def close(self, pipeline):
        try:
            cv2.destroyAllWindows()
        except cv2.error:
            pass
