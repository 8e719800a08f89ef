"""Find the C++/CUDA compilers and compile kernel sources into a content-addressed cache (torch-free).

Used by the host tests (g++ builds the ``__host__ __device__`` kernel bodies into a shared library for
ctypes), by the nvcc compile checks and by anything that wants to build the plugin library with CMake.
Every build is keyed by a hash of the compiler, the flags and the text of the sources and of the kernel
headers, written to a temporary name and moved into place atomically, so a rebuild only happens when
something changed and a half-written artifact is never picked up.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

KERNELS_DIR = Path(__file__).resolve().parent
#: GPU architectures: Orin (JetPack 6.x) and one desktop/T4 class part.
DEFAULT_ARCHS = ("87", "75")
CUDA_ROOTS = ("/usr/local/cuda", "/usr/local/cuda-13.0", "/usr/local/cuda-12.6", "/usr/cuda")


class BuildError(RuntimeError):
    """A compiler exited with an error; the message carries the command and its output."""


def find_nvcc() -> str | None:
    """nvcc from PATH, $CUDA_HOME/bin or the usual install prefixes, or None."""
    found = shutil.which("nvcc")
    if found:
        return found
    roots = [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", ""), *CUDA_ROOTS]
    for root in filter(None, roots):
        cand = Path(root) / "bin" / "nvcc"
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


def find_cxx() -> str | None:
    """The host C++ compiler: $CXX, else g++, else c++/clang++."""
    for name in (os.environ.get("CXX", ""), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def cuda_include_dir() -> str | None:
    """Directory holding cuda_runtime_api.h (next to nvcc, or a usual prefix), or None."""
    roots = []
    nvcc = find_nvcc()
    if nvcc:
        roots.append(Path(nvcc).resolve().parent.parent)
    roots += [Path(r) for r in (os.environ.get("CUDA_HOME", ""), *CUDA_ROOTS) if r]
    for root in roots:
        for inc in (root / "include", root / "targets" / "x86_64-linux" / "include",
                    root / "targets" / "aarch64-linux" / "include"):
            if (inc / "cuda_runtime_api.h").is_file():
                return str(inc)
    return None


def kernel_headers() -> list[Path]:
    """Every header under kernels/ (part of each cache key: a header edit forces a rebuild)."""
    return sorted(p for ext in ("*.cuh", "*.h", "*.hpp") for p in KERNELS_DIR.rglob(ext))


def _key(compiler: str, args: Sequence[str], files: Iterable[Path]) -> str:
    h = hashlib.sha256()
    h.update(compiler.encode())
    h.update("\0".join(args).encode())
    for f in files:
        h.update(str(f).encode())
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:16]


def run(cmd: Sequence[str], cwd: str | os.PathLike | None = None) -> str:
    """Run a compiler command; raise BuildError with the command and its output on failure."""
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def _cached_build(out_dir: str | os.PathLike, stem: str, suffix: str, compiler: str, args: list[str],
                  sources: Sequence[Path], trailing: Sequence[str] = (), inputs: Sequence[Path] = ()) -> Path:
    """Build once per content key: compiler + args + trailing args + sources, inputs and kernel headers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = _key(compiler, [*args, *trailing], [*map(Path, sources), *map(Path, inputs), *kernel_headers()])
    target = out_dir / f"{stem}-{key}{suffix}"
    if target.exists():
        return target
    tmp = out_dir / f".{stem}-{key}-{os.getpid()}{suffix}"
    try:
        run([compiler, *args, *map(str, sources), *trailing, "-o", str(tmp)])
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def build_host_library(sources: Sequence[str | os.PathLike], out_dir: str | os.PathLike, name: str,
                       extra_flags: Sequence[str] = (), objects: Sequence[str | os.PathLike] = (),
                       link_flags: Sequence[str] = ()) -> Path:
    """Compile C++ sources (which may include kernels/*/*.cuh) into a shared library with the host compiler.

    The sources are compiled as plain C++ (``-x c++``), without contracting a * b + c into FMAs, so the
    float math matches the float32 reference step by step. ``objects`` (e.g. nvcc output) and
    ``link_flags`` are appended after the sources.
    """
    cxx = find_cxx()
    if cxx is None:
        raise BuildError("no C++ compiler found (set CXX or install g++)")
    args = ["-x", "c++", "-std=c++17", "-O2", "-ffp-contract=off", "-fPIC", "-shared", "-Wall", "-Wextra",
            "-Werror", f"-I{KERNELS_DIR}", *extra_flags]
    trailing = ["-x", "none", *map(str, objects), *link_flags]
    return _cached_build(out_dir, name, ".so", cxx, args, [Path(s) for s in sources], trailing,
                         [Path(o) for o in objects])


def nvcc_compile(source: str | os.PathLike, out_dir: str | os.PathLike, archs: Sequence[str] = DEFAULT_ARCHS,
                 extra_flags: Sequence[str] = ()) -> Path:
    """``nvcc -c`` one .cu file for the given sm architectures (one invocation, one fat object)."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise BuildError("nvcc not found (install the CUDA toolkit or set CUDA_HOME)")
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    args = ["-c", "-std=c++17", "-O3", "-Xcompiler=-fPIC", "-Werror=all-warnings", f"-I{KERNELS_DIR}",
            *gencode, *extra_flags]
    return _cached_build(out_dir, Path(source).stem, ".o", nvcc, args, [Path(source)])


def nvcc_link(sources: Sequence[str | os.PathLike], out_dir: str | os.PathLike, name: str, archs: Sequence[str],
              kind: str = "shared", extra_flags: Sequence[str] = ()) -> tuple[Path, str]:
    """``nvcc`` sources (.cu, or objects from ``kind="object"``) into an object (``-c``), a shared library
    (dynamic cudart: for ctypes next to another CUDA user such as PyTorch) or an executable, for the given sm
    architectures, with ``-Xptxas -v``. Returns (path, compiler output: ptxas's per-kernel report, kept
    beside the cached artifact)."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise BuildError("nvcc not found (install the CUDA toolkit or set CUDA_HOME)")
    flags = {"object": ["-c", "-Xcompiler=-fPIC"], "shared": ["-shared", "-Xcompiler=-fPIC", "-cudart", "shared"],
             "exe": ["-cudart", "shared"]}[kind]
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    args = ["-std=c++17", "-O3", "-Werror=all-warnings", "-Xptxas=-v", f"-I{KERNELS_DIR}", *flags, *gencode,
            *extra_flags]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    srcs = [Path(s) for s in sources]
    key = _key(nvcc, args, [*srcs, *kernel_headers()])
    target = out_dir / f"{name}-{key}{ {'object': '.o', 'shared': '.so', 'exe': ''}[kind]}"
    log = out_dir / f"{name}-{key}.ptxas.txt"
    if target.exists() and log.exists():
        return target, log.read_text()
    tmp = out_dir / f".{name}-{key}-{os.getpid()}{target.suffix}"
    try:
        text = run([nvcc, *args, *map(str, srcs), "-o", str(tmp)])
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    log.write_text(text)
    return target, text


def ptxas_report(text: str) -> list[dict]:
    """Per kernel and architecture from ``nvcc -Xptxas -v`` output: registers, spill stores/loads (bytes),
    stack frame and shared memory (bytes). Kernel names are demangled when ``c++filt`` is available."""
    rows, cur = [], None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'", line)
        if m:
            cur = {"kernel": m.group(1), "arch": m.group(2), "registers": None, "spill_stores": None,
                   "spill_loads": None, "stack_bytes": None, "smem_bytes": 0}
            rows.append(cur)
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            cur["stack_bytes"], cur["spill_stores"], cur["spill_loads"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            cur["registers"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            cur["smem_bytes"] = int(s.group(1)) if s else 0
    filt = shutil.which("c++filt")
    if filt and rows:
        names = subprocess.run([filt], input="\n".join(r["kernel"] for r in rows), capture_output=True,
                               text=True).stdout.splitlines()
        if len(names) == len(rows):
            for r, n in zip(rows, names):
                r["kernel_mangled"], r["kernel"] = r["kernel"], n
    return rows


def cxx_compile(source: str | os.PathLike, out_dir: str | os.PathLike, include_dirs: Sequence[str] = (),
                extra_flags: Sequence[str] = ()) -> Path:
    """``c++ -c`` one .cpp file (e.g. a TensorRT plugin) against extra include dirs."""
    cxx = find_cxx()
    if cxx is None:
        raise BuildError("no C++ compiler found (set CXX or install g++)")
    system = [f for d in include_dirs for f in ("-isystem", str(d))]   # third-party headers: no -Werror
    args = ["-c", "-std=c++17", "-O1", "-fPIC", "-Wall", "-Wextra", "-Werror", f"-I{KERNELS_DIR}", *system,
            *extra_flags]
    return _cached_build(out_dir, Path(source).stem, ".o", cxx, args, [Path(source)])


def tensorrt_header_version(include_dir: str | os.PathLike) -> tuple[int, int]:
    """(major, minor) from NvInferVersion.h (11.x defines them through TRT_*_ENTERPRISE macros)."""
    text = (Path(include_dir) / "NvInferVersion.h").read_text(errors="replace")
    macros = dict(re.findall(r"^\s*#\s*define\s+(\w+)\s+(\w+)", text, flags=re.M))

    def value(name: str) -> int:
        v = macros.get(name, "")
        for _ in range(4):                       # follow a short chain of macro aliases
            if v.isdigit():
                return int(v)
            v = macros.get(v, "")
        raise BuildError(f"cannot read {name} from {include_dir}/NvInferVersion.h")

    return value("NV_TENSORRT_MAJOR"), value("NV_TENSORRT_MINOR")


def cmake_build_plugins(build_dir: str | os.PathLike, cuda_archs: str = "87",
                        tensorrt_include_dir: str | None = None, tensorrt_lib_dir: str | None = None,
                        jobs: int = 2) -> Path:
    """Configure and build ``kernels/CMakeLists.txt``; return the path of ``libedge_plugins.so``."""
    cmake = shutil.which("cmake")
    if cmake is None:
        raise BuildError("cmake not found")
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    cfg = [cmake, "-S", str(KERNELS_DIR), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
           f"-DCMAKE_CUDA_ARCHITECTURES={cuda_archs}"]
    nvcc = find_nvcc()
    if nvcc:
        cfg.append(f"-DCMAKE_CUDA_COMPILER={nvcc}")
    if tensorrt_include_dir:
        cfg.append(f"-DTENSORRT_INCLUDE_DIR={tensorrt_include_dir}")
    if tensorrt_lib_dir:
        cfg.append(f"-DTENSORRT_LIB_DIR={tensorrt_lib_dir}")
    run(cfg)
    run([cmake, "--build", str(build_dir), "-j", str(jobs)])
    lib = build_dir / "libedge_plugins.so"
    if not lib.is_file():
        raise BuildError(f"CMake build finished but {lib} is missing")
    return lib
