"""``edge run`` end to end in subprocesses: every frame of a real clip, outputs readable, no torch, exit
codes for bad input, clean SIGINT/SIGTERM on a live stream."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import cv2
import pytest

from edge.assets import video_clip
from fixtures.numpy_engines import MJPEGServer, read_clip
from fixtures.outputs import jsonl, video_frames

CLIP = video_clip("carphone_pristine.mp4")
PY = sys.executable
# run the CLI and report whether torch got imported into that process
RUNNER = ("import sys; from edge.cli import main; rc = main(sys.argv[1:]); "
          "print('TORCH_LOADED', 'torch' in sys.modules, file=sys.stderr); sys.exit(rc)")


def edge_run(*args, timeout=120):
    return subprocess.run([PY, "-c", RUNNER, "run", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_run_file_writes_every_frame_without_torch(tmp_path):
    out, ev = tmp_path / "out.mp4", tmp_path / "events.jsonl"
    p = edge_run("--source", CLIP, "--out-video", out, "--events", ev, "--status-interval", "0")
    assert p.returncode == 0, p.stderr
    assert "TORCH_LOADED False" in p.stderr
    assert "peak RSS:" in p.stderr
    assert video_frames(out) == 120
    recs = jsonl(ev)
    frames = [r for r in recs if r["type"] == "frame"]
    assert [r["frame"] for r in frames] == list(range(120))
    summary = recs[-1]
    assert summary["type"] == "summary" and summary["processed"] == 120 and summary["drops"] == 0
    assert not list(tmp_path.glob(".*partial*"))          # temporary video renamed into place


def test_run_image_folder_two_streams(tmp_path):
    img = tmp_path / "Seq" / "img"
    img.mkdir(parents=True)
    for i, f in enumerate(read_clip(CLIP)[:12]):
        cv2.imwrite(str(img / f"{i + 1:04d}.jpg"), f)
    out = tmp_path / "o.avi"
    p = edge_run("--source", tmp_path / "Seq", "--source", CLIP, "--max-frames", 12, "--out-video", out,
                 "--events", tmp_path / "e.jsonl", "--status-interval", "0")
    assert p.returncode == 0, p.stderr
    assert video_frames(out) == 12 and video_frames(tmp_path / "o.1.avi") == 12
    frames = [r for r in jsonl(tmp_path / "e.jsonl") if r["type"] == "frame"]
    assert sorted((r["stream"], r["frame"]) for r in frames) == [(s, i) for s in (0, 1) for i in range(12)]


@pytest.mark.parametrize("box,msg", [("180,100,60,60", "lies outside the 176x144 frame"),
                                     ("10,10,0,20", "zero or negative area"),
                                     ("-25,10,20,20", "lies outside"), ("1,2,3", "4 numbers")])
def test_bad_init_box_is_one_line_error(tmp_path, box, msg):
    p = edge_run("--source", CLIP, "--tracker", tmp_path, f"--init-box={box}")
    assert p.returncode == 2
    err = [ln for ln in p.stderr.splitlines() if not ln.startswith("TORCH_LOADED")]
    assert len(err) == 1 and msg in err[0], p.stderr


@pytest.mark.parametrize("source", ["missing.mp4", "notvideo.mp4"])
def test_missing_or_unreadable_source_exit_2(tmp_path, source):
    (tmp_path / "notvideo.mp4").write_text("hello")
    p = edge_run("--source", tmp_path / source, "--events", tmp_path / "e.jsonl")
    assert p.returncode == 2
    err = [ln for ln in p.stderr.splitlines() if not ln.startswith("TORCH_LOADED")]
    assert len(err) == 1 and err[0].startswith("edge run: error:"), p.stderr


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_signal_mid_run_leaves_playable_video_and_complete_events(tmp_path, sig, code):
    server = MJPEGServer(read_clip(CLIP)[:40], fps=50).start()      # a live camera that never ends
    out, ev = tmp_path / "live.mp4", tmp_path / "live.jsonl"
    proc = subprocess.Popen([PY, "-c", RUNNER, "run", "--source", server.url, "--out-video", str(out),
                             "--events", str(ev), "--status-interval", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and (not ev.exists() or ev.read_text().count("\n") < 25):
            time.sleep(0.1)
        assert ev.exists(), "no events written"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    assert proc.returncode == code, err
    assert "TORCH_LOADED False" in err
    recs = jsonl(ev)                                               # every line parses
    frames = [r for r in recs if r["type"] == "frame"]
    assert len(frames) >= 25 and recs[-1]["type"] == "summary"
    assert video_frames(out) == len(frames)                        # finalised, playable, nothing missing


def test_run_live_source_reconnects_and_reports_it(tmp_path):
    """The camera drops the connection every 15 frames: the run keeps going, logs each reconnect as an
    event and still delivers --max-frames frames."""
    server = MJPEGServer(read_clip(CLIP)[:20], fps=100, per_connection=15).start()
    ev = tmp_path / "e.jsonl"
    try:
        p = edge_run("--source", server.url, "--max-frames", 40, "--events", ev, "--status-interval", "0",
                     timeout=60)
    finally:
        server.stop()
    assert p.returncode == 0, p.stderr
    recs = jsonl(ev)
    assert len([r for r in recs if r["type"] == "frame"]) + recs[-1]["drops"] == 40
    rec = [r for r in recs if r["type"] == "source_reconnect"]
    assert len(rec) >= 2 and recs[-1]["reconnects"] == len(rec)


@pytest.mark.skipif("NONE" not in next((ln for ln in cv2.getBuildInformation().splitlines() if "GUI:" in ln), ""),
                    reason="this OpenCV has a GUI")
def test_display_without_gui_is_one_line_error(tmp_path):
    p = edge_run("--source", CLIP, "--display")
    assert p.returncode == 2
    err = [ln for ln in p.stderr.splitlines() if not ln.startswith("TORCH_LOADED")]
    assert len(err) == 1 and "--display needs OpenCV with GUI" in err[0], p.stderr


def test_bad_output_folder_is_one_line_error(tmp_path):
    p = edge_run("--source", CLIP, "--out-video", tmp_path / "nope" / "o.mp4")
    assert p.returncode == 2 and "does not exist" in p.stderr


def test_rotate_turns_every_frame_upright_first(tmp_path):
    """--rotate 90: the video is written in the turned frame (144x176 from a 176x144 clip) and a box that only
    fits the turned frame is accepted (one that only fits the unturned one is refused); a bad angle: exit 2."""
    out = tmp_path / "r.avi"
    p = edge_run("--source", CLIP, "--rotate", 90, "--max-frames", 5, "--out-video", out, "--status-interval", "0")
    assert p.returncode == 0, p.stderr
    cap = cv2.VideoCapture(str(out))
    ok, first = cap.read()
    cap.release()
    assert ok and first.shape[:2] == (176, 144)
    want = cv2.rotate(read_clip(CLIP)[0], cv2.ROTATE_90_CLOCKWISE)
    assert abs(first.astype(float) - want).mean() < 12                # MJPG: close, not equal
    # the box is checked against the turned frame before any engine loads (this engine folder does not exist)
    turned = edge_run("--source", CLIP, "--rotate", 90, "--tracker", tmp_path / "none", "--init-box", "10,150,40,20")
    unturned = edge_run("--source", CLIP, "--tracker", tmp_path / "none", "--init-box", "10,150,40,20")
    assert "outside the 176x144 frame" in unturned.stderr and unturned.returncode == 2
    assert "outside" not in turned.stderr and turned.returncode == 2 and "none" in turned.stderr
    bad = tmp_path / "bad.avi"
    p = edge_run("--source", CLIP, "--rotate", 45, "--out-video", bad)
    assert p.returncode == 2 and "--rotate" in p.stderr and not bad.exists()
    import edge
    from edge.errors import UserError
    with pytest.raises(UserError, match="--rotate must be 0, 90, 180 or 270") as e:    # the API: before any output
        edge.run(str(CLIP), out_video=str(bad), rotate=45)
    assert "\n" not in str(e.value) and not bad.exists()


def test_rotated_source_by_hand():
    from edge.errors import UserError
    from edge.stream.sources import RotatedSource, VideoFileSource
    import threading
    import numpy as np
    clip = read_clip(CLIP)[:3]
    for deg, code in ((90, cv2.ROTATE_90_CLOCKWISE), (180, cv2.ROTATE_180), (270, cv2.ROTATE_90_COUNTERCLOCKWISE)):
        src = RotatedSource(VideoFileSource(CLIP), deg)
        assert src.frame_size() == ((176, 144) if deg == 180 else (144, 176))
        got = []
        for img, ts, index in src.frames(threading.Event()):
            got.append((img, index))
            if len(got) == 3:
                break
        src.close()
        assert [i for _, i in got] == [0, 1, 2]
        assert all(np.array_equal(img, cv2.rotate(f, code)) for (img, _), f in zip(got, clip))
    with pytest.raises(UserError, match="--rotate must be"):
        RotatedSource(VideoFileSource(CLIP), 45)
