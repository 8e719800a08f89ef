"""Benchmark of the ``edge run`` loop: end-to-end throughput vs the slowest stage alone, per-stage latency
percentiles, 1/2/4 streams; the same loop with the PyTorch reference networks as a baseline row.

    python bench/pipeline.py [--tracker ENGINE_DIR --classifier ENGINE_DIR] [--clip bikes.mp4]
                             [--frames 120] [--streams 1 2 4] [--out bench/results]

Without engine folders, both models are exported and built for the cpu target into a temporary folder
(``edge export`` + ``edge build``). Each stage alone runs the shipped code on the same frames, one stage
at a time, single-threaded: capture = decode (``VideoFileSource``), prep = resize + DIS flow
(``ClassifierRuntime.prepare``), infer = the pipeline's own inference step (tracker + encoder batched
across streams + ConvLSTM windows), sink = overlay video + JSON Lines. End to end = the threaded
``Pipeline`` with N file sources of the clip. Both are repeated (alternating) and the medians reported.
Goals (issue 16): CPU ms per frame of the stages alone <= 9; end to end >= 0.9x the CPU bound (cores / CPU
seconds per frame of the stages alone); both models on 1 stream >= 150 FPS, 4 streams >= 220 FPS in total.
Engines load with ``edge run``'s thread rule (``edge.stream.run.engine_threads``) unless ``--threads``.
Writes ``pipeline.json`` and ``pipeline.md`` (atomically) into ``--out``.
"""
from __future__ import annotations

import argparse
import os
import platform
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.assets import video_clip  # noqa: E402
from edge.classify.runtime import ClassifierRuntime  # noqa: E402
from edge.fileio import atomic_write_bytes, atomic_write_json  # noqa: E402
from edge.stream.pipeline import STAGES, Pipeline, StreamInput, Work  # noqa: E402
from edge.stream.sinks import EventsSink, VideoSink  # noqa: E402
from edge.stream.sources import Frame, open_source  # noqa: E402

BOX = {"bikes.mp4": (250.0, 90.0, 60.0, 110.0), "carphone_pristine.mp4": (60.0, 30.0, 60.0, 70.0),
       "bigbuckbunny.mp4": (500.0, 250.0, 200.0, 200.0)}


def build_engines(work: Path) -> dict[str, Path]:
    import edge
    dirs = {}
    for model in ("tracker", "classifier"):
        eng = work / model
        if not (eng / "fingerprint.json").exists():
            edge.build(edge.export(model, work / f"{model}_onnx").path, "cpu", "fp32", eng)
        dirs[model] = eng
    return dirs


def make_pipeline(n, clip, frames, trk, cls, sinks=(), box=None):
    from edge.tracking.session import TrackerRuntime
    from edge.stream.sources import decode_threads
    streams = [StreamInput(open_source(str(clip), decode_threads=decode_threads(n)), box, f"s{i}") for i in range(n)]
    return Pipeline(streams, tracker=TrackerRuntime(trk) if trk is not None else None,
                    classifier=ClassifierRuntime(cls) if cls is not None else None, sinks=list(sinks),
                    max_frames=frames, max_batch=max(8, n))


def pct(values) -> dict:
    a = np.asarray(values, np.float64) * 1000
    if a.size == 0:
        return {}
    return {f"p{q}": round(float(np.percentile(a, q)), 3) for q in (50, 90, 95, 99)} | \
        {"mean": round(float(a.mean()), 3), "max": round(float(a.max()), 3)}


def in_thread(fn, *args):
    """Run ``fn`` in a fresh worker thread, as every stage runs in the pipeline (thread pools of torch /
    numba / OpenMP behave differently in the main thread: PyTorch eager measured 2-3x slower there)."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", fn(*args)))
    t.start()
    t.join()
    if "r" not in out:
        raise RuntimeError(f"{fn.__name__} failed (see the traceback above)")
    return out["r"]


def stages_alone(n, clip, frames, trk, cls, box, tmp: Path) -> dict:
    """Each stage by itself on the same n x frames, one stage at a time, in a worker thread, with numpy's BLAS
    on one thread as ``Pipeline.run`` holds it (``edge.runtime.blas``)."""
    from edge.runtime.blas import one_blas_thread
    with one_blas_thread():
        return in_thread(_stages_alone, n, clip, frames, trk, cls, box, tmp)


def _stages_alone(n, clip, frames, trk, cls, box, tmp: Path) -> dict:
    from edge.stream.sources import decode_threads
    res, cpu = {}, {}
    # capture
    c0 = time.process_time()
    t0 = time.perf_counter()
    decoded = []
    for s in range(n):
        src = open_source(str(clip), decode_threads=decode_threads(n))
        stop = threading.Event()
        imgs = []
        for img, ts, _ in src.frames(stop):
            imgs.append((img, ts))
            if len(imgs) >= frames:
                break
        src.close()
        decoded.append(imgs)
    res["capture"] = n * frames / (time.perf_counter() - t0)
    cpu["capture"] = (time.process_time() - c0) / (n * frames)
    # prepare (resize + DIS flow): every session's own prepare, as the prep threads run it
    pipe = make_pipeline(n, clip, frames, trk, cls, box=box)
    work = [[None] * frames for _ in range(n)]
    c0 = time.process_time()
    t0 = time.perf_counter()
    for s in range(n):
        for i, (img, ts) in enumerate(decoded[s]):
            f = Frame(s, i, ts, img, 0.0)
            work[s][i] = Work(f, [x.prepare(f) if x is not None else None for x in pipe.sessions[s]], 0.0)
    res["prep"] = n * frames / (time.perf_counter() - t0)
    cpu["prep"] = (time.process_time() - c0) / (n * frames)
    # inference: the pipeline's own step, one frame of every stream per batch (as when streams keep pace)
    pipe.q_out = queue.Queue()
    c0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(frames):
        batch = [work[s][i] for s in range(n)]
        for w in batch:
            w.frame.captured = time.perf_counter()
        pipe._infer_batch(batch)
    res["infer"] = n * frames / (time.perf_counter() - t0)
    cpu["infer"] = (time.process_time() - c0) / (n * frames)
    pipe._close_model_workers()
    results = []
    while not pipe.q_out.empty():
        results.append(pipe.q_out.get())
    # sinks (overlay video + events)
    sinks = [VideoSink(tmp / "alone.mp4"), EventsSink(tmp / "alone.jsonl")]
    c0 = time.process_time()
    t0 = time.perf_counter()
    for r in results:
        for k in sinks:
            k.write(r)
    for k in sinks:
        k.close(pipe.summaries())
    res["sink"] = n * frames / (time.perf_counter() - t0)
    cpu["sink"] = (time.process_time() - c0) / (n * frames)
    return {k: round(v, 2) for k, v in res.items()} | {f"cpu_ms_{k}": round(1000 * v, 3) for k, v in cpu.items()}


def end_to_end(n, clip, frames, trk, cls, box, tmp: Path) -> dict:
    sinks = [VideoSink(tmp / f"e2e{n}.mp4"), EventsSink(tmp / f"e2e{n}.jsonl")]
    pipe = make_pipeline(n, clip, frames, trk, cls, sinks, box)
    c0 = time.process_time()
    t0 = time.perf_counter()
    summary = pipe.run()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    processed = sum(s.processed for s in summary)
    times = {k: [v for st in pipe.stats for v in st.times[k]] for k in STAGES}
    return {"fps": round(processed / wall, 2), "processed": processed, "wall_s": round(wall, 3),
            "cpu_ms_per_frame": round(1000 * cpu / max(processed, 1), 3),
            # share of the wall time the inference thread was working: ~1.0 = never starved by the pipeline
            "infer_busy": round(sum(times["infer"]) / wall, 3),
            "drops": sum(s.drops for s in summary),
            "mean_batch": round(float(np.mean(pipe.batches)), 2) if pipe.batches else None,
            "latency_ms": {k: pct(v) for k, v in times.items()}}


class PacedCapture:
    """A camera stand-in: decodes the clip with OpenCV and releases frames in real time at ``fps``."""

    def __init__(self, path, fps: float):
        import cv2
        self.cap, self.period, self.next = cv2.VideoCapture(str(path)), 1.0 / fps, None

    def isOpened(self):
        return self.cap.isOpened()

    def read(self):
        now = time.perf_counter()
        self.next = now if self.next is None else self.next + self.period
        if self.next > now:
            time.sleep(self.next - now)
        return self.cap.read()

    def release(self):
        self.cap.release()


def live_latency(clip, fps, frames, trk, cls, box, tmp: Path) -> dict:
    """One live stream at ``fps`` (real-time pacing): capture-to-sink latency and drops."""
    from edge.stream.sources import LiveSource
    from edge.tracking.session import TrackerRuntime
    src = LiveSource(lambda: PacedCapture(clip, fps), f"camera@{fps}fps", max_reconnects=0)
    pipe = Pipeline([StreamInput(src, box, "live")], tracker=TrackerRuntime(trk),
                    classifier=ClassifierRuntime(cls), sinks=[VideoSink(tmp / "live.mp4"),
                                                              EventsSink(tmp / "live.jsonl")],
                    max_frames=frames)
    s = in_thread(pipe.run)[0]
    st = pipe.stats[0]
    row = {"camera_fps": fps, "captured": s.captured, "processed": s.processed, "drops": s.drops,
           "fps": s.fps, "latency_ms": pct(st.times["latency"])}
    print(f"live camera at {fps} fps: processed {s.processed}/{s.captured}, drops {s.drops}, "
          f"latency {row['latency_ms']}", flush=True)
    return row


def measure(n, clip, frames, trk, cls, box, work, repeats, backend) -> dict:
    """Stages alone and end to end, alternated ``repeats`` times; medians (the machine may be shared)."""
    alones, e2es = [], []
    for _ in range(repeats):
        alones.append(stages_alone(n, clip, frames, trk, cls, box, work))
        e2es.append(end_to_end(n, clip, frames, trk, cls, box, work))
    med = {k: round(float(np.median([a[k] for a in alones])), 3) for k in alones[0]}
    alone = {k: v for k, v in med.items() if not k.startswith("cpu_")}
    cpu_alone = {k[7:]: v for k, v in med.items() if k.startswith("cpu_")}
    e2e = sorted(e2es, key=lambda e: e["fps"])[len(e2es) // 2]
    cpu_e2e = float(np.median([e["cpu_ms_per_frame"] for e in e2es]))
    slowest = min(alone, key=alone.get)
    row = {"streams": n, "backend": backend, "frames_per_stream": frames, "repeats": repeats,
           "stage_fps_alone": alone, "slowest_stage": slowest, "slowest_fps": alone[slowest],
           "e2e_fps": e2e["fps"], "e2e_fps_runs": [e["fps"] for e in e2es],
           "infer_fps_alone_runs": [a["infer"] for a in alones],
           "ratio": round(e2e["fps"] / alone[slowest], 3),
           "cpu_ms_per_frame_alone": cpu_alone, "cpu_ms_per_frame_e2e": round(cpu_e2e, 3),
           "cpu_overhead": round(cpu_e2e / sum(cpu_alone.values()), 3), "infer_busy": e2e["infer_busy"],
           # what the cores allow: cores / CPU seconds per frame of the stages alone; goal e2e >= 0.9x of it
           "cpu_bound_fps": round((os.cpu_count() or 1) * 1000 / sum(cpu_alone.values()), 1),
           "e2e_vs_cpu_bound": round(e2e["fps"] * sum(cpu_alone.values()) / ((os.cpu_count() or 1) * 1000), 3),
           "e2e": e2e}
    print(f"{backend}, {n} stream(s): e2e {e2e['fps']:.1f} fps (runs {row['e2e_fps_runs']}; "
          f"{row['e2e_vs_cpu_bound']:.2f}x the CPU bound {row['cpu_bound_fps']:.0f}), stages alone "
          f"{alone}, slowest {slowest} {alone[slowest]:.1f} fps, ratio {row['ratio']:.2f}; CPU ms/frame e2e "
          f"{cpu_e2e:.1f} vs stages alone {cpu_alone} (x{row['cpu_overhead']:.2f}); infer busy {e2e['infer_busy']:.2f}",
          flush=True)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracker")
    ap.add_argument("--classifier")
    ap.add_argument("--clip", default="bikes.mp4")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--repeats", type=int, default=3, help="alternated repetitions (medians reported)")
    ap.add_argument("--live-fps", type=float, nargs="*", default=[10.0, 60.0],
                    help="paced live-camera runs (1 stream) for latency and drops")
    ap.add_argument("--reference-frames", type=int, default=40,
                    help="frames for the PyTorch-reference row (1 stream; 0 = skip)")
    ap.add_argument("--threads", type=int, default=None,
                    help="onnxruntime threads per engine (default: as edge run, the build's shared by the models)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args(argv)

    from edge.runtime import load_engines
    from edge.stream.run import engine_threads
    clip = video_clip(args.clip)
    box = BOX.get(args.clip, (10.0, 10.0, 40.0, 40.0))
    work = Path(tempfile.mkdtemp(prefix="edge-bench-pipeline-"))
    dirs = {"tracker": args.tracker, "classifier": args.classifier}
    if not (args.tracker and args.classifier):
        built = build_engines(work)
        dirs = {k: v or built[k] for k, v in dirs.items()}
    threads = {k: args.threads or engine_threads(v, 2) for k, v in dirs.items()}
    trk, cls = (load_engines(dirs[k], threads=threads[k]) for k in ("tracker", "classifier"))
    end_to_end(1, clip, 10, trk, cls, box, work)                       # warm-up

    load_start = [round(x, 2) for x in os.getloadavg()]
    rows = []
    for n in args.streams:
        rows.append(measure(n, clip, args.frames, trk, cls, box, work, args.repeats,
                            f"engines ({trk.backend} cpu tracker {trk.precision}, classifier {cls.precision})"))
    live = [live_latency(clip, fps, args.frames, trk, cls, box, work) for fps in args.live_fps]
    if args.reference_frames:
        from edge.models.registry import torch_engines   # the PyTorch reference behind the same interface
        rt, rc = torch_engines("tracker"), torch_engines("classifier")
        end_to_end(1, clip, 5, rt, rc, box, work)
        rows.append(measure(1, clip, args.reference_frames, rt, rc, box, work, 1,
                            "PyTorch reference (TorchEngine, eager)"))

    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "clip": args.clip,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_average_start": load_start,
            "load_average": [round(x, 2) for x in os.getloadavg()], "engines": {k: str(v) for k, v in dirs.items()},
            "threads_per_engine": threads,
            "goal": "stages alone <= 9 CPU ms/frame; e2e_fps >= 0.9 x CPU bound; 1 stream >= 150 FPS, 4 >= 220"}
    out = Path(args.out)
    atomic_write_json(out / "pipeline.json", {"meta": meta, "rows": rows, "live": live})
    atomic_write_bytes(out / "pipeline.md", markdown(meta, rows, live).encode())
    print(f"wrote {out / 'pipeline.json'} and {out / 'pipeline.md'}")
    return 0


def markdown(meta, rows, live=()) -> str:
    lines = [f"# `edge run` pipeline benchmark ({meta['date']}, {meta['clip']}, {meta['cores']} cores, "
             f"load average {meta.get('load_average_start')} -> {meta['load_average']}, threads per engine "
             f"{meta.get('threads_per_engine')})", "",
             "End to end = threaded pipeline (capture -> prep + DIS flow -> tracker + classifier -> overlay video"
             " + JSONL), FPS summed over streams. Stage alone = that stage's code by itself on the same frames."
             " Medians of alternated repeats. Infer busy = share of the end-to-end wall time the inference"
             " thread was working (1.0 = the pipeline never starves it; the rest of the gap is CPU sharing:"
             " the other stages and other processes run on the same 2 cores as onnxruntime's 2 threads).",
             " CPU bound = cores / CPU ms per frame of the stages alone.",
             "", "| backend | streams | e2e FPS | capture | prep | infer | sink | slowest | e2e / slowest "
             "| CPU ms/frame e2e / sum of stages alone | CPU bound FPS | e2e / CPU bound | infer busy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["stage_fps_alone"]
        lines.append(f"| {r['backend']} | {r['streams']} | {r['e2e_fps']:.1f} | {a['capture']:.0f} | {a['prep']:.0f} "
                     f"| {a['infer']:.1f} | {a['sink']:.0f} | {r['slowest_stage']} | {r['ratio']:.2f} "
                     f"| {r['cpu_ms_per_frame_e2e']:.1f} / {sum(r['cpu_ms_per_frame_alone'].values()):.1f} "
                     f"| {r['cpu_bound_fps']:.0f} | {r['e2e_vs_cpu_bound']:.2f} | {r['infer_busy']:.2f} |")
    lines += ["", "Per-stage latency in the end-to-end run (ms, p50 / p95 / p99; infer is per frame of a batch, "
              "latency = capture to sink done):", "", "| backend | streams | capture | prep | infer | sink | latency |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        L = r["e2e"]["latency_ms"]
        cell = lambda k: f"{L[k].get('p50', 0):.1f} / {L[k].get('p95', 0):.1f} / {L[k].get('p99', 0):.1f}"  # noqa: E731
        lines.append(f"| {r['backend']} | {r['streams']} | " + " | ".join(cell(k) for k in STAGES) + " |")
    if live:
        lines += ["", "File sources never drop, so their latency is queueing (back-pressure). A live camera "
                  "(clip paced in real time, 1 stream, engines) shows the latency a device sees:", "",
                  "| camera FPS | processed / captured | drops | output FPS | latency p50 / p95 / p99 ms |",
                  "|---|---|---|---|---|"]
        for r in live:
            L = r["latency_ms"]
            lines.append(f"| {r['camera_fps']:g} | {r['processed']} / {r['captured']} | {r['drops']} | {r['fps']:.1f} "
                         f"| {L.get('p50', 0):.0f} / {L.get('p95', 0):.0f} / {L.get('p99', 0):.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
