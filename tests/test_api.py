"""The public Python API (``edge.api``, re-exported by ``edge``): the README's example runs as written (with
the stand-in models), ``edge`` imports without torch, ``Tracker`` / ``Classifier`` equal the engines driven
by hand, ``on_event`` sees what the events file holds, and ``python -m edge`` is the CLI."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.assets import video_clip
from edge.classify.preprocess import FrameStream
from edge.classify.runtime import softmax
from edge.runtime import load_engines
from edge.tracking import SiameseTracker
from fixtures.engines import build_standins
from fixtures.numpy_engines import LABELS, classifier_engines, read_clip

ROOT = Path(__file__).resolve().parents[1]
CLIP = video_clip("carphone_pristine.mp4")


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    return build_standins(tmp_path_factory.mktemp("api"))


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README has no api-example block"
    return m.group(1)


def test_readme_example_runs(tmp_path):
    """The README's example, with the stand-in models (seconds instead of minutes) and this test's folders."""
    code = readme_example()
    assert 8 <= len(code.strip().splitlines()) <= 14
    code = (code.replace('"tracker"', '"fixtures.standin_tracker"').replace("out/api", str(tmp_path))
            .replace('"clip.mp4"', repr(str(CLIP))))
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    summary, report = ns["summary"], ns["report"]
    assert summary.streams[0].processed == 50 and (tmp_path / "run.mp4").is_file()
    assert report.status in ("pass", "fail") and "tracker" in report.report["models"]
    assert isinstance(ns["box"], np.ndarray) and ns["box"].shape == (4,)


def test_import_edge_is_light():
    code = ("import sys, edge; edge.run; edge.Tracker; edge.export; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert callable(edge.export) and callable(edge.bench)            # packages that are also the API's calls


def test_tracker_object_equals_the_tracker_on_the_same_engines(standins):
    frames = read_clip(CLIP)[:15]
    box = (60.0, 30.0, 60.0, 70.0)
    api = edge.Tracker(standins["tracker"])
    api.init(frames[0], box)
    direct = SiameseTracker(load_engines(standins["tracker"]))
    direct.init(frames[0], np.asarray(box))
    for f in frames[1:]:
        np.testing.assert_array_equal(api.update(f), direct.update(f))
    assert api.score == direct.last_score and api.lost == direct.lost
    with pytest.raises(edge.UserError, match="classifier engines"):
        edge.Tracker(standins["classifier"])


def test_classifier_push_gives_each_window_label(rng):
    """``push`` returns a label exactly when a window completes (frames T-1, T-1+stride, ...), equal to the
    ConvLSTM run from zero state over that window's features computed by hand."""
    frames = read_clip(CLIP)[:20]
    engines = classifier_engines(window=4, stride=3)
    cls = edge.Classifier(engines)
    prep, feats = FrameStream(56), []
    for f in frames:
        rgb, flow = prep(f)
        feats.append(engines["encoder"].run({"rgb": rgb, "flow": flow})["features"])
    got = {i: lab for i, f in enumerate(frames) if (lab := cls.push(f)) is not None}
    assert sorted(got) == list(range(3, 20, 3))
    step = engines["step"]
    for k, lab in got.items():
        h = np.zeros((1, step.hidden, 7, 7), np.float32)
        c = np.zeros_like(h)
        for t in range(k - 3, k + 1):
            o = step.run({"features": feats[t], "h": h, "c": c})
            h, c = o["h_next"], o["c_next"]
        p = softmax(o["logits"][0].astype(np.float64))
        assert lab.frame == k and lab.label == LABELS[int(p.argmax())]
        assert lab.score == pytest.approx(float(p.max()), rel=1e-5)


def test_run_calls_on_event_with_what_the_events_file_holds(standins, tmp_path):
    seen = []
    summary = edge.run(str(CLIP), tracker=standins["tracker"], init_box="60,30,60,70",
                       classifier=standins["classifier"], events=tmp_path / "e.jsonl", max_frames=30,
                       on_event=lambda stream, ev: seen.append((stream, ev.type, ev.frame)))
    recs = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    in_file = [(r["stream"], r["type"], r["frame"]) for r in recs if r["type"] not in ("frame", "summary")]
    assert seen == in_file and ("track_init" in {t for _, t, _ in seen}) and seen[-1][1] == "stream_end"
    s = summary.streams[0]
    assert s.processed == 30 and summary.events_lines == len(recs)
    assert s.events == {t: sum(1 for _, u, _ in seen if u == t) for t in {t for _, t, _ in seen}}


def test_run_rejects_bad_input_before_loading_anything(standins, tmp_path):
    with pytest.raises(edge.UserError, match="needs --init-box"):
        edge.run(str(CLIP), tracker=standins["tracker"])
    with pytest.raises(edge.UserError, match="holds classifier engines"):
        edge.run(str(CLIP), tracker=standins["classifier"], init_box=(1, 1, 5, 5))
    with pytest.raises(FileNotFoundError):
        edge.run(str(tmp_path / "missing.mp4"), classifier=standins["classifier"])


def test_python_dash_m_edge_is_the_cli():
    out = subprocess.run([sys.executable, "-m", "edge", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"edge {edge.__version__}"
    out = subprocess.run([sys.executable, "-m", "edge", "run", "--source", "nope.mp4"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "nope.mp4" in out.stderr


def test_engines_share_the_build_threads_when_both_models_run(standins):
    """Both models step concurrently, so each CPU engine loads with the build's threads divided among them;
    ``threads`` overrides; one model alone keeps the build's."""
    from edge.runtime import fingerprint as fpr
    from edge.stream.run import RunPlan, engine_threads, prepare
    built = fpr.read(standins["tracker"]).session.threads
    assert engine_threads(standins["tracker"], 1) == built
    assert engine_threads(standins["tracker"], 2) == max(1, built // 2)

    def session_threads(**kw):
        plan = RunPlan(sources=[str(CLIP)], init_boxes=[(60, 30, 60, 70)], max_frames=2, **kw)
        pipe = prepare(plan)
        for s in pipe.streams:
            s.source.close()
        sessions = [s for rt in pipe.runtimes for e in rt.engines.networks.values()
                    for s in (getattr(e, "sessions", None) or {"": e.session}).values()]
        return {s.get_session_options().intra_op_num_threads for s in sessions}
    both = dict(tracker=str(standins["tracker"]), classifier=str(standins["classifier"]))
    assert session_threads(**both) == {max(1, built // 2)}
    assert session_threads(**both, threads=3) == {3}
    assert session_threads(tracker=str(standins["tracker"])) == {built}
