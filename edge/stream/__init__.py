"""The device's run loop (torch-free): sources, threaded pipeline, tracker in the loop, sinks."""
import os as _os

# Quiet FFmpeg/OpenCV logging before cv2 is first imported: the sources count and log failures themselves.
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
