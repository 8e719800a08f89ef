"""Where the CPU of ``edge run`` goes, per frame: named sections of the shipped code, per thread, per function.

    python bench/profile_run.py --tracker ENGINE_DIR --classifier ENGINE_DIR [--clip bikes.mp4] [--frames 200]
                                [--streams 1] [--threads 1 2] [--repeats 3] [--py-spy] [--out bench/results]

Three views, each for every ``--threads`` setting (onnxruntime intra-op threads the engines load with):

1. **Sections, stages alone** (one stage at a time in one worker thread, as ``bench/pipeline.py`` does):
   the shipped functions are wrapped with timers (wall, process CPU = every thread of the process, so the
   onnxruntime workers' work and spinning land on the engine call that woke them, and this thread's own CPU);
   times are exclusive (a section's children are subtracted). Sections: decode; resize, gray, DIS flow, rgb
   / flow conversion; the tracker's crop, candidates, engine calls, the logic around them (argmax,
   regression, boxes); the classifier's encoder and step engines and its host logic; the pipeline's glue;
   drawing, video encoding, events. Each timed call costs about 12 us of timers (``process_time`` and
   ``thread_time`` are system calls here), ~0.25 ms per frame in the stage totals of this view.
2. **Threads, end to end**: the threaded ``Pipeline`` (capture -> prep -> infer -> overlay video + events);
   CPU seconds of each stage thread at its end (``time.thread_time``) and of the native workers
   (onnxruntime / numba / OpenCV: process CPU minus the Python threads), per frame; the models step
   concurrently there as in ``edge run`` (alone they step one after the other); queueing and
   thread-switch overhead = end-to-end CPU minus the stages alone.
3. **Functions** (cProfile of the inference stage alone in a separate pass, exclusive time per frame, top 30
   (cProfile's own overhead inflates cheap calls)), and with
   ``--py-spy`` a native sampling profile of the end-to-end run (``py-spy record --native``; top frames by
   self samples, Python and C/C++ alike).

Stages alone and end to end are alternated ``--repeats`` times; medians reported. The 1-min load average is
recorded before and after (the machine may be shared: CPU times are steadier than wall times under load).
Writes ``profile_run.json`` and ``profile_run.md`` (atomically) into ``--out``.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from edge.assets import video_clip  # noqa: E402
from edge.fileio import atomic_write_bytes, atomic_write_json  # noqa: E402

BOX = {"bikes.mp4": (250.0, 90.0, 60.0, 110.0), "carphone_pristine.mp4": (60.0, 30.0, 60.0, 70.0)}


# -- named sections -------------------------------------------------------------------------------------
class Sections:
    """Exclusive wall / process-CPU / thread-CPU seconds and call counts per section name."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.tcpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._local = threading.local()
        self._undo: list = []
        self.enabled = True

    def _stack(self) -> list:
        s = getattr(self._local, "stack", None)
        if s is None:
            s = self._local.stack = []
        return s

    def timed(self, name: str, fn):
        def wrapper(*a, **kw):
            if not self.enabled:
                return fn(*a, **kw)
            stack = self._stack()
            child = [0.0, 0.0, 0.0]
            stack.append(child)
            w0, c0, t0 = time.perf_counter(), time.process_time(), time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                dw, dc, dt = time.perf_counter() - w0, time.process_time() - c0, time.thread_time() - t0
                stack.pop()
                self.wall[name] += dw - child[0]
                self.cpu[name] += dc - child[1]
                self.tcpu[name] += dt - child[2]
                self.calls[name] += 1
                if stack:
                    p = stack[-1]
                    p[0] += dw
                    p[1] += dc
                    p[2] += dt
        wrapper.__wrapped__ = fn
        return wrapper

    def patch(self, owner, attr: str, name: str) -> bool:
        """Wrap ``owner.attr`` (a module function, class method or instance attribute); False if absent."""
        if not hasattr(owner, attr):
            return False
        old = owner.__dict__.get(attr) if hasattr(owner, "__dict__") and attr in owner.__dict__ else None
        fn = getattr(owner, attr)
        if isinstance(owner, type) and isinstance(old, (staticmethod, classmethod)):
            return False
        setattr(owner, attr, self.timed(name, fn if old is None else old))
        self._undo.append((owner, attr, old))
        return True

    def unpatch(self) -> None:
        for owner, attr, old in reversed(self._undo):
            if old is None:
                try:
                    delattr(owner, attr)
                except AttributeError:
                    pass
            else:
                setattr(owner, attr, old)
        self._undo.clear()

    def reset(self) -> None:
        for d in (self.wall, self.cpu, self.tcpu, self.calls):
            d.clear()

    def table(self, frames: int) -> dict:
        return {k: {"calls_per_frame": round(self.calls[k] / frames, 3),
                    "wall_ms": round(1e3 * self.wall[k] / frames, 4),
                    "cpu_ms": round(1e3 * self.cpu[k] / frames, 4),
                    "thread_cpu_ms": round(1e3 * self.tcpu[k] / frames, 4)}
                for k in sorted(self.calls, key=lambda k: -self.cpu[k])}


#: (module path, attribute, section name): what gets a timer. Missing ones are skipped (the code moves on).
FUNCTIONS = [
    ("edge.classify.preprocess", "resize_frame", "prep.resize"),
    ("edge.classify.preprocess", "gray", "prep.gray"),
    ("edge.classify.preprocess", "flow_input", "prep.flow_encode"),
    ("edge.classify.preprocess", "rgb_from_small", "prep.rgb_convert"),
    ("edge.classify.preprocess:FrameStream", "__call__", "prep.frame_stream_other"),
    ("edge.flow:DISFlow", "__call__", "prep.dis_flow"),
    ("edge.classify.runtime:ClassifierSession", "prepare", "prep.session_other"),
    ("edge.tracking.tracker", "crop_region", "tracker.crop"),
    ("edge.tracking.tracker", "sample_candidates", "tracker.candidates"),
    ("edge.tracking.tracker:SiameseTracker", "update", "tracker.logic"),
    ("edge.tracking.tracker:RidgeRegressor", "__call__", "tracker.regression"),
    ("edge.tracking.session:TrackerSession", "update", "tracker.session"),
    ("edge.tracking.session:TrackerRuntime", "step", "tracker.runtime_step"),
    ("edge.classify.runtime:ClassifierRuntime", "step", "classifier.logic"),
    ("edge.classify.runtime", "run_batched", "classifier.batching"),
    ("edge.classify.runtime", "attention_map", "classifier.attention_map"),
    ("edge.classify.runtime:ClassifierRuntime", "classify", "classifier.windows"),
    ("edge.runtime.ort_backend", "_check_feeds", "engine.feeds"),
    ("edge.stream.pipeline:Pipeline", "_infer_batch", "infer.pipeline"),
    ("edge.stream.sinks", "draw_overlay", "sink.draw"),
    ("edge.stream.sinks:VideoSink", "write", "sink.video_encode"),
    ("edge.stream.sinks:EventsSink", "write", "sink.events"),
]


def _resolve(spec: str):
    import importlib
    mod, _, cls = spec.partition(":")
    m = importlib.import_module(mod)
    return getattr(m, cls) if cls else m


def instrument(sec: Sections, engines: list) -> list[str]:
    done = []
    for spec, attr, name in FUNCTIONS:
        try:
            owner = _resolve(spec)
        except (ImportError, AttributeError):
            continue
        if sec.patch(owner, attr, name):
            done.append(name)
    for eng in engines:
        for net, e in eng.networks.items():
            sec.patch(e, "run", f"engine.{net}")
            if hasattr(e, "_roi_pool"):
                sec.patch(e, "_roi_pool", f"engine.{net}.numba_roi_pool")
            done.append(f"engine.{net}")
    return done


# -- runs -----------------------------------------------------------------------------------------------
def in_thread(fn, *args):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", fn(*args)), name="bench-worker")
    t.start()
    t.join()
    if "r" not in out:
        raise RuntimeError(f"{fn.__name__} failed (see the traceback above)")
    return out["r"]


def decode(clip, n, frames):
    from edge.stream.sources import open_source
    decoded = []
    for _ in range(n):
        src = open_source(str(clip))
        imgs = []
        for img, ts, _ in src.frames(threading.Event()):
            imgs.append((img, ts))
            if len(imgs) >= frames:
                break
        src.close()
        decoded.append(imgs)
    return decoded


def stages_alone(n, clip, frames, trk, cls, box, tmp: Path, sec: Sections, prof: cProfile.Profile | None):
    """Each stage alone on n x frames in this thread; sections filled; returns per-stage CPU/wall ms."""
    from pipeline import make_pipeline
    from edge.stream.pipeline import Work
    from edge.stream.sinks import EventsSink, VideoSink
    from edge.stream.sources import Frame
    out = {}

    def clocked(name, fn):
        c0, w0 = time.process_time(), time.perf_counter()
        r = fn()
        out[name] = {"cpu_ms": 1e3 * (time.process_time() - c0) / (n * frames),
                     "wall_ms": 1e3 * (time.perf_counter() - w0) / (n * frames)}
        return r

    sec.enabled = True
    decoded = clocked("capture", lambda: sec.timed("capture.decode", decode)(clip, n, frames))
    pipe = make_pipeline(n, clip, frames, trk, cls, box=box)

    def prep():
        work = [[None] * frames for _ in range(n)]
        for s in range(n):
            for i, (img, ts) in enumerate(decoded[s]):
                f = Frame(s, i, ts, img, 0.0)
                work[s][i] = Work(f, [x.prepare(f) if x is not None else None for x in pipe.sessions[s]], 0.0)
        return work
    work = clocked("prep", prep)
    pipe.q_out = queue.Queue()
    pipe.concurrent_models = False     # one model at a time here: process CPU per section stays attributable

    def infer():
        if prof is not None:
            prof.enable()
        for i in range(frames):
            batch = [work[s][i] for s in range(n)]
            for w in batch:
                w.frame.captured = time.perf_counter()
            pipe._infer_batch(batch)
        if prof is not None:
            prof.disable()
    clocked("infer", infer)
    results = []
    while not pipe.q_out.empty():
        results.append(pipe.q_out.get())
    sinks = [VideoSink(tmp / "alone.mp4"), EventsSink(tmp / "alone.jsonl")]

    def sink():
        for r in results:
            for k in sinks:
                k.write(r)
        for k in sinks:
            k.close(pipe.summaries())
    clocked("sink", sink)
    return out


def end_to_end(n, clip, frames, trk, cls, box, tmp: Path) -> dict:
    """The threaded pipeline; CPU per thread at its end (Python threads) and for the native workers."""
    from pipeline import make_pipeline
    from edge.stream.pipeline import Pipeline
    from edge.stream.sinks import EventsSink, VideoSink
    sinks = [VideoSink(tmp / f"e2e{n}.mp4"), EventsSink(tmp / f"e2e{n}.jsonl")]
    pipe = make_pipeline(n, clip, frames, trk, cls, sinks, box)
    per_thread: dict[str, float] = {}
    lock = threading.Lock()
    guard = Pipeline._guard

    def timed_guard(self, fn, *args):
        try:
            guard(self, fn, *args)
        finally:
            name = threading.current_thread().name.rstrip("0123456789")
            with lock:
                per_thread[name] = per_thread.get(name, 0.0) + time.thread_time()

    pipe._guard = timed_guard.__get__(pipe)
    c0, m0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
    summary = pipe.run()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    main = time.thread_time() - m0
    processed = sum(s.processed for s in summary)
    threads = {k: 1e3 * v / processed for k, v in per_thread.items()}
    threads["main (waiting)"] = 1e3 * main / processed
    threads["native workers (onnxruntime, numba, OpenCV)"] = 1e3 * (cpu - sum(per_thread.values()) - main) / processed
    return {"fps": processed / wall, "processed": processed, "wall_s": wall, "cpu_ms_per_frame": 1e3 * cpu / processed,
            "cpu_ms_per_frame_by_thread": {k: round(v, 3) for k, v in threads.items()},
            "mean_batch": float(np.mean(pipe.batches)) if pipe.batches else None}


def py_spy_profile(args, threads: int, tmp: Path) -> dict | None:
    """``py-spy record --native`` of one end-to-end run in a child process: top frames by self samples."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        return {"error": "py-spy not installed (pip install py-spy)"}
    raw = tmp / "spy.txt"
    cmd = [exe, "record", "--native", "--format", "raw", "--rate", "250", "-o", str(raw), "--",
           sys.executable, __file__, "--child-e2e", "--tracker", args.tracker, "--classifier", args.classifier,
           "--clip", args.clip, "--frames", str(args.frames), "--streams", str(args.streams[0]),
           "--threads", str(threads)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 or not raw.is_file():
        return {"error": (p.stderr or p.stdout).strip().splitlines()[-1:] or ["py-spy failed"]}
    self_counts: dict[str, int] = defaultdict(int)
    incl_counts: dict[str, int] = defaultdict(int)
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        frames_ = stack.split(";")
        total += k
        self_counts[_short(frames_[-1])] += k
        for f in {_short(f) for f in frames_}:
            incl_counts[f] += k
    top = sorted(self_counts.items(), key=lambda kv: -kv[1])[:40]
    topi = sorted(incl_counts.items(), key=lambda kv: -kv[1])[:40]
    return {"samples": total, "rate_hz": 250,
            "self": [{"frame": f, "share": round(c / total, 4)} for f, c in top],
            "inclusive": [{"frame": f, "share": round(c / total, 4)} for f, c in topi]}


def _short(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py)"
    name, _, loc = frame.partition(" (")
    loc = loc.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({Path(loc).name})" if loc else name


def cprofile_top(prof: cProfile.Profile, frames: int, top: int = 30) -> list[dict]:
    st = pstats.Stats(prof)
    rows = []
    for (file, line, fn), (cc, nc, tt, ct, _) in st.stats.items():
        rows.append({"function": f"{fn} ({Path(file).name}:{line})", "calls_per_frame": round(nc / frames, 2),
                     "self_ms": round(1e3 * tt / frames, 4), "cumulative_ms": round(1e3 * ct / frames, 4)})
    return sorted(rows, key=lambda r: -r["self_ms"])[:top]


def median_dicts(ds: list[dict]) -> dict:
    out = {}
    for k in ds[0]:
        v = [d[k] for d in ds if k in d]
        if isinstance(v[0], dict):
            out[k] = median_dicts(v)
        elif isinstance(v[0], (int, float)):
            out[k] = round(float(np.median(v)), 4)
    return out


def profile(args, threads: int, work: Path) -> dict:
    from edge.runtime import load_engines
    trk = load_engines(args.tracker, threads=threads)
    cls = load_engines(args.classifier, threads=threads)
    clip = video_clip(args.clip)
    box = BOX.get(args.clip, (10.0, 10.0, 40.0, 40.0))
    n, frames = args.streams[0], args.frames
    in_thread(end_to_end, 1, clip, 10, trk, cls, box, work)                      # warm-up
    sec = Sections()
    instrumented = instrument(sec, [trk, cls])
    sec.enabled = False
    alone_runs, e2e_runs, tables = [], [], []
    for r in range(args.repeats):
        sec.reset()
        alone_runs.append(in_thread(stages_alone, n, clip, frames, trk, cls, box, work, sec, None))
        tables.append(sec.table(n * frames))
        sec.enabled = False
        e2e_runs.append(in_thread(end_to_end, n, clip, frames, trk, cls, box, work))
    sec.unpatch()
    prof = cProfile.Profile()          # a separate pass: cProfile's overhead stays out of the numbers above
    in_thread(stages_alone, n, clip, frames, trk, cls, box, work, Sections(), prof)
    # sections: median over repeats, per section
    names = sorted({k for t in tables for k in t}, key=lambda k: -np.median([t.get(k, {}).get("cpu_ms", 0)
                                                                               for t in tables]))
    sections = {k: median_dicts([t[k] for t in tables if k in t]) for k in names}
    alone = median_dicts(alone_runs)
    e2e = median_dicts(e2e_runs)
    cpu_alone = sum(v["cpu_ms"] for v in alone.values())
    engines_ms = sum(v["cpu_ms"] for k, v in sections.items() if k.startswith("engine."))
    row = {"threads": threads, "streams": n, "frames_per_stream": frames, "repeats": args.repeats,
           "stages_alone": alone, "cpu_ms_per_frame_stages_alone": round(cpu_alone, 3),
           "cpu_bound_fps": round((os.cpu_count() or 1) * 1e3 / cpu_alone, 1),
           "sections": sections, "instrumented": instrumented, "e2e": e2e,
           "cpu_ms_engines": round(engines_ms, 3), "cpu_ms_host": round(cpu_alone - engines_ms, 3),
           "e2e_fps_runs": [round(e["fps"], 1) for e in e2e_runs],
           "e2e_vs_cpu_bound": round(e2e["fps"] / ((os.cpu_count() or 1) * 1e3 / cpu_alone), 3),
           "queueing_and_contention_cpu_ms": round(e2e["cpu_ms_per_frame"] - cpu_alone, 3),
           "cprofile_infer_top": cprofile_top(prof, n * frames)}
    print(f"threads={threads}: stages alone CPU ms/frame {cpu_alone:.2f} "
          f"({ {k: round(v['cpu_ms'], 2) for k, v in alone.items()} }), e2e {e2e['fps']:.1f} fps "
          f"(runs {row['e2e_fps_runs']}), e2e CPU {e2e['cpu_ms_per_frame']:.2f} ms/frame; engines {engines_ms:.2f}, "
          f"host {cpu_alone - engines_ms:.2f}", flush=True)
    for k, v in list(sections.items())[:24]:
        print(f"  {k:34s} cpu {v['cpu_ms']:7.3f}  thread {v['thread_cpu_ms']:7.3f}  wall {v['wall_ms']:7.3f} ms/frame"
              f"  x{v['calls_per_frame']}", flush=True)
    if args.py_spy:
        row["py_spy"] = py_spy_profile(args, threads, work)
    return row


def markdown(meta: dict, rows: list[dict]) -> str:
    L = [f"# Where the CPU of `edge run` goes ({meta['date']}, {meta['clip']}, {meta['cores']} cores, "
         f"load average {meta['load_average_before']} -> {meta['load_average_after']})", "",
         f"Engines: tracker `{meta['engines']['tracker']}`, classifier `{meta['engines']['classifier']}`. "
         "CPU = process CPU time (every thread: onnxruntime's workers count on the call that woke them), ms "
         "per frame, exclusive (children subtracted), medians of alternated repeats.", ""]
    for r in rows:
        a = r["stages_alone"]
        L += [f"## onnxruntime threads = {r['threads']}, {r['streams']} stream(s)", "",
              f"Stages alone: CPU {r['cpu_ms_per_frame_stages_alone']:.2f} ms/frame (" +
              ", ".join(f"{k} {v['cpu_ms']:.2f}" for k, v in a.items()) +
              f"); CPU bound {r['cpu_bound_fps']:.0f} FPS. End to end: {r['e2e']['fps']:.1f} FPS "
              f"({r['e2e_vs_cpu_bound']:.2f}x the bound), {r['e2e']['cpu_ms_per_frame']:.2f} CPU ms/frame "
              f"(queueing and contention {r['queueing_and_contention_cpu_ms']:+.2f}). Engine calls "
              f"{r['cpu_ms_engines']:.2f} CPU ms/frame, everything else {r['cpu_ms_host']:.2f}.", "",
              "| section | calls/frame | CPU ms | this thread's CPU ms | wall ms | share of CPU |",
              "|---|---|---|---|---|---|"]
        tot = sum(v["cpu_ms"] for v in r["sections"].values()) or 1
        for k, v in r["sections"].items():
            L.append(f"| {k} | {v['calls_per_frame']:g} | {v['cpu_ms']:.3f} | {v['thread_cpu_ms']:.3f} | "
                     f"{v['wall_ms']:.3f} | {100 * v['cpu_ms'] / tot:.1f}% |")
        L += ["", "End to end, CPU ms per frame by thread: " +
              ", ".join(f"{k} {v:.2f}" for k, v in r["e2e"]["cpu_ms_per_frame_by_thread"].items()), "",
              "Inference stage alone, cProfile (self ms per frame, top 15):", "",
              "| function | calls/frame | self ms | cumulative ms |", "|---|---|---|---|"]
        for f in r["cprofile_infer_top"][:15]:
            L.append(f"| `{f['function']}` | {f['calls_per_frame']:g} | {f['self_ms']:.3f} "
                     f"| {f['cumulative_ms']:.3f} |")
        spy = r.get("py_spy")
        if spy and "self" in spy:
            L += ["", f"py-spy --native, end to end ({spy['samples']} samples, all threads, idle included), "
                  "top self frames:", "", "| frame | share |", "|---|---|"]
            for f in spy["self"][:20]:
                L.append(f"| `{f['frame']}` | {100 * f['share']:.1f}% |")
        elif spy:
            L += ["", f"py-spy: {spy.get('error')}"]
        L.append("")
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracker", required=True)
    ap.add_argument("--classifier", required=True)
    ap.add_argument("--clip", default="bikes.mp4")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--streams", type=int, nargs="+", default=[1])
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1],
                    help="onnxruntime intra-op threads to profile with (default 2 and 1)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--py-spy", action="store_true", help="also a native sampling profile (needs py-spy)")
    ap.add_argument("--child-e2e", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="edge-profile-run-"))
    if args.child_e2e:             # the process py-spy samples: one end-to-end run
        from edge.runtime import load_engines
        trk = load_engines(args.tracker, threads=args.threads[0])
        cls = load_engines(args.classifier, threads=args.threads[0])
        clip = video_clip(args.clip)
        box = BOX.get(args.clip, (10.0, 10.0, 40.0, 40.0))
        in_thread(end_to_end, 1, clip, 10, trk, cls, box, work)
        print(in_thread(end_to_end, args.streams[0], clip, args.frames, trk, cls, box, work))
        return 0
    load0 = [round(x, 2) for x in os.getloadavg()]
    rows = [profile(args, t, work) for t in args.threads]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "clip": args.clip,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_average_before": load0, "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "engines": {"tracker": args.tracker, "classifier": args.classifier}}
    out = Path(args.out)
    atomic_write_json(out / "profile_run.json", {"meta": meta, "rows": rows})
    atomic_write_bytes(out / "profile_run.md", markdown(meta, rows).encode())
    print(f"wrote {out / 'profile_run.json'} and {out / 'profile_run.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
