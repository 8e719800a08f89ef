"""``edge serve ENGINE_DIR...``: a Triton Inference Server hosting every network of the engine folders.

Each network is a model ``<model>_<network>`` (``tracker_search``, ``classifier_encoder``, ...), inputs and
outputs named as in the manifest, dynamic batching where the network has a batch axis; clients use
``edge run --remote grpc://HOST:PORT`` or any KServe v2 client. Needs Triton's server files
(nvidia-pytriton; ``make serve-venv``). SIGTERM/SIGINT: in-flight requests finish, the server exits 0.
"""
from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from edge.errors import UserError


def add_arguments(p) -> None:
    p.add_argument("engine_dirs", nargs="+", metavar="ENGINE_DIR", help="engine folders built by `edge build`")
    p.add_argument("--prefix", action="append", default=[], metavar="NAME",
                   help="model name for the ENGINE_DIR at the same position (default: the manifest's model); "
                        "needed when two builds of one model are served")
    p.add_argument("--address", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)")
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--max-batch", type=int, default=8, help="largest dynamic batch (networks with a batch axis)")
    p.add_argument("--max-queue-delay-us", type=int, default=0,
                   help="how long the batcher may wait for more requests (default 0: batch what is queued)")
    p.add_argument("--instances", type=int, default=1, help="model instances (processes) per network")
    p.add_argument("--threads", type=int, default=None,
                   help="onnxruntime threads per instance (default: the build's, shared among the engine folders "
                        "as `edge run` shares them among its models)")
    p.add_argument("--workdir", metavar="DIR", help="where the model repository and backend go (default: a temp dir)")
    p.add_argument("--log", metavar="PATH", help="server log file (default: this terminal)")
    p.add_argument("--ready-timeout", type=float, default=180.0, help="seconds to wait for every model to load")


def run(args) -> int:
    from edge.serve.repository import write_serve_repository
    from edge.serve.server import Ports, TritonServer, find_triton

    for name in ("max_batch", "instances"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    find_triton()                                # a missing server says how to install it, before any work
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="edge-serve-"))
    repo = work / "models"
    if repo.exists():
        shutil.rmtree(repo)
    served = write_serve_repository(args.engine_dirs, repo, prefixes=args.prefix, max_batch=args.max_batch,
                                    queue_delay_us=args.max_queue_delay_us, instances=args.instances,
                                    threads=args.threads)
    server = TritonServer(repo, Ports(args.grpc_port, args.http_port, args.metrics_port), address=args.address,
                          work=work, log_path=Path(args.log) if args.log else None)
    got: list[int] = []

    def on_signal(signum, _frame):
        got.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start(timeout_s=args.ready_timeout)
        for s in served:
            print(f"edge serve: {s.name} ({s.engine_dir}, {'dynamic batching' if s.batched else 'no batch axis'})",
                  file=sys.stderr)
        print(f"edge serve: ready: grpc://{args.address}:{args.grpc_port} http://{args.address}:{args.http_port} "
              f"metrics http://{args.address}:{args.metrics_port}/metrics", file=sys.stderr, flush=True)
        while not got and server.proc.poll() is None:
            time.sleep(0.2)
        if not got:
            print(f"edge serve: error: tritonserver exited with code {server.proc.returncode}", file=sys.stderr)
            return 1
        print(f"edge serve: {signal.Signals(got[0]).name}: stopping (in-flight requests finish)", file=sys.stderr,
              flush=True)
        rc = server.stop()
        print(f"edge serve: stopped (tritonserver exit code {rc})", file=sys.stderr)
        return 0
    finally:
        server.stop()
        for s, h in old.items():
            signal.signal(s, h)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
