"""Start and stop a real ``tritonserver`` process hosting engine folders (``edge serve``).

The server binary, its Python backend and the backend stubs come from the ``nvidia-pytriton`` wheel (PyPI,
x86_64 Linux); only those files are used, not pytriton's Python layer: our model runs in the backend stub
itself (``edge.serve.python_model``), one process hop less than a pytriton callable (measured here:
0.8 ms vs 7.6 ms per round trip of a tiny tensor).

Two things make the stub work in a venv, both set in the server's environment:
- ``PATH`` starts with this interpreter's ``bin/``: the stub takes its ``sys.path`` (site-packages, our
  editable install) from the ``python3`` it finds there;
- ``LD_LIBRARY_PATH`` starts with this interpreter's ``LIBDIR``: the stub links ``libpython3.X.so``, and a
  system copy of another patch release (Debian's 3.11.2 next to pyenv's 3.11.7) fails at model load
  (``'_thread.RLock' object has no attribute '_recursion_count'``).
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import UserError

INSTALL_HINT = ("`make serve-venv` (a Python 3.8-3.13 venv `.venv-serve` with nvidia-pytriton and this package), "
                "then `.venv-serve/bin/edge serve ...`")


def _die_with_parent() -> None:
    """In the child: SIGTERM when ``edge serve`` dies, even by SIGKILL (no orphaned server holding the ports)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)     # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass(frozen=True)
class TritonDist:
    """Where the server files of the installed nvidia-pytriton wheel are."""
    binary: Path
    python_backend: Path
    stub: Path
    libs: Path


def find_triton() -> TritonDist:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"edge serve needs Triton's server (nvidia-pytriton, x86_64 Linux): {INSTALL_HINT}")
    pkg = Path(list(spec.submodule_search_locations)[0])
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    dist = TritonDist(pkg / "tritonserver" / "bin" / "tritonserver", pkg / "tritonserver" / "backends" / "python",
                      pkg / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub",
                      pkg.parent / "nvidia_pytriton.libs")
    if not dist.binary.is_file() or not dist.python_backend.is_dir():
        raise UserError(f"nvidia-pytriton at {pkg} has no tritonserver binary: reinstall it ({INSTALL_HINT})")
    if not dist.stub.is_file():
        have = sorted(p.name for p in dist.stub.parent.parent.iterdir()) if dist.stub.parent.parent.is_dir() else []
        raise UserError(f"Triton's Python backend has no stub for Python {version} (has: {', '.join(have)}): "
                        f"{INSTALL_HINT}")
    return dist


def libpython_dir() -> Path | None:
    """The folder of this interpreter's ``libpython3.X.so`` (None for a static build)."""
    libdir, name = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if libdir and name and (Path(libdir) / name).exists():
        return Path(libdir)
    return None


def prepare_backends(dist: TritonDist, work: Path) -> Path:
    """``work/backends/python`` = the Python backend with the stub of this interpreter's version."""
    dst = work / "backends" / "python"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(dist.python_backend, dst, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(dist.stub, dst / "triton_python_backend_stub")
    return work / "backends"


def server_env(dist: TritonDist) -> dict:
    if libpython_dir() is None:
        raise UserError(f"{sys.executable} has no shared libpython (Triton's Python backend needs one): "
                        "use a Python built with --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared)")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    libs = [str(libpython_dir()), str(dist.libs)] + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else [])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.pop("PYTHONHOME", None)
    return env


SHM_DIR = Path("/dev/shm")
_REGION = re.compile(r"^edge(\d+)x\d+_")


def sweep_stale_regions(shm_dir: Path = SHM_DIR) -> list[str]:
    """Unlink the Python-backend regions (``edge<pid>x<port>_...``, 8 MB or more each) of ``edge serve``
    processes that no longer exist: a server killed with SIGKILL cannot unlink its own. Regions of a live
    process are never touched. Returns the names removed."""
    removed = []
    try:
        names = sorted(p.name for p in shm_dir.iterdir())
    except OSError:
        return removed
    for name in names:
        m = _REGION.match(name)
        if m is None or _alive(int(m.group(1))):
            continue
        try:
            (shm_dir / name).unlink()
            removed.append(name)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # another user's live process
        return True
    return True


@dataclass
class Ports:
    grpc: int = 8001
    http: int = 8000
    metrics: int = 8002


@dataclass
class TritonServer:
    """A ``tritonserver`` child process on a model repository; ``start()`` returns once every model is ready."""
    repository: Path
    ports: Ports = field(default_factory=Ports)
    address: str = "127.0.0.1"
    work: Path | None = None
    log_path: Path | None = None
    exit_timeout_s: int = 10
    shm_mb: int = 8
    proc: subprocess.Popen | None = None

    def command(self, dist: TritonDist, backends: Path) -> list[str]:
        shm = self.shm_mb * 1024 * 1024
        return [str(dist.binary), f"--model-repository={self.repository}", f"--backend-directory={backends}",
                f"--grpc-address={self.address}", f"--grpc-port={self.ports.grpc}",
                f"--http-address={self.address}", f"--http-port={self.ports.http}",
                f"--metrics-address={self.address}", f"--metrics-port={self.ports.metrics}",
                "--allow-metrics=true", "--allow-gpu-metrics=false", "--allow-cpu-metrics=true",
                "--disable-auto-complete-config", "--exit-on-error=true", "--strict-readiness=true",
                f"--exit-timeout-secs={self.exit_timeout_s}", "--log-verbose=0",
                # one shared-memory region per stub, unique per server (two servers on one machine)
                f"--backend-config=python,shm-region-prefix-name=edge{os.getpid()}x{self.ports.grpc}_",
                f"--backend-config=python,shm-default-byte-size={shm}",
                f"--backend-config=python,shm-growth-byte-size={shm}"]

    def start(self, timeout_s: float = 120.0, stdout=None) -> "TritonServer":
        dist = find_triton()
        sweep_stale_regions()
        self.work = Path(self.work or tempfile.mkdtemp(prefix="edge-serve-"))
        backends = prepare_backends(dist, self.work)
        out = stdout
        if out is None and self.log_path is not None:
            out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(dist, backends), env=server_env(dist), stdout=out,
                                     stderr=subprocess.STDOUT if out is not None else None, cwd=self.work,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        self.wait_ready(timeout_s)
        return self

    def url(self, path: str) -> str:
        host = "127.0.0.1" if self.address in ("0.0.0.0", "") else self.address
        return f"http://{host}:{self.ports.http}{path}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/v2/health/ready"), timeout=1.0) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise UserError(f"tritonserver exited with code {self.proc.returncode} before it was ready"
                                + (f" (log: {self.log_path})" if self.log_path else ""))
            if self.ready():
                return
            time.sleep(0.2)
        self.stop()
        raise UserError(f"tritonserver not ready after {timeout_s:.0f} s" + (f" (log: {self.log_path})" if self.log_path else ""))

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM: Triton finishes in-flight requests (up to ``exit_timeout_s``), unloads, exits."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s if timeout_s is not None else self.exit_timeout_s + 20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the server and its backend stubs (fault tests: a crash, not a clean stop)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
