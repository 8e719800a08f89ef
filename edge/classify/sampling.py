"""Which frames of a stream the classifier sees: frames at the model's own clock (torch-free).

A classifier is trained on clips at some frame rate (``sample_fps`` in its manifest: the sample model's
generated clips show a fall in 1.5-3.5 frames and a walk across the view in 9-25 frames, i.e. about 5 frames
per second of real time; ``edge.data.actions.CLIP_FPS``). A camera delivers 25-30 frames per second, so fed
every frame the model would see every action 5-6 times slower than anything it was trained on (a fall
looks like sitting down, a walk like standing). ``FrameSampler`` picks, by the frames' timestamps, the
frame nearest to each tick of the model's clock (mmaction's ``frame_interval``, decided by time so that
variable-rate and dropping live sources keep the model's clock); only those frames get optical flow (from
the previously sampled frame) and the encoder. ``fps=None`` or ``0`` samples every frame (clips already at
the model's rate, exports without ``sample_fps``).
"""
from __future__ import annotations


def sample_rate(fps: float | None) -> float | None:
    """A checked classifier clock: frames per second, or None for every frame (``fps`` None or 0); a negative
    or NaN rate is a ValueError."""
    if fps is not None and not fps >= 0:
        raise ValueError(f"classifier sample rate must be >= 0 frames per second (0: every frame), got {fps!r}")
    return float(fps) if fps else None


class FrameSampler:
    """``sampler(timestamp) -> bool``: is this frame one the model sees? One per stream, called in order."""

    def __init__(self, fps: float | None) -> None:
        fps = sample_rate(fps)
        self.period = 1.0 / fps if fps else 0.0
        self.reset()

    def reset(self) -> None:
        """Start over (a new stream or a reconnect): the next frame is sampled."""
        self.due: float | None = None
        self.last: float | None = None

    def __call__(self, timestamp: float | None) -> bool:
        if not self.period or timestamp is None:
            return True
        ts = float(timestamp)
        # a frame counts for a tick when it is the one nearest to it: within half the source's frame interval
        slack = 0.0 if self.last is None else min(max(ts - self.last, 0.0), self.period) / 2
        self.last = ts
        if self.due is not None and ts < self.due - slack - 1e-9:
            return False
        # the next tick; after a gap of more than one tick (dropped frames, a stall) the clock restarts here
        self.due = ts + self.period if self.due is None or ts - self.due >= self.period else self.due + self.period
        return True
