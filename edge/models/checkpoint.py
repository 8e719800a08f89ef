"""Checkpoints (reference side): read always with ``weights_only=True``, with one-line errors that never
suggest the unsafe setting, and the wrappers common training setups write unwrapped; our own checkpoints
(trained parts + metadata) written atomically."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

WRAPPERS = ("state_dict", "model", "model_state_dict", "net")


def torch_load(path: str | Path, what: str = "checkpoint"):
    """``torch.load(path, weights_only=True)`` on the CPU; a missing, corrupt or unsafe file is one line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        # torch warns before it fails on random bytes that start like a pickle ("Detected pickle protocol
        # 138"): held back so that a bad file stays one line, and re-issued when the load succeeds
        with warnings.catch_warnings(record=True) as held:
            warnings.simplefilter("always")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, random bytes, truncated file, pickled objects ...
        msg = str(e)
        if "Unsupported global" in msg or "GLOBAL" in msg:
            raise ValueError(f"{what} {path} holds Python objects, not just tensors, so it cannot be loaded "
                             f"safely: save model.state_dict() (torch.save) instead") from None
        raise ValueError(f"{what} {path} is not a readable PyTorch checkpoint (corrupt, truncated or "
                         f"another format)") from None
    for w in held:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return obj


def state_dict(obj, path: str | Path, what: str = "checkpoint") -> dict:
    """The state dict inside a loaded checkpoint: a plain one, or one under ``state_dict`` / ``model`` /
    ``model_state_dict`` / ``net``; DataParallel's ``module.`` prefixes removed."""
    if isinstance(obj, dict):
        for key in WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        raise ValueError(f"{what} {path} holds {type(obj).__name__}, not a state dict "
                         f"(a mapping of parameter names to tensors)")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_state_dict(path: str | Path, what: str = "checkpoint") -> dict:
    """The state dict of a checkpoint file, whichever common wrapper it came in (see ``state_dict``)."""
    return state_dict(torch_load(path, what), path, what)


def save_payload(path: str | Path, state: dict, meta: dict) -> None:
    """``{"state_dict": state, "meta": meta}`` to ``path`` atomically (``meta`` of plain types, tensors and
    containers of them: what ``weights_only=True`` loads)."""
    import io

    from edge.fileio import atomic_write_bytes
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"state_dict": state, "meta": meta}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_payload(path: str | Path, what: str, kind: str) -> tuple[dict, dict]:
    """(state_dict, meta) of a ``kind`` checkpoint ``save_payload`` wrote; one-line errors for anything else."""
    path = Path(path)
    payload = torch_load(path, what)
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise ValueError(f"{what} {path} is not a {kind} checkpoint (expected a dict with a state_dict)")
    return payload["state_dict"], payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
