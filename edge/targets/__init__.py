"""Build target profiles (``targets.json``, readable data; torch-free)."""
from __future__ import annotations

import json
from pathlib import Path

TARGETS_FILE = Path(__file__).with_name("targets.json")


def load_targets() -> dict[str, dict]:
    data = json.loads(TARGETS_FILE.read_text())
    return {k: dict(v, name=k) for k, v in data.items() if not k.startswith("_")}


def get_target(name: str) -> dict:
    targets = load_targets()
    if name not in targets:
        raise ValueError(f"unknown target {name!r} (have: {', '.join(targets)}; see {TARGETS_FILE})")
    return targets[name]


def version_tuple(v: str | None) -> tuple[int, ...]:
    """'10.3.0.30' -> (10, 3, 0, 30); None -> ()."""
    if not v:
        return ()
    out = []
    for part in str(v).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)
