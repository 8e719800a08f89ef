"""The sidecar ``fingerprint.json`` of an engine folder and its checks (torch-free, TensorRT-free).

Written by ``edge build``; checked by ``load_engines`` **before** any TensorRT call, because engines are
tied to the TensorRT version, the GPU's compute capability and the plugin library they were built with
(and optimised CPU graphs to the instruction set). Every mismatch is one ``EngineMismatch`` line that
names the fix; the CLI turns it into exit code 2.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

from edge.contract import ENGINE_FORMAT as FORMAT
from edge.contract import ContractError, Fingerprint
from edge.errors import UserError
from edge.fileio import read_json, sha256_file

FILE = "fingerprint.json"
# CPU features that change which kernels an offline-optimised onnxruntime graph uses
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx_tile", "asimd", "asimddp", "sve")


class EngineMismatch(UserError):
    """An engine folder that cannot run here; the message says how to rebuild."""


def cpu_device() -> dict:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware") and name in ("", platform.machine(), platform.processor()):
                name = val.strip()
            elif key in ("flags", "features"):
                flags.update(val.split())
    except OSError:
        pass
    return {"kind": "cpu", "name": name, "machine": platform.machine(),
            "isa": sorted(f for f in ISA_FLAGS if f in flags)}


def build_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def rebuild_hint(fp: "Fingerprint | dict", engine_dir: str | Path) -> str:
    d = fp.raw if isinstance(fp, Fingerprint) else fp
    src = d.get("source_dir") or "EXPORT_DIR"
    return (f"rebuild with `edge build {src} --target {d.get('target', 'TARGET')} "
            f"--precision {d.get('precision', 'fp32')} -o {engine_dir}` on this device")


def read(engine_dir: str | Path) -> Fingerprint:
    engine_dir = Path(engine_dir)
    if not engine_dir.is_dir():
        raise FileNotFoundError(f"engine folder not found: {engine_dir}")
    path = engine_dir / FILE
    if not path.is_file():
        raise EngineMismatch(f"{engine_dir} has no {FILE} (not an engine folder or an interrupted build): "
                             f"build it with `edge build EXPORT_DIR --target T -o {engine_dir}`")
    try:
        d = read_json(path, "engine fingerprint")
    except ValueError as e:
        raise EngineMismatch(f"{e}: {rebuild_hint({}, engine_dir)}") from None
    try:
        return Fingerprint.from_dict(d, str(path), rebuild_hint(d, engine_dir))
    except ContractError as e:
        raise EngineMismatch(str(e)) from None


def verify_files(fp: Fingerprint, engine_dir: str | Path) -> None:
    """Every engine file present with its recorded sha256 (catches truncated and modified files)."""
    engine_dir = Path(engine_dir)
    for net, plan in fp.networks.items():
        for file, digest in plan.files.items():
            path = engine_dir / file
            if not path.is_file():
                raise EngineMismatch(f"engine file {path} is missing: {rebuild_hint(fp, engine_dir)}")
            if sha256_file(path) != digest:
                raise EngineMismatch(f"engine file {path} does not match its fingerprint (truncated or modified, "
                                     f"{path.stat().st_size} bytes): {rebuild_hint(fp, engine_dir)}")


def verify_plugin(fp: Fingerprint, engine_dir: str | Path) -> None:
    lib = fp.plugin_library
    if not lib:
        return
    path = Path(lib["path"])
    if not path.is_file():
        raise EngineMismatch(f"plugin library {path} used to build {engine_dir} is missing: build it "
                             f"(kernels/CMakeLists.txt) and {rebuild_hint(fp, engine_dir)}")
    if sha256_file(path) != lib["sha256"]:
        raise EngineMismatch(f"plugin library {path} changed since {engine_dir} was built: "
                             f"{rebuild_hint(fp, engine_dir)}")


def check_cpu_device(fp: Fingerprint, engine_dir: str | Path) -> None:
    built, here = fp.device, cpu_device()
    if built.get("machine") != here["machine"] or built.get("isa") != here["isa"]:
        raise EngineMismatch(f"{engine_dir} was optimised for {built.get('name')} ({built.get('machine')}, "
                             f"{' '.join(built.get('isa', []))}) but this CPU is {here['name']} "
                             f"({here['machine']}, {' '.join(here['isa'])}): {rebuild_hint(fp, engine_dir)}")


def check_backend_version(fp: Fingerprint, engine_dir: str | Path, have: str | None, what: str) -> None:
    want = fp.backend_version
    if have is None:
        raise EngineMismatch(f"{engine_dir} needs {what} {want}, which is not installed here: "
                             f"install it or {rebuild_hint(fp, engine_dir)}")
    if what == "onnxruntime":   # optimised graphs carry onnxruntime-internal ops: same minor version
        same = have.split(".")[:2] == str(want).split(".")[:2]
    else:                      # TensorRT engines: exact version ("Version tag does not match")
        same = have == want
    if not same:
        raise EngineMismatch(f"{engine_dir} was built with {what} {want} but this device has {what} {have}: "
                             f"{rebuild_hint(fp, engine_dir)}")


def check_gpu_device(fp: Fingerprint, engine_dir: str | Path, here: dict | None) -> None:
    built = fp.device
    if here is None:
        raise EngineMismatch(f"{engine_dir} is a TensorRT engine for {built.get('name')} "
                             f"(compute {built.get('compute_capability')}, target {fp.target}) but no CUDA "
                             f"GPU is usable here: on this machine build with "
                             f"`edge build {fp.source_dir or 'EXPORT_DIR'} --target cpu -o DIR`")
    if here.get("compute_capability") != built.get("compute_capability"):
        raise EngineMismatch(f"{engine_dir} was built for compute capability {built.get('compute_capability')} "
                             f"({built.get('name')}) but this GPU is {here.get('name')} (compute "
                             f"{here.get('compute_capability')}): {rebuild_hint(fp, engine_dir)}")


def engine_threads(engine_dir: str | Path, models: int) -> int | None:
    """Intra-op threads for a CPU engine when ``models`` models step at once (``Pipeline``'s concurrent
    models): the build's thread count shared among them (at least 1); None for other backends. Measured with
    both models on 2 cores (``bench/profile_run.py``, bikes.mp4, load average 6-11): 2 threads each spent
    48.4 CPU ms per frame of the stages alone and ran 10.7 FPS end to end, 1 thread each 30.1 ms and 15.1 FPS
    (2 threads' workers spin inside every run and wait on each other)."""
    fp = read(Path(engine_dir))
    if fp.backend != "onnxruntime":
        return None
    return max(1, (fp.session.threads or os.cpu_count() or 1) // max(1, models))
