"""Start ``edge serve`` on free loopback ports for the tests (a real tritonserver), or say why it cannot."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def serve_python() -> tuple[str | None, str]:
    """(python of a venv that has nvidia-pytriton and edge, reason when there is none)."""
    cand = [os.environ.get("EDGE_SERVE_PYTHON"), str(ROOT / ".venv-serve" / "bin" / "python"), sys.executable]
    for py in filter(None, cand):
        if not Path(py).is_file():
            continue
        p = subprocess.run([py, "-c", "import importlib.util as u, edge.serve.server as s; s.find_triton(); "
                                      "assert s.libpython_dir()"], capture_output=True, text=True, timeout=60)
        if p.returncode == 0:
            return py, ""
    return None, ("no Triton server: nvidia-pytriton is not installed in .venv-serve (`make serve-venv`; x86_64 "
                  "Linux, Python 3.8-3.13) nor in this venv")


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class Served:
    proc: subprocess.Popen
    grpc: int
    http: int
    metrics: int
    log: Path

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc}"

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5) as r:
            return r.read().decode()

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def start_serve(py: str, engine_dirs, work: Path, ports=None, extra=(), timeout: float = 180) -> Served:
    """``edge serve`` as a child process; returns once every model is ready (HTTP health)."""
    grpc, http, metrics = ports or free_ports(3)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "serve.log"
    cmd = [py, "-m", "edge.cli", "serve", *map(str, engine_dirs), "--grpc-port", str(grpc), "--http-port",
           str(http), "--metrics-port", str(metrics), "--workdir", str(work / "server"), "--log", str(work / "triton.log"),
           *extra]
    with open(log, "ab") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    served = Served(proc, grpc, http, metrics, log)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"edge serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return served
        except OSError:
            pass
        time.sleep(0.2)
    served.stop()
    raise RuntimeError(f"edge serve not ready in {timeout} s: {log.read_text()[-2000:]}")
