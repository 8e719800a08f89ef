"""Sinks for ``edge run`` (torch-free): overlay video, JSON Lines events, live status line, display window.

Events file (JSON Lines, one object per line, flushed per line, so a killed run leaves only whole lines):
every processed frame gives a ``frame`` record; state changes give their own records. Common fields:
``stream`` (int), ``source`` (str), ``frame`` (int, index in that stream), ``time`` (s, source clock),
``wall`` (s, Unix time), ``type``, ``box`` ([x, y, w, h] or null), ``score`` (tracker score or null),
``lost`` (bool or null), ``label`` / ``label_score`` (latest window's class and calibrated score, or null),
``action`` (the event in progress after the alarm rules and hysteresis, or null).
Types: ``frame``, ``track_init``, ``track_lost``, ``track_recovered``, ``action_start`` (+``score``),
``action_end`` (+``start_frame``), ``source_reconnect`` (+``reconnects``), ``stream_end``, and a final
``summary`` per stream (``captured``, ``processed``, ``drops``, ``corrupt``, ``reconnects``, ``fps``).

The overlay video is written to a temporary file beside the target and renamed into place when it is
finalised (end, SIGINT, SIGTERM), so the path only ever holds a complete, playable file.
"""
from __future__ import annotations

import errno
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge.errors import OutputError, UserError
from edge.events import to_record
from edge.fileio import check_output
from edge.stream.pipeline import FrameResult, Sink

FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v"}


def stream_path(path: Path, stream: int) -> Path:
    """``out.mp4`` for stream 0, ``out.1.mp4`` for stream 1, ..."""
    return path if stream == 0 else path.with_name(f"{path.stem}.{stream}{path.suffix}")


def check_video_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FOURCC:
        raise UserError(f"--out-video {path}: use one of {', '.join(FOURCC)} (mp4v / MJPG codecs)")
    return check_output(path, "--out-video")


def overlay_label(r: FrameResult) -> str:
    """The classifier's part of the overlay's top line: the event in progress in capitals (with the latest
    window's score when it is that class), else ``no action`` with the latest window's guess in brackets, so
    a guess below its alarm rule never reads as an alarm; empty without a classifier."""
    if r.action is not None:
        score = f" {r.label_score:.2f}" if r.label == r.action and r.label_score is not None else ""
        return f"  {r.action.upper()}{score}"
    if r.label is None:
        return ""
    return f"  no action ({r.label} {r.label_score:.2f})" if r.label_score is not None else f"  no action ({r.label})"


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
    top += overlay_label(r)
    # white on a dark band (a thicker black copy as outline drifts: OpenCV's advance grows with thickness)
    (tw, th), base = cv2.getTextSize(top, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    y = int(18 * scale / 0.5)
    band = img[max(0, y - th - 3):min(H, y + base + 1), 0:min(W, tw + 8)]
    band[:] = (band * 0.35).astype(np.uint8)
    cv2.putText(img, top, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick)
    return img


class VideoSink(Sink):
    """Overlay video per stream (``mp4v`` for .mp4, ``MJPG`` for .avi), written to a hidden partial file and
    renamed into place only once it is finalised and reads back (a full disk leaves no unplayable file)."""

    def __init__(self, path: str | os.PathLike, fps: float | None = None, heatmap: bool = False) -> None:
        self.path = check_video_path(path)
        self.fps, self.heatmap = fps, heatmap
        self.writers: dict[int, tuple[cv2.VideoWriter, Path, Path, tuple]] = {}
        self.written: dict[int, int] = {}
        self.finalised: list[Path] = []

    def _writer(self, r: FrameResult):
        w = self.writers.get(r.stream)
        if w is None:
            final = stream_path(self.path, r.stream)
            tmp = partial_path(final)
            fps = self.fps or r.source_fps or 30.0
            size = (r.image.shape[1], r.image.shape[0])
            vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC[final.suffix.lower()]), float(fps), size)
            if not vw.isOpened():
                raise OutputError(f"cannot write video {final} ({FOURCC[final.suffix.lower()]})")
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
        failed = []
        for stream, (vw, tmp, final, _) in sorted(self.writers.items()):
            vw.release()
            n = _frames_readable(tmp)
            if n:
                os.replace(tmp, final)
                self.finalised.append(final)
            else:
                tmp.unlink(missing_ok=True)
                failed.append(f"{final} ({self.written[stream]} frames written, none read back)")
        self.writers.clear()
        if failed:
            raise OutputError(f"video not finalised, removed the unreadable partial file (disk full?): "
                              f"{'; '.join(failed)}")

    def paths(self) -> list[Path]:
        """The videos that were finalised and read back."""
        return list(self.finalised)


def partial_path(final: Path) -> Path:
    return final.with_name(f".{final.stem}.partial{final.suffix}")


def _frames_readable(path: Path) -> int:
    """How many frames a written video reports when read back (0: not playable)."""
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened() or not cap.read()[0]:
            return 0
        return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 1)
    finally:
        cap.release()


class EventsSink(Sink):
    """JSON Lines events (schema in ``edge.events``), one line per record, each written whole: a failed write
    (disk full, I/O error) is cut back to the last complete line and stops the run (``OutputError``)."""

    def __init__(self, path: str | os.PathLike, frames: bool = True) -> None:
        self.path = check_output(path, "--events")
        self.frames = frames
        self.fd: int | None = None
        self.size = 0                     # bytes of complete lines
        self.lines = 0

    def _line(self, rec: dict) -> None:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        data = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
        try:
            done = 0
            while done < len(data):
                done += os.write(self.fd, data[done:])
        except OSError as e:
            try:
                os.ftruncate(self.fd, self.size)     # never leave a partial last line
            except OSError:
                pass
            raise OutputError(f"--events {self.path}: {e.strerror or e}: kept {self.lines} complete lines") from None
        self.size += len(data)
        self.lines += 1

    def _common(self, stream: int, name: str, frame: int, r: FrameResult | None) -> dict:
        return {"stream": stream, "source": name, "frame": frame, "time": r.timestamp if r else None,
                "wall": round(time.time(), 3),
                "box": [round(float(v), 2) for v in r.box] if r is not None and r.box is not None else None,
                "score": r.score if r else None, "lost": r.lost if r else None, "label": r.label if r else None,
                "label_score": r.label_score if r else None, "action": r.action if r else None}

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
        try:
            for i, s in enumerate(summaries):
                self._line(s.to_record(i, round(time.time(), 3)))
            if self.fd is not None:
                try:
                    os.fsync(self.fd)
                except OSError as e:
                    if e.errno not in (errno.EINVAL, errno.EROFS):     # devices and pipes cannot fsync
                        raise OutputError(f"--events {self.path}: {e.strerror}: kept {self.lines} lines") from None
        finally:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None


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
