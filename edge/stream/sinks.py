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
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge.errors import UserError
from edge.events import StreamSummary, to_record
from edge.stream.pipeline import FrameResult, Sink

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


def draw_overlay(r: FrameResult, fps: float | None = None, heatmap: bool = False) -> np.ndarray:
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
        self.written: dict[int, int] = {}

    def _writer(self, r: FrameResult):
        w = self.writers.get(r.stream)
        if w is None:
            final = stream_path(self.path, r.stream)
            tmp = final.with_name(f".{final.stem}.partial{final.suffix}")
            fps = self.fps or r.source_fps or 30.0
            size = (r.image.shape[1], r.image.shape[0])
            vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC[final.suffix.lower()]), float(fps), size)
            if not vw.isOpened():
                raise OSError(f"cannot write video {final} ({FOURCC[final.suffix.lower()]})")
            w = self.writers[r.stream] = (vw, tmp, final, size)
            self.written[r.stream] = 0
        return w

    def write(self, r):
        vw, _, _, size = self._writer(r)
        img = draw_overlay(r, r.fps, self.heatmap)
        if (img.shape[1], img.shape[0]) != size:          # a live source changed resolution
            img = cv2.resize(img, size)
        vw.write(img)
        self.written[r.stream] += 1

    def close(self, summaries):
        for vw, tmp, final, _ in self.writers.values():
            vw.release()
            os.replace(tmp, final)
        self.writers.clear()

    def paths(self) -> list[Path]:
        return [stream_path(self.path, s) for s in sorted(self.written)]


class EventsSink(Sink):
    """JSON Lines events (schema in ``edge.events``), one flushed line per record."""

    def __init__(self, path: str | os.PathLike, frames: bool = True) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise UserError(f"--events {self.path}: folder {self.path.parent} does not exist")
        self.frames = frames
        self.f = None
        self.lines = 0

    def _line(self, rec: dict) -> None:
        if self.f is None:
            self.f = open(self.path, "w", encoding="utf-8", buffering=1)
        self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.f.flush()
        self.lines += 1

    def _common(self, stream: int, name: str, frame: int, r: FrameResult | None) -> dict:
        return {"stream": stream, "source": name, "frame": frame, "time": r.timestamp if r else None,
                "wall": round(time.time(), 3),
                "box": [round(float(v), 2) for v in r.box] if r is not None and r.box is not None else None,
                "score": r.score if r else None, "lost": r.lost if r else None, "label": r.label if r else None,
                "label_score": r.label_score if r else None}

    def write(self, r):
        common = self._common(r.stream, r.name, r.index, r)
        if self.frames:
            self._line(to_record(common))
        for ev in r.events:
            self._line(to_record(common, ev))

    def end(self, stream, name, events):
        for ev in events:
            self._line(to_record(self._common(stream, name, ev.frame, None), ev))

    def close(self, summaries):
        for i, s in enumerate(summaries):
            self._line(s.to_record(i, round(time.time(), 3)))
        if self.f is not None:
            self.f.close()
            self.f = None


class StatusSink(Sink):
    """A live status line on stderr: FPS per stream, drops, latency (rewritten in place on a terminal)."""

    def __init__(self, interval: float = 1.0, stream=None) -> None:
        self.interval, self.out = interval, stream or sys.stderr
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.last = 0.0
        self.state: dict[int, tuple[int, float, int, float]] = {}    # processed, fps, drops, latency ms

    def line(self) -> str:
        parts = [f"s{i} {n} fr {fps:.1f} fps drop {d} lat {ms:.0f} ms"
                 for i, (n, fps, d, ms) in sorted(self.state.items())]
        return "edge run | " + " | ".join(parts)

    def write(self, r):
        n = self.state.get(r.stream, (0,))[0] + 1
        self.state[r.stream] = (n, r.fps, r.drops, 1000 * (time.perf_counter() - r.captured))
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.out.write(("\r" + self.line() + "\x1b[K") if self.tty else self.line() + "\n")
            self.out.flush()

    def close(self, summaries):
        self.state = {i: (s.processed, s.fps, s.drops, s.latency_ms_p50 or 0.0) for i, s in enumerate(summaries)}
        self.out.write(("\r" + self.line() + "\x1b[K\n") if self.tty else self.line() + "\n")
        self.out.flush()


class DisplaySink(Sink):
    """Show the overlay in a window per stream (needs an OpenCV build with GUI); ``q`` calls ``on_quit``."""

    def __init__(self, heatmap: bool = False, on_quit=None) -> None:
        try:
            cv2.namedWindow("edge run", cv2.WINDOW_NORMAL)
            cv2.destroyWindow("edge run")
        except cv2.error:
            raise UserError("--display needs OpenCV with GUI support (this build has none: "
                            "opencv-python-headless); write --out-video instead") from None
        self.heatmap, self.on_quit = heatmap, on_quit

    def write(self, r):
        cv2.imshow(f"edge run s{r.stream}", draw_overlay(r, r.fps, self.heatmap))
        if cv2.waitKey(1) & 0xFF == ord("q") and self.on_quit is not None:
            self.on_quit()

    def close(self, summaries):
        try:
            cv2.destroyAllWindows()
        except cv2.error:
            pass
