"""Atomic file writes and hashes (torch-free)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over ``path`` (mode 0644)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)          # mkstemp makes 0600; artifacts are shared between users/devices
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    return atomic_write_bytes(dst, Path(src).read_bytes())


def read_json(path: str | os.PathLike, what: str = "file") -> dict:
    """Read a JSON object; a missing or corrupt file is a one-line ValueError/FileNotFoundError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} {path} is corrupt: not valid JSON ({e.__class__.__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} {path} is not a JSON object")
    return obj


def check_output(path: str | os.PathLike, what: str, folder: bool = False) -> Path:
    """An output location that can be written, checked before any work starts (one-line ``UserError``):
    an existing ``path`` is a writable file (``folder=True``: a writable folder), else its folder exists and
    is writable (``folder=True``: the nearest existing ancestor, as the missing ones will be made); read-only
    mounts count as not writable."""
    from edge.errors import UserError
    if str(path) == "":
        raise UserError(f"{what}: empty path")
    p = Path(path)
    if p.exists():
        if folder and not p.is_dir():
            raise UserError(f"{what} {p} exists and is not a folder")
        if not folder and p.is_dir():
            raise UserError(f"{what} {p} is a folder, not a file")
        if not os.access(p, os.W_OK):
            raise UserError(f"{what} {p} is not writable ({_why(p)})")
        if not folder:
            return p
    parent = p if p.exists() else p.parent
    while folder and not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{what} {p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{what} {p}: folder {parent} is not writable ({_why(parent)})")
    return p


def _why(p: Path) -> str:
    return "read-only file system" if _ro(p) else "permission denied"


def _ro(p: Path) -> bool:
    try:
        return bool(os.statvfs(p).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (also through links), whether or not they exist yet."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()
