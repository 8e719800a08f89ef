"""``edge run`` with the real engines (export -> build cpu -> run) on a real clip: every frame processed,
tracker boxes and classifier labels identical to driving the same engines directly, no torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edge.assets import video_clip
from edge.classify.preprocess import FrameStream
from edge.classify.decision import OODRule
from edge.classify.runtime import ClassifierRuntime
from edge.runtime import load_engines
from edge.stream.pipeline import Pipeline, StreamInput
from edge.stream.sources import open_source
from edge.tracking import SiameseTracker
from edge.tracking.session import TrackerRuntime
from fixtures.outputs import jsonl, video_frames
from test_run_cli import RUNNER
from fixtures.numpy_engines import read_clip
from test_stream_pipeline import Collect

pytestmark = pytest.mark.slow
CLIP = video_clip("carphone_pristine.mp4")
BOX = (60.0, 30.0, 60.0, 70.0)


@pytest.fixture(scope="module")
def engine_dirs(tmp_path_factory):
    import edge
    root = tmp_path_factory.mktemp("engines")
    return {model: edge.build(edge.export(model, root / f"{model}_onnx").path, "cpu", "fp32", root / model).path
            for model in ("tracker", "classifier")}


def direct_tracker_boxes(frames, engines, box):
    t = SiameseTracker(engines)
    t.init(frames[0], np.asarray(box))
    return [np.asarray(box)] + [np.asarray(t.update(f)) for f in frames[1:]]


def sampled_indices(n: int, fps: float, sample_fps: float | None) -> list[int]:
    """The frames nearest to the ticks of the model's clock (0, 1/sample_fps, ...) in a video at ``fps``."""
    if not sample_fps:
        return list(range(n))
    return sorted({int(round(k * fps / sample_fps)) for k in range(int(n * sample_fps / fps) + 2)} & set(range(n)))


def direct_labels(frames, engines, fps: float):
    """Label score per due frame from the engines alone (no sampler, ring buffer or pipeline): the frames at
    the model's clock (manifest ``sample_fps``), flow between consecutive ones, a window every ``stride``."""
    cfg = engines.config
    T, size = cfg.window, cfg.input_size
    prep = FrameStream(size, cfg.flow_preset, cfg.flow_bound)
    state = engines["step"].inputs[1].shape[1:]
    index = sampled_indices(len(frames), fps, cfg.sample_fps)
    feats = []
    for i in index:
        rgb, flow = prep(frames[i])
        feats.append(engines["encoder"].run({"rgb": rgb, "flow": flow})["features"])
    out, stride = {}, ClassifierRuntime(engines).stride
    for k in range(T - 1, len(index), stride):
        h = np.zeros((1, *state), np.float32)
        c = h.copy()
        for t in range(k - T + 1, k + 1):
            o = engines["step"].run({"features": feats[t], "h": h, "c": c})
            h, c = o["h_next"], o["c_next"]
        z = o["logits"][0].astype(np.float64)
        t = cfg.calibration["temperature"]                          # the manifest's calibrated temperature
        p = np.exp(z / t - (z / t).max())
        p /= p.sum()
        rejected = bool(OODRule(**{k: (tuple(map(tuple, v)) if k == "centroids" else tuple(v) if k == "scale"
                                       else v) for k, v in cfg.calibration["ood"].items()}).reject(z, t))
        out[index[k]] = ("unknown" if rejected else cfg.classes[int(p.argmax())], float(p.max()))
    return out


def test_run_real_engines_on_real_clip(tmp_path, engine_dirs):
    out, ev = tmp_path / "both.mp4", tmp_path / "both.jsonl"
    p = subprocess.run([sys.executable, "-c", RUNNER, "run", "--source", str(CLIP),
                        "--tracker", str(engine_dirs["tracker"]), "--init-box", ",".join(map(str, BOX)),
                        "--classifier", str(engine_dirs["classifier"]), "--heatmap",
                        "--out-video", str(out), "--events", str(ev), "--status-interval", "0"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "TORCH_LOADED False" in p.stderr and "peak RSS:" in p.stderr
    assert video_frames(out) == 120
    recs = jsonl(ev)
    frames = [r for r in recs if r["type"] == "frame"]
    assert [r["frame"] for r in frames] == list(range(120))
    assert all(r["box"] is not None and len(r["box"]) == 4 for r in frames)
    assert [r["type"] for r in recs if r["type"] not in ("frame",)][:1] == ["track_init"]
    assert recs[-1]["type"] == "summary" and recs[-1]["processed"] == 120

    # the same engines driven directly give the same boxes and window labels (first 48 frames: time)
    clip = read_clip(CLIP)[:48]
    trk = load_engines(engine_dirs["tracker"])
    boxes = direct_tracker_boxes(clip, trk, BOX)
    got = np.array([r["box"] for r in frames[:48]])
    np.testing.assert_allclose(got, np.array(boxes), atol=0.01)     # JSON rounds boxes to 0.01 px
    cls = load_engines(engine_dirs["classifier"])
    assert cls.config.sample_fps == 5.0                             # the sample model's clock, from its manifest
    labels = direct_labels(read_clip(CLIP), cls, cv2.VideoCapture(str(CLIP)).get(cv2.CAP_PROP_FPS))
    assert len(labels) >= 3 and max(labels) > 100                  # 120 frames at 29.97 fps: 20 sampled, 4 windows
    for k, (label, score) in labels.items():
        assert frames[k]["label"] == label and frames[k]["label_score"] == pytest.approx(score, abs=2e-4), k
    # between windows a frame carries the last window's label; before the first window there is none
    first = min(labels)
    assert all(r["label"] is None for r in frames[:first])
    for k in range(first, 120):
        last = max(j for j in labels if j <= k)
        assert frames[k]["label"] == labels[last][0], k


@pytest.mark.parametrize("lanes", [1, 2])
def test_two_streams_keep_separate_tracker_state(engine_dirs, lanes):
    """Two streams of the same clip with different boxes, batched classifier, the trackers stepped in one
    thread or in two lanes at once (shared engines): each stream's boxes equal a direct single-stream run."""
    trk, cls = load_engines(engine_dirs["tracker"]), load_engines(engine_dirs["classifier"])
    boxes = [BOX, (20.0, 60.0, 40.0, 40.0)]
    sink = Collect()
    pipe = Pipeline([StreamInput(open_source(str(CLIP)), b) for b in boxes], tracker=TrackerRuntime(trk),
                    classifier=ClassifierRuntime(cls), sinks=[sink], max_frames=20, lanes=lanes)
    assert pipe.lanes == lanes
    assert [s.processed for s in pipe.run()] == [20, 20]
    clip = read_clip(CLIP)[:20]
    for s, b in enumerate(boxes):
        got = np.array([r.box for r in sink.results if r.stream == s])
        np.testing.assert_allclose(got, np.array(direct_tracker_boxes(clip, trk, b)), atol=1e-3)


def test_dropped_frames_reach_the_tracker_as_elapsed_frames(engine_dirs, rng):
    """Frames dropped upstream leave gaps in the source index: the session passes each gap to the tracker
    (its motion prior covers it), so its boxes equal a direct run told the same gaps."""
    trk = load_engines(engine_dirs["tracker"])
    clip = read_clip(CLIP)[:30]
    kept = [0] + sorted(rng.choice(np.arange(1, 30), 14, replace=False).tolist())
    sess = TrackerRuntime(trk).session(BOX)
    got = [sess.update(clip[i], i).box for i in kept]
    direct = SiameseTracker(trk)
    direct.init(clip[0], np.asarray(BOX, np.float64))
    want = [BOX] + [tuple(direct.update(clip[b], b - a)) for a, b in zip(kept[:-1], kept[1:])]
    np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-6)


def test_lanes_rule_follows_the_engines_threads(engine_dirs):
    """CPU engines: as many lanes as the cores hold at the engines' threads each (one thread each: one per
    core; as many threads as cores: one lane, no oversubscription)."""
    cores = os.cpu_count() or 1
    assert TrackerRuntime(load_engines(engine_dirs["tracker"], threads=1)).max_lanes == cores
    assert TrackerRuntime(load_engines(engine_dirs["tracker"], threads=cores)).max_lanes == 1


def test_target_hidden_by_noise_is_reported_lost_then_recovered(tmp_path, engine_dirs, rng):
    """Frames 8..13 of the clip replaced by noise (the target is gone): the run reports track_lost on the
    first noise frame and track_recovered after the clip returns; boxes are held while lost. (Scores of
    the default sample weights here: ~1.9 on the clip, < 1.0 on noise, ~1.3 in the widened lost search.)"""
    seq = tmp_path / "Seq" / "img"
    seq.mkdir(parents=True)
    clip = read_clip(CLIP)[:24]
    for i, f in enumerate(clip):
        img = rng.integers(0, 256, f.shape, dtype=np.uint8) if 8 <= i < 14 else f
        cv2.imwrite(str(seq / f"{i + 1:04d}.png"), img)
    ev = tmp_path / "e.jsonl"
    p = subprocess.run([sys.executable, "-c", RUNNER, "run", "--source", str(tmp_path / "Seq"),
                        "--tracker", str(engine_dirs["tracker"]), "--init-box", ",".join(map(str, BOX)),
                        "--lost-threshold", "1.2", "--events", str(ev), "--status-interval", "0"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    recs = jsonl(ev)
    frames = [r for r in recs if r["type"] == "frame"]
    lost = [r["frame"] for r in recs if r["type"] == "track_lost"]
    back = [r["frame"] for r in recs if r["type"] == "track_recovered"]
    assert lost and lost[0] == 8 and all(f["score"] < 1.2 for f in frames if f["lost"])
    assert back and 14 <= back[0] < 24 and frames[-1]["lost"] is False
    held = [f["box"] for f in frames if f["lost"]]
    assert all(b == held[0] for b in held)


def test_tracker_params_reach_the_tracker_and_bad_ones_fail_first(tmp_path, engine_dirs, rng):
    """--tracker-params: the run's boxes equal a tracker built with those parameters by hand (wide re-detection
    searching while the clip is hidden by noise, and a candidate grid of 8 angles that changes every box);
    malformed or unknown parameters are a one-line error, exit 2, before any output."""
    seq = tmp_path / "Seq" / "img"
    seq.mkdir(parents=True)
    clip = read_clip(CLIP)[:20]
    for i in range(8, 12):
        clip[i] = rng.integers(0, 256, clip[i].shape, dtype=np.uint8)
    for i, f in enumerate(clip):
        cv2.imwrite(str(seq / f"{i + 1:04d}.png"), f)
    params = {"wide_redetect": 1, "num_angles": 8}
    ev = tmp_path / "e.jsonl"
    p = subprocess.run([sys.executable, "-c", RUNNER, "run", "--source", str(tmp_path / "Seq"),
                        "--tracker", str(engine_dirs["tracker"]), "--init-box", ",".join(map(str, BOX)),
                        "--tracker-params", json.dumps(params), "--events", str(ev), "--status-interval", "0"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    got = np.array([r["box"] for r in jsonl(ev) if r["type"] == "frame"])
    engines = load_engines(engine_dirs["tracker"])
    frames = [cv2.imread(str(seq / f"{i + 1:04d}.png")) for i in range(len(clip))]
    runs = {}
    for name, prm in (("given", params), ("default", {})):
        t = SiameseTracker(engines, prm)
        t.init(frames[0], np.asarray(BOX))
        runs[name] = np.array([BOX] + [t.update(f) for f in frames[1:]])
        if name == "given":
            assert t.wide_searches >= 8
    np.testing.assert_allclose(got, runs["given"], atol=0.01)
    assert np.abs(runs["given"] - runs["default"]).max() > 0.05
    for bad, msg in (('{"wide_redetectx": 1}', "unknown tracker parameters: wide_redetectx"),
                     ("[1]", "must be a JSON object"), ("{bad", "is not JSON"),
                     ('{"wide_redetect": 1.5}', "wide_redetect counts rings"),
                     ("@" + str(tmp_path / "none.json"), "cannot read")):
        out = tmp_path / "bad.jsonl"
        p = subprocess.run([sys.executable, "-c", RUNNER, "run", "--source", str(tmp_path / "Seq"),
                            "--tracker", str(engine_dirs["tracker"]), "--init-box", ",".join(map(str, BOX)),
                            "--tracker-params", bad, "--events", str(out)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and msg in p.stderr and not out.exists(), (bad, p.stderr)
        assert len([ln for ln in p.stderr.splitlines() if ln.startswith("edge run: error")]) == 1


def test_build_tries_the_probed_search_and_keeps_it_only_when_faster(engine_dirs, rng):
    """The CPU build times the tracker's search with the read-outs inside the graph against the embeddings
    out + the product in numpy, and records both. Where it kept the probed form, the loaded composite
    ``search_probed`` returns the plain search's scores and ``embeddings @ probes^T`` for fresh probes (the
    reference: the plain engine and numpy) and the tracker's boxes follow the plain search's; where it did
    not, there is no composite."""
    from edge.runtime import fingerprint as fpr
    from edge.runtime.feeds import load_examples
    plan = fpr.read(engine_dirs["tracker"]).networks["search"]
    probed = plan.raw["probed"]
    assert set(probed["timings_ms"]) == {"probed", "embeddings_then_numpy"} and probed["max_rel_err"] < 1e-4
    assert probed["kept"] == (probed["timings_ms"]["probed"] < probed["timings_ms"]["embeddings_then_numpy"])
    eng = load_engines(engine_dirs["tracker"])
    if not probed["kept"]:
        assert eng.composites == {} and plan.probed_file is None
        return
    assert plan.probed_file == probed["file"] and list(eng.composites) == ["search_probed"]
    feeds, _ = load_examples(engine_dirs["tracker"], "search")
    emb = eng.config.search_embeddings
    dim = next(o for o in eng["search"].outputs if o.name == emb).shape[1]
    probes = rng.standard_normal((5, dim)).astype(np.float32)
    plain = eng["search"].run(feeds)
    got = eng.composites["search_probed"].run({**feeds, "probes": probes})
    np.testing.assert_allclose(got["scores"], plain["scores"], rtol=1e-5, atol=1e-6)
    ref = plain[emb].astype(np.float64) @ probes.T.astype(np.float64)
    np.testing.assert_allclose(got["products"], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    clip = read_clip(CLIP)[:20]
    without = load_engines(engine_dirs["tracker"])
    without.composites.clear()
    np.testing.assert_allclose(np.array(direct_tracker_boxes(clip, eng, BOX)),
                               np.array(direct_tracker_boxes(clip, without, BOX)), atol=1e-2)
