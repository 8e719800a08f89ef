"""``edge demo`` pieces (the full demo is too slow for the suite; the lead runs ``make demo``): the stage
runner (an API call with its log), failure reporting, the real ``edge.run`` stage on bikes.mp4 with tiny
engines in a fresh process, and the summary table."""
import json

import pytest

from edge.commands import demo
from fixtures.engines import build_standins


def test_stage_runs_an_api_call_with_its_log(tmp_path, capsys):
    d = demo.Demo(tmp_path)

    def job(x, log):
        log(f"working on {x}")
        return x * 2
    assert d.stage("double", job, 21) == 42
    assert d.stages[0][:2] == ("double", "ok") and not d.failed
    assert (tmp_path / "logs" / "double.log").read_text() == "working on 21\n"
    assert d.stage("check", job, 1, ok=lambda r: r > 5) == 2 and d.stages[1][1] == "check failed"
    assert not d.failed                                        # a finding, not a broken demo


def test_failing_stage_is_logged_and_fails_the_demo(tmp_path, capsys):
    import edge
    d = demo.Demo(tmp_path)
    assert d.stage("bench", edge.bench, [tmp_path / "no_such_engine"]) is None
    assert d.failed and d.stages[0][1].startswith("failed: FileNotFoundError: engine folder not found")
    log = (tmp_path / "logs" / "bench.log").read_text()
    assert "engine folder not found" in log and "Traceback" in log     # the whole story is in the log
    assert "[demo] bench: failed" in capsys.readouterr().out


@pytest.fixture(scope="module")
def tiny_engines(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return root, {name: {"fp32": path} for name, path in build_standins(root).items()}


def test_run_stage_on_the_real_clip(tiny_engines, tmp_path):
    pytest.importorskip("edge.commands.run", reason="needs H6's edge run")
    _, eng = tiny_engines
    d = demo.Demo(tmp_path)
    info = demo._run_loop(d, eng, frames=12)
    assert d.stages[0][:2] == ("run", "ok"), (tmp_path / "logs" / "run.log").read_text()
    assert info["processed"] == 12 and info["fps"] > 0 and info["torch_imported"] == "no"   # a fresh process
    assert (tmp_path / "run" / "bikes_overlay.mp4").stat().st_size > 0
    events = [json.loads(line) for line in (tmp_path / "run" / "bikes_events.jsonl").read_text().splitlines()]
    assert events, "edge run wrote no events"


def test_demo_clip_is_one_continuous_shot(tmp_path):
    """The edge run clip: frames 187-241 of bikes.mp4, no scene cut (mean absolute difference of consecutive
    frames: 53-85 grey levels at bikes.mp4's cuts, at most 11 inside this shot), the init box inside the frame."""
    import numpy as np
    from edge.assets import video_clip
    from edge.data.sequences import read_video
    start, count = demo.BIKES_SEGMENT
    clip = demo._segment(video_clip("bikes.mp4"), start, count, tmp_path / "shot.mp4")
    frames, src = read_video(clip), read_video(video_clip("bikes.mp4"))
    assert len(frames) == count
    assert np.abs(frames[0].astype(int) - src[start]).mean() < 4                 # mp4v re-encoded
    diffs = [np.abs(a.astype(int) - b).mean() for a, b in zip(frames[:-1], frames[1:])]
    assert max(diffs) < 20, max(diffs)
    for a, b in ((start - 1, start), (start + count - 1, start + count)):      # the cuts around the shot
        assert np.abs(src[a].astype(int) - src[b]).mean() > 40
    x, y, w, h = (float(v) for v in demo.BIKES_INIT_BOX.split(","))
    assert 0 <= x and x + w <= 640 and 0 <= y and y + h <= 272


def test_summary_table_and_paths(tmp_path):
    rows = [{"name": "pytorch", "reference": True, "verdict": {"status": "ref"},
             "speed": {"end_to_end": {"fps": 2.0}}, "speedup": {"end_to_end": 1.0},
             "task": {"auc": 0.5, "precision20": 0.6}},
            {"name": "tracker-cpu-int8", "verdict": {"status": "pass"}, "numerics": {"top1_agreement": 0.98},
             "speed": {"end_to_end": {"fps": 30.0}}, "speedup": {"end_to_end": 15.0}, "delta": {"auc": -0.02}},
            {"name": "tracker-cpu-fp16", "verdict": {"status": "fail", "failures": ["success AUC delta -0.0500"]},
             "speed": {}, "speedup": {}}]
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "report.json").write_text(json.dumps({"status": "pass", "models": {"tracker": {"rows": rows}}}))
    (tmp_path / "run").mkdir()
    video = tmp_path / "run" / "v.mp4"
    video.write_bytes(b"x")
    d = demo.Demo(tmp_path)
    d.skip("calibrate-tracker", "reusing out/demo/export/tracker/calibration")
    text = demo.summary(d, tmp_path / "bench" / "report.json",
                        {"video": str(video), "fps": 61.5, "processed": 250, "captured": 250, "alarms": 0,
                         "engines": {"tracker": "e/tracker-cpu-int8"}, "torch_imported": "no"}, 300.0)
    line = next(ln for ln in text.splitlines() if "tracker-cpu-int8" in ln and "FPS" not in ln)
    assert "30.0" in line and "15.0x" in line and "agree 98.0%" in line and "AUC -0.020" in line
    assert "250/250 frames at 61.5 FPS" in text and str(video) in text
    assert "calibrate-tracker skipped" in text and "5.0 min" in text and "action alarms: 0" in text
    assert "FAIL tracker tracker-cpu-fp16: success AUC delta -0.0500" in text
