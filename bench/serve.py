"""Load and fault benchmark of ``edge serve`` + ``edge run --remote`` against in-process ``edge run``, one run.

    python bench/serve.py [--tracker ENGINE_DIR --classifier ENGINE_DIR] [--clip bikes.mp4] [--frames 120]
                          [--streams 1 4 8] [--repeats 2] [--out bench/results]

Loopback only (127.0.0.1, free ports), every loop bounded in frames and time. Each camera is an ``edge run``
process (``bench/serve.py worker``: the shipped ``edge.commands.run.build`` + ``Pipeline.run``, with a start
barrier so all processes run together). Rows per stream count N, repeats interleaved:

- ``in-process, 1 process``: one ``edge run`` with N sources (the pipeline batches the encoder across them);
- ``in-process, N processes``: N cameras without a server, each with its own engines;
- ``remote, N processes``: N ``edge run --remote`` clients sharing one ``edge serve`` (dynamic batching);
  anchor ``remote_shm``: the same with ``--remote-shm on`` (large inputs in system shared memory).

Throughput = all frames / (last frame out - first frame out) over all processes (CLOCK_MONOTONIC is shared);
latency = per frame, capture to sink (file sources never drop, so it includes queueing), and per remote
request; server CPU = user + system time of tritonserver and its backend stubs over the row.
Faults: a client SIGKILLed mid-run, malformed requests (wrong shape, dtype, missing input) from one client
while another streams, the server restarted (SIGTERM, and SIGKILL of the server process group) under a
running remote run: frames in its events must be 0..n-1 exactly once, the gap counted.
Writes ``serve.json`` and ``serve.md`` (atomically) into ``--out``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))      # triton_helpers: start `edge serve` on free loopback ports

from edge.fileio import atomic_write_bytes, atomic_write_json  # noqa: E402

BOX = {"bikes.mp4": "250,90,60,110", "carphone_pristine.mp4": "60,30,60,70"}


# -- worker: one camera process ----------------------------------------------------------------------------
def worker(argv: list[str]) -> int:
    """``worker OUT.json -- <edge run args>``: build, print READY, wait for a line on stdin, run, dump stats."""
    out, run_argv = argv[0], argv[2:]
    import edge.api
    from edge.commands import run as runcmd
    from edge.stream.run import prepare
    p = argparse.ArgumentParser()
    runcmd.add_arguments(p)
    args = p.parse_args(run_argv)
    pipe = prepare(edge.api.run_plan(**runcmd.run_kwargs(args)))
    print("READY", flush=True)
    sys.stdin.readline()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    summary = pipe.run()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    streams = [{"processed": st.processed, "first": st.first, "last": st.last,
                "latency": list(st.times["latency"]), "infer": list(st.times["infer"])} for st in pipe.stats]
    for rt in pipe.runtimes:
        rt.engines.close()
    remote = []
    for eng in (rt.engines for rt in pipe.runtimes):
        if getattr(eng, "connection", None) is not None:
            remote.append({"stats": eng.connection.stats.summary(),
                           "latency": {n: list(e.latencies) for n, e in {**eng.networks, **eng.composites}.items()
                                       if len(e.latencies)}})       # composites too (window, search_probed)
    summary = [dataclasses.asdict(s) for s in summary]
    res = {"summary": summary, "streams": streams, "remote": remote,
           "cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)}
    Path(out).write_text(json.dumps(res))
    return 0


# -- driver ------------------------------------------------------------------------------------------------
def pct(values) -> dict:
    v = np.asarray(values, np.float64) * 1000
    if not v.size:
        return {}
    return {f"p{q}": round(float(np.percentile(v, q)), 2) for q in (50, 95, 99)}


def descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pids) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in pids:
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(f[11]) + int(f[12])) / tick          # utime, stime
    return total


class Server:
    def __init__(self, serve_py, dirs, work: Path, extra=()):
        from triton_helpers import free_ports
        self.serve_py, self.dirs, self.work, self.extra = serve_py, dirs, work, list(extra)
        self.ports = free_ports(3)
        self.served = None
        self.starts = 0

    def start(self):
        from triton_helpers import start_serve
        self.starts += 1
        self.served = start_serve(self.serve_py, self.dirs, self.work / f"server{self.starts}", ports=self.ports,
                                  extra=self.extra)
        return self

    @property
    def url(self):
        return f"grpc://127.0.0.1:{self.ports[0]}"

    def batch_counts(self) -> dict:
        """(requests, executions) per model from Triton's statistics: requests / executions = mean batch."""
        import tritonclient.grpc as g
        st = g.InferenceServerClient(self.url.split("//")[1]).get_inference_statistics(as_json=True)
        return {m["name"]: (int(m["inference_stats"]["success"].get("count", 0)), int(m.get("execution_count", 0)))
                for m in st.get("model_stats", [])}

    def cpu(self) -> float:
        return cpu_seconds(descendants(self.served.proc.pid)[1:])    # tritonserver + stubs, not edge serve

    def stop(self, sig=signal.SIGTERM) -> int:
        return self.served.stop(sig)

    def crash(self) -> None:
        """SIGKILL tritonserver and its stubs (edge serve then exits 1): a crash, not a clean stop."""
        pids = descendants(self.served.proc.pid)[1:]
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.served.proc.wait(30)


def run_args(sources: int, clip: str, box: str, frames: int, dirs: dict, remote: str | None, events=None,
             shm: str = "off") -> list[str]:
    a = []
    for _ in range(sources):
        a += ["--source", clip]
    a += ["--tracker", str(dirs["tracker"]), "--init-box", box, "--classifier", str(dirs["classifier"]),
          "--max-frames", str(frames), "--status-interval", "0"]
    if remote:
        a += ["--remote", remote, "--remote-shm", shm]
    if events:
        a += ["--events", str(events)]
    return a


def launch(work: Path, argv: list[str], tag: str) -> tuple[subprocess.Popen, Path]:
    out = work / f"{tag}.json"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, __file__, "worker", str(out), "--", *argv], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=open(work / f"{tag}.log", "wb"), text=True, env=env)
    return p, out


def wait_ready(procs, timeout=180.0):
    end = time.monotonic() + timeout
    for p, _ in procs:
        line = ""
        while "READY" not in line:
            if time.monotonic() > end or p.poll() is not None:
                raise RuntimeError(f"worker not ready (exit {p.poll()})")
            line = p.stdout.readline()


def trial(work: Path, mode: str, n: int, args, dirs, server: Server | None, tag: str) -> dict:
    procs_n, sources = (1, n) if mode == "inproc1" else (n, 1)
    remote = server.url if mode.startswith("remote") else None
    shm = "on" if mode == "remote_shm" else "off"
    procs = [launch(work, run_args(sources, args.clip_path, args.box, args.frames, dirs, remote, shm=shm),
                    f"{tag}_{i}") for i in range(procs_n)]
    wait_ready(procs)
    cpu0 = server.cpu() if server else 0.0
    counts0 = server.batch_counts() if server else {}
    t0 = time.monotonic()
    for p, _ in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p, _ in procs:
        p.wait(args.timeout)
    wall = time.monotonic() - t0
    cpu1 = server.cpu() if server else 0.0
    counts1 = server.batch_counts() if server else {}
    batch = {m: round((r - counts0.get(m, (0, 0))[0]) / max(e - counts0.get(m, (0, 0))[1], 1), 2)
             for m, (r, e) in counts1.items()}
    res = [json.loads(o.read_text()) for p, o in procs]
    streams = [s for r in res for s in r["streams"]]
    frames = sum(s["processed"] for s in streams)
    first, last = min(s["first"] for s in streams), max(s["last"] for s in streams)
    req = {}
    for r in res:
        for rem in r["remote"]:
            for net, lat in rem["latency"].items():
                req.setdefault(net, []).extend(lat)
    return {"mode": mode, "streams": n, "processes": procs_n, "frames": frames,
            "throughput_fps": frames / (last - first) if last > first else 0.0,
            "per_stream_fps": [round(s["processed"] / max(s["last"] - s["first"], 1e-9), 1) for s in streams],
            "latency_ms": pct([x for s in streams for x in s["latency"]]),
            "infer_ms_per_frame": pct([x for s in streams for x in s["infer"]]),
            "request_ms": {net: pct(v) for net, v in req.items()},
            "client_cpu_s": round(sum(r["cpu_s"] for r in res), 2),
            "server_cpu_s": round(cpu1 - cpu0, 2), "server_cores": round((cpu1 - cpu0) / max(wall, 1e-9), 2),
            "wall_s": round(wall, 2), "server_mean_batch": batch,
            "remote_stats": [rem["stats"] for r in res for rem in r["remote"]]}


def median_row(trials: list[dict]) -> dict:
    row = dict(trials[0])
    row["throughput_fps"] = round(float(np.median([t["throughput_fps"] for t in trials])), 1)
    row["throughput_all"] = [round(t["throughput_fps"], 1) for t in trials]
    row["server_cores"] = round(float(np.median([t["server_cores"] for t in trials])), 2)
    for side in ("client", "server"):      # CPU per frame: the cost a shared machine pays, whatever overlaps
        row[f"{side}_cpu_ms_per_frame"] = round(float(np.median(
            [1000 * t[f"{side}_cpu_s"] / max(t["frames"], 1) for t in trials])), 1)
    row["server_mean_batch"] = {m: round(float(np.mean([t["server_mean_batch"].get(m, 0) for t in trials])), 2)
                                for m in trials[0].get("server_mean_batch", {})}
    return row


# -- faults ------------------------------------------------------------------------------------------------
def frames_ok(events: Path, n: int) -> dict:
    recs = [json.loads(x) for x in events.read_text().splitlines()]
    got = [r["frame"] for r in recs if r["type"] == "frame"]
    return {"frames": len(got), "expected": n, "lost": len(set(range(n)) - set(got)),
            "duplicated": len(got) - len(set(got)), "in_order": got == sorted(got)}


def fault_restart(work: Path, args, dirs, server: Server, how: str) -> dict:
    ev = work / f"restart_{how}.jsonl"
    frames = args.restart_frames
    p, out = launch(work, run_args(1, args.clip_path, args.box, frames, dirs, server.url, ev), f"restart_{how}")
    wait_ready([(p, out)])
    p.stdin.write("go\n")
    p.stdin.flush()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not ev.exists() or ev.read_text().count('"type":"frame"') < frames // 4):
        time.sleep(0.05)
    at = ev.read_text().count('"type":"frame"') if ev.exists() else 0
    t0 = time.monotonic()
    rc = None
    if how == "sigterm":
        rc = server.stop()
    else:
        server.crash()
    down = time.monotonic() - t0
    time.sleep(1.0)                               # the server stays away a while
    server.start()
    restart_s = time.monotonic() - t0
    p.wait(args.timeout)
    res = json.loads(out.read_text())
    return {"how": how, "stopped_at_frame": at, "edge_serve_exit": rc, "stop_s": round(down, 2),
            "server_back_after_s": round(restart_s, 2), "client_exit": p.returncode, **frames_ok(ev, frames),
            "remote_stats": [r["stats"] for r in res["remote"]]}


def fault_client_killed(work: Path, args, dirs, server: Server) -> dict:
    p, out = launch(work, run_args(1, args.clip_path, args.box, args.frames, dirs, server.url), "killed")
    wait_ready([(p, out)])
    p.stdin.write("go\n")
    p.stdin.flush()
    time.sleep(1.5)
    p.kill()
    p.wait(30)
    time.sleep(0.5)
    alive = server.served.proc.poll() is None
    ev = work / "after_kill.jsonl"
    q, out2 = launch(work, run_args(1, args.clip_path, args.box, 30, dirs, server.url, ev), "after_kill")
    wait_ready([(q, out2)])
    q.stdin.write("go\n")
    q.stdin.flush()
    q.wait(args.timeout)
    return {"client_killed_exit": p.returncode, "server_alive": alive and server.served.proc.poll() is None,
            "next_client_exit": q.returncode, **frames_ok(ev, 30)}


def fault_malformed(work: Path, args, dirs, server: Server) -> dict:
    import tritonclient.grpc as g
    from tritonclient.utils import InferenceServerException
    ev = work / "malformed_neighbour.jsonl"
    p, out = launch(work, run_args(1, args.clip_path, args.box, args.frames, dirs, server.url, ev), "neighbour")
    wait_ready([(p, out)])
    p.stdin.write("go\n")
    p.stdin.flush()
    client = g.InferenceServerClient(server.url.split("//")[1])

    def inp(name, arr, wire=None):
        x = g.InferInput(name, list(arr.shape), wire or "FP32")
        x.set_data_from_numpy(arr)
        return x

    rgb, flow = np.zeros((1, 3, 160, 160), np.float32), np.zeros((1, 2, 160, 160), np.float32)
    cases = {"wrong_shape": [inp("rgb", np.zeros((1, 3, 99, 99), np.float32)), inp("flow", flow)],
             "wrong_dtype": [inp("rgb", rgb.astype(np.float64), "FP64"), inp("flow", flow)],
             "missing_input": [inp("rgb", rgb)],
             "wrong_name": [inp("rgb", rgb), inp("flows", flow)]}
    got = {}
    for _ in range(3):                                 # bounded: 3 rounds of 4 bad requests
        for name, ins in cases.items():
            try:
                client.infer("classifier_encoder", ins)
                got[name] = "accepted (!)"
            except InferenceServerException as e:
                got[name] = f"{e.status()}: {e.message()}"
        time.sleep(0.2)
    ok = client.infer("classifier_encoder", [inp("rgb", rgb), inp("flow", flow)]).as_numpy("features").shape
    p.wait(args.timeout)
    return {"errors": got, "good_request_after": list(ok), "neighbour_exit": p.returncode,
            **frames_ok(ev, args.frames)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        return worker(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracker")
    ap.add_argument("--classifier")
    ap.add_argument("--clip", default="bikes.mp4")
    ap.add_argument("--frames", type=int, default=120, help="frames per stream")
    ap.add_argument("--restart-frames", type=int, default=250, help="frames of the restarted remote run")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repetitions (median reported)")
    ap.add_argument("--serve-python", default=None, help="python with nvidia-pytriton (default .venv-serve)")
    ap.add_argument("--serve-args", default="", help="extra `edge serve` arguments, e.g. '--max-queue-delay-us 2000'")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds any one process may run")
    ap.add_argument("--no-faults", action="store_true")
    ap.add_argument("--no-shm-row", dest="shm_row", action="store_false",
                    help="skip the anchor row of remote runs with inputs in shared memory (--remote-shm on)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args(argv)

    from edge.assets import video_clip
    from triton_helpers import serve_python
    serve_py = args.serve_python or serve_python()[0]
    if serve_py is None:
        print(f"bench/serve.py: {serve_python()[1]}", file=sys.stderr)
        return 2
    args.clip_path, args.box = str(video_clip(args.clip)), BOX.get(args.clip, "10,10,40,40")
    work = Path(tempfile.mkdtemp(prefix="edge-bench-serve-"))
    dirs = {"tracker": args.tracker, "classifier": args.classifier}
    if not (args.tracker and args.classifier):
        sys.path.insert(0, str(ROOT / "bench"))
        from pipeline import build_engines
        built = build_engines(work)
        dirs = {k: v or built[k] for k, v in dirs.items()}
    server = Server(serve_py, [dirs["tracker"], dirs["classifier"]], work, args.serve_args.split()).start()
    rows, trials = [], {}
    try:
        trial(work, "remote", 1, argparse.Namespace(**{**vars(args), "frames": 10}), dirs, server, "warm_r")
        trial(work, "inproc1", 1, argparse.Namespace(**{**vars(args), "frames": 10}), dirs, None, "warm_l")
        for rep in range(args.repeats):
            for n in args.streams:
                modes = ["inproc1", "remote"] + (["remote_shm"] if args.shm_row else []) + \
                    (["inprocN"] if n > 1 else [])
                for mode in (modes if rep % 2 == 0 else modes[::-1]):
                    t = trial(work, mode, n, args, dirs, server if mode.startswith("remote") else None,
                              f"{mode}_{n}_{rep}")
                    trials.setdefault((mode, n), []).append(t)
                    print(f"[serve bench] {mode} x{n}: {t['throughput_fps']:.1f} FPS (server {t['server_cores']} cores)",
                          flush=True)
        rows = [median_row(v) for v in trials.values()]
        faults = {}
        if not args.no_faults:
            faults["client_killed"] = fault_client_killed(work, args, dirs, server)
            faults["malformed"] = fault_malformed(work, args, dirs, server)
            faults["restart_sigterm"] = fault_restart(work, args, dirs, server, "sigterm")
            faults["restart_crash"] = fault_restart(work, args, dirs, server, "crash")
            print(f"[serve bench] faults: {json.dumps(faults)[:600]}", flush=True)
    finally:
        if server.served is not None:
            server.stop()
    inproc1 = {r["streams"]: r["throughput_fps"] for r in rows if r["mode"] == "inproc1"}
    inprocn = {r["streams"]: r["throughput_fps"] for r in rows if r["mode"] == "inprocN"}
    goals = {}
    for r in rows:
        if r["mode"].startswith("remote"):
            n = r["streams"]
            r["vs_inproc_1_process"] = round(r["throughput_fps"] / inproc1[n], 2) if inproc1.get(n) else None
            r["vs_inproc_n_processes"] = round(r["throughput_fps"] / inprocn[n], 2) if inprocn.get(n) else None
    rem = {r["streams"]: r for r in rows if r["mode"] == "remote"}
    if 1 in rem:
        goals["1 stream remote >= 0.8x in-process"] = rem[1]["vs_inproc_1_process"]
    if 4 in rem:
        goals["4 streams remote > in-process (1 process, 4 sources)"] = rem[4]["vs_inproc_1_process"]
        goals["4 streams remote > in-process (4 processes)"] = rem[4]["vs_inproc_n_processes"]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "clip": args.clip, "frames": args.frames,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "engines": {k: str(v) for k, v in dirs.items()},
            "serve_args": args.serve_args, "repeats": args.repeats}
    out = Path(args.out)
    atomic_write_json(out / "serve.json", {"meta": meta, "rows": rows, "goals": goals, "faults": faults,
                                           "trials": [t for v in trials.values() for t in v]})
    atomic_write_bytes(out / "serve.md", markdown(meta, rows, goals, faults).encode())
    print(f"wrote {out / 'serve.json'} and {out / 'serve.md'}")
    return 0


MODE = {"inproc1": "in-process, 1 process", "inprocN": "in-process, N processes",
        "remote": "remote, N processes + server",
        "remote_shm": "remote, N processes + server, inputs in shared memory (`--remote-shm on`)"}


def markdown(meta, rows, goals, faults) -> str:
    lines = [f"# `edge serve` + `edge run --remote` vs in-process ({meta['date']}, {meta['clip']}, {meta['frames']} "
             f"frames per stream, {meta['cores']} cores, load average {meta['load_average']})", "",
             "Throughput = all frames / (first to last frame out) over all processes; median of interleaved "
             "repeats (each repeat in brackets). Latency = capture to sink per frame (file sources: includes "
             "queueing). Request = client round trip per network call. Server cores = CPU time of tritonserver + "
             "stubs / wall time. CPU per frame = (client processes' | server's) CPU time / frames: on one machine "
             "the served path can reach at most (in-process CPU per frame) / (client + server CPU per frame) of "
             "the in-process throughput when both keep the cores equally busy.", "",
             "| setup | streams | FPS | repeats | vs in-process (1 proc / N procs) | frame latency p50/p95/p99 ms "
             "| request ms p50/p95/p99 | CPU ms per frame client + server | server cores "
             "| server requests per engine call |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["streams"], r["mode"])):
        L = r["latency_ms"]
        req = "; ".join(f"{n} {v.get('p50', 0):.1f}/{v.get('p95', 0):.1f}/{v.get('p99', 0):.1f}"
                        for n, v in r["request_ms"].items()) or "—"
        vs = (f"{r.get('vs_inproc_1_process')} / {r.get('vs_inproc_n_processes') or '—'}" if r["mode"].startswith("remote")
              else "—")
        lines.append(f"| {MODE[r['mode']]} | {r['streams']} | {r['throughput_fps']:.1f} | {r['throughput_all']} | {vs} "
                     f"| {L.get('p50', 0):.0f}/{L.get('p95', 0):.0f}/{L.get('p99', 0):.0f} | {req} "
                     f"| {r['client_cpu_ms_per_frame']} + {r['server_cpu_ms_per_frame']} "
                     f"| {r['server_cores'] if r['mode'].startswith('remote') else '—'} "
                     f"| {', '.join(f'{m} {b}' for m, b in r.get('server_mean_batch', {}).items() if b) or '—'} |")
    lines += ["", "Goals: " + "; ".join(f"{k}: {v}x" for k, v in goals.items()), ""]
    if faults:
        lines += ["## Faults", "", "```json", json.dumps(faults, indent=1), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
