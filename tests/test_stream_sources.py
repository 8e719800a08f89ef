"""Frame sources: files, image folders, live reconnect with back-off, spec parsing, errors."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from edge.assets import video_clip
from edge.errors import UserError
from edge.stream.sources import (ImageFolderSource, LiveSource, VideoFileSource, _gstreamer_available,
                                 classify_spec, decode_threads, open_source)
from fixtures.numpy_engines import MJPEGServer, free_port, read_clip

CLIP = video_clip("carphone_pristine.mp4")


def test_video_file_source_yields_every_frame_as_decoded():
    expected = read_clip(CLIP)
    src = open_source(str(CLIP))
    assert isinstance(src, VideoFileSource) and not src.live
    assert src.frame_size() == (176, 144)
    got = list(src.frames(threading.Event()))
    assert len(got) == len(expected) == 120
    assert all(np.array_equal(a, b) for (a, _, _), b in zip(got, expected))
    assert [i for _, _, i in got] == list(range(120))
    ts = [t for _, t, _ in got]
    assert ts[0] == pytest.approx(0.0, abs=1e-6) and all(b > a for a, b in zip(ts, ts[1:]))
    assert src.stats.frames == 120 and src.stats.corrupt == 0


def test_single_threaded_decoding_gives_the_same_frames():
    expected = read_clip(CLIP)
    src = open_source(str(CLIP), decode_threads=1)
    assert src.cap.get(cv2.CAP_PROP_N_THREADS) == 1
    got = [img for img, _, _ in src.frames(threading.Event())]
    assert len(got) == 120 and all(np.array_equal(a, b) for a, b in zip(got, expected))
    assert decode_threads(1) is None or decode_threads(1) == 1      # one core: one thread
    assert decode_threads(64) == 1



def test_image_folder_otb_layout_skips_and_counts_corrupt(tmp_path, rng):
    img = tmp_path / "Seq" / "img"
    img.mkdir(parents=True)
    frames = [rng.integers(0, 255, (40, 60, 3), dtype=np.uint8) for _ in range(6)]
    for i, f in enumerate(frames):
        cv2.imwrite(str(img / f"{i + 1:04d}.png"), f)
    (img / "0004.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")     # a corrupt frame in the middle
    (img / "notes.txt").write_text("not an image")
    src = open_source(str(tmp_path / "Seq"))
    assert isinstance(src, ImageFolderSource) and src.frame_size() == (60, 40)
    got = list(src.frames(threading.Event()))
    keep = [frames[i] for i in (0, 1, 2, 4, 5)]
    assert len(got) == 5 and all(np.array_equal(a, b) for (a, _, _), b in zip(got, keep))
    assert [i for _, _, i in got] == [0, 1, 2, 4, 5]          # the source's own numbers: 3 was corrupt
    assert src.stats.corrupt == 1


@pytest.mark.parametrize("spec,kind", [("0", "camera"), ("12", "camera"), ("rtsp://10.0.0.2:554/live", "url"),
                                       ("http://cam.local/video.mjpg", "url"),
                                       ("nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! appsink",
                                        "gstreamer"), ("clip.mp4", "file")])
def test_classify_spec(spec, kind):
    assert classify_spec(spec) == kind


def test_missing_unreadable_and_empty_sources_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="source not found"):
        open_source(str(tmp_path / "nope.mp4"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video")
    with pytest.raises(UserError, match="cannot decode"):
        open_source(str(bad))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        open_source(str(tmp_path / "empty"))


@pytest.mark.skipif(_gstreamer_available(), reason="this OpenCV has GStreamer")
def test_gstreamer_without_support_is_clear_error():
    with pytest.raises(UserError, match="GStreamer"):
        open_source("videotestsrc ! videoconvert ! appsink")


def test_live_source_reconnects_after_failure_and_disconnect():
    """The server is down at first (connection refused), then comes up, drops the connection after 15
    frames and serves again: the source keeps delivering frames, counting reconnects."""
    frames = read_clip(CLIP)[:30]
    port = free_port()
    src = LiveSource(lambda: cv2.VideoCapture(f"http://127.0.0.1:{port}/s.mjpg", cv2.CAP_FFMPEG), "mjpeg",
                     backoff=0.05, max_backoff=0.2)
    stop = threading.Event()
    got = []

    def consume():
        for img, ts, _ in src.frames(stop):
            got.append((img, ts))
            if len(got) >= 40:
                stop.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    time.sleep(0.4)                                      # several failed opens with back-off
    assert not got and src.stats.errors, "expected failed open attempts before the server exists"
    server = MJPEGServer(frames, port=port, fps=200, per_connection=15).start()
    try:
        t.join(20)
        assert not t.is_alive()
    finally:
        stop.set()
        server.stop()
    assert len(got) == 40
    assert server.connections >= 3 and src.stats.reconnects >= 2
    assert got[0][0].shape == (144, 176, 3)
    # JPEG round trip of the first served frame: close to the original
    assert np.abs(got[0][0].astype(int) - frames[0].astype(int)).mean() < 6


def test_corrupt_frame_in_video_file_is_skipped_and_counted(tmp_path):
    """An MJPG AVI whose 11th frame has its JPEG header wiped: that frame is skipped, the rest come out
    exactly as the intact file decodes them."""
    frames = read_clip(CLIP)[:30]
    good, bad = tmp_path / "good.avi", tmp_path / "bad.avi"
    w = cv2.VideoWriter(str(good), cv2.VideoWriter_fourcc(*"MJPG"), 30, (176, 144))
    for f in frames:
        w.write(f)
    w.release()
    data = bytearray(good.read_bytes())
    soi = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(soi) == 30
    data[soi[10]:soi[10] + 600] = bytes(600)
    bad.write_bytes(bytes(data))
    expected = read_clip(good)
    src = open_source(str(bad))
    got = [f for f, _, _ in src.frames(threading.Event())]
    assert src.stats.corrupt == 1 and len(got) == 29
    assert all(np.array_equal(a, b) for a, b in zip(got, expected[:10] + expected[11:]))
