"""Soak and many-stream benchmark of ``edge run``: N streams at once and one long stream, with the process's
resident memory sampled over time (a leak shows as a slope) and the frames each stream processed.

    python bench/soak.py [--tracker ENGINE_DIR --classifier ENGINE_DIR] [--streams 8] [--frames 250]
                         [--soak-frames 22500] [--out bench/results]

Without engine folders both sample models are exported and built for the cpu target first. Every stream
reads a real clip (``bikes.mp4``); the soak stream loops it. Writes ``soak.json`` and ``soak.md``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edge  # noqa: E402
from edge.assets import video_clip  # noqa: E402
from edge.fileio import atomic_write_bytes, atomic_write_json  # noqa: E402
from edge.stream.pipeline import Pipeline, StreamInput  # noqa: E402
from edge.stream.sinks import EventsSink  # noqa: E402
from edge.stream.sources import Source, VideoFileSource  # noqa: E402

BOX = (250.0, 90.0, 60.0, 110.0)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class LoopedFile(Source):
    """A video file played again and again until ``frames`` frames (a camera that never ends)."""

    def __init__(self, path: Path, frames: int) -> None:
        super().__init__()
        self.path, self.total, self.name, self.fps = path, frames, f"{path.name} (looped)", 25.0

    def frame_size(self):
        return VideoFileSource(self.path).frame_size()

    def frames(self, stop):
        n = 0
        while n < self.total and not stop.is_set():
            src = VideoFileSource(self.path)
            try:
                for img, _, _ in src.frames(stop):
                    if n >= self.total:
                        break
                    yield img, n / self.fps, n
                    n += 1
            finally:
                src.close()


def sampled(fn, every_s: float = 1.0) -> tuple[object, list[tuple[float, float]]]:
    """Run ``fn()`` while a thread samples the resident memory every ``every_s`` seconds."""
    samples: list[tuple[float, float]] = []
    done = threading.Event()
    t0 = time.perf_counter()

    def watch():
        while not done.wait(every_s):
            samples.append((round(time.perf_counter() - t0, 1), round(rss_mb(), 1)))
    th = threading.Thread(target=watch, daemon=True)
    th.start()
    try:
        out = fn()
    finally:
        done.set()
        th.join()
    samples.append((round(time.perf_counter() - t0, 1), round(rss_mb(), 1)))
    return out, samples


def slope_mb_per_min(samples) -> float | None:
    """Least-squares RSS slope over the second half of the run (after warm-up), MB per minute."""
    import numpy as np
    half = samples[len(samples) // 2:]
    if len(half) < 3:
        return None
    t, m = np.array([s[0] for s in half]), np.array([s[1] for s in half])
    return round(float(np.polyfit(t, m, 1)[0] * 60), 3)


def run_streams(sources, trk, cls, events: Path) -> dict:
    from edge.classify.runtime import ClassifierRuntime
    from edge.tracking.session import TrackerRuntime
    pipe = Pipeline([StreamInput(s, BOX, f"s{i}") for i, s in enumerate(sources)], tracker=TrackerRuntime(trk),
                    classifier=ClassifierRuntime(cls), sinks=[EventsSink(events)], max_batch=max(8, len(sources)))
    t0 = time.perf_counter()
    summaries, samples = sampled(pipe.run)
    wall = time.perf_counter() - t0
    return {"streams": len(sources), "wall_s": round(wall, 1),
            "processed": [s.processed for s in summaries], "captured": [s.captured for s in summaries],
            "drops": [s.drops for s in summaries], "fps_total": round(sum(s.processed for s in summaries) / wall, 1),
            "rss_mb": samples, "rss_start_mb": samples[0][1] if samples else None,
            "rss_peak_mb": max(m for _, m in samples), "rss_slope_mb_per_min": slope_mb_per_min(samples)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracker")
    ap.add_argument("--classifier")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--frames", type=int, default=250, help="frames per stream in the many-stream run")
    ap.add_argument("--soak-frames", type=int, default=22500, help="frames of the long single-stream run")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="edge-soak-"))
    dirs = {"tracker": a.tracker, "classifier": a.classifier}
    for m in ("tracker", "classifier"):
        if not dirs[m]:
            dirs[m] = edge.build(edge.export(m, work / f"{m}_onnx").path, "cpu", "fp32", work / m).path
    from edge.runtime import load_engines
    trk, cls = load_engines(dirs["tracker"]), load_engines(dirs["classifier"])
    clip = video_clip("bikes.mp4")
    many = run_streams([LoopedFile(clip, a.frames) for _ in range(a.streams)], trk, cls, work / "many.jsonl")
    print(f"{a.streams} streams x {a.frames} frames: processed {many['processed']}, {many['fps_total']} FPS total, "
          f"RSS peak {many['rss_peak_mb']} MB", flush=True)
    soak = run_streams([LoopedFile(clip, a.soak_frames)], trk, cls, work / "soak.jsonl")
    print(f"soak {a.soak_frames} frames: processed {soak['processed']}, RSS {soak['rss_start_mb']} -> "
          f"{soak['rss_mb'][-1][1]} MB (slope {soak['rss_slope_mb_per_min']} MB/min)", flush=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
            "engines": {k: str(v) for k, v in dirs.items()}, "clip": clip.name}
    out = Path(a.out)
    atomic_write_json(out / "soak.json", {"meta": meta, "many_streams": many, "soak": soak})
    md = [f"# `edge run` soak ({meta['date']}, {meta['cores']} cores)", "",
          "| run | streams | frames processed per stream | drops | FPS total | RSS start / peak / end MB | "
          "RSS slope (2nd half) MB/min |", "|---|---|---|---|---|---|---|"]
    for name, r in (("many streams", many), ("soak", soak)):
        md.append(f"| {name} | {r['streams']} | {r['processed']} | {sum(r['drops'])} | {r['fps_total']} | "
                  f"{r['rss_start_mb']} / {r['rss_peak_mb']} / {r['rss_mb'][-1][1]} | {r['rss_slope_mb_per_min']} |")
    atomic_write_bytes(out / "soak.md", ("\n".join(md) + "\n").encode())
    print(f"wrote {out / 'soak.json'} and {out / 'soak.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
