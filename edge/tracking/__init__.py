"""Torch-free tracker runtime: SINT-style Siamese tracker logic over any ``Engines``."""
from edge.tracking.params import TrackerParams
from edge.tracking.tracker import SiameseTracker

__all__ = ["SiameseTracker", "TrackerParams"]
