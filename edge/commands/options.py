"""Option parsers that more than one command uses (one home for each, so `edge run` and `edge bench` read
them alike)."""
from __future__ import annotations


def tracker_params(text: str | None, lost_threshold: float | None) -> dict | None:
    """``--tracker-params`` (a JSON object, or ``@file.json``) with ``--lost-threshold`` over it; a one-line
    error for anything else (unknown names and bad values are the tracker's own one-line errors)."""
    import json
    from pathlib import Path

    from edge.errors import UserError
    out = {}
    if text:
        src = text
        if text.startswith("@"):
            try:
                src = Path(text[1:]).read_text()
            except OSError as e:
                raise UserError(f"--tracker-params: cannot read {text[1:]}: {e.strerror or e}") from None
        try:
            out = json.loads(src)
        except json.JSONDecodeError as e:
            raise UserError(f"--tracker-params is not JSON ({e.msg} at position {e.pos})") from None
        if not isinstance(out, dict):
            raise UserError(f"--tracker-params must be a JSON object of tracker parameters, got {src.strip()[:60]}")
    if lost_threshold is not None:
        out["lost_threshold"] = lost_threshold
    return out or None
