"""``edge bench`` end to end on tiny engines: export -> build cpu -> bench with the PyTorch reference, the
plain-onnxruntime baseline, generated OTB sequences and labelled clips; reports, plots and exit codes."""
import json

import numpy as np
import pytest

from fixtures import standin_classifier as tiny_classifier
from edge.cli import main
from fixtures.engines import build_standins


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_e2e")
    out = build_standins(root)
    # data: one generated OTB sequence (12 frames) and 6 labelled clips (one per class)
    from edge.data.actions import write_clips
    from edge.data.tracking_gen import render_sequence, write_sequence
    write_sequence(render_sequence(7, length=12), root / "otb")
    write_clips(root / "clips", "test", count=6)
    return root, out


def bench(root, engine_dirs, *extra):
    argv = ["bench", *map(str, engine_dirs), "--data", str(root / "otb"), str(root / "clips"),
            "--samples", "12", "--duration", "0.05", "--threads", "1", "--max-frames", "48", *extra]
    return main(argv)


@pytest.mark.slow
def test_bench_end_to_end(engines, tmp_path, capsys):
    pytest.importorskip("edge.data.sequences", reason="needs H3's OTB/GOT-10k readers")
    root, eng = engines
    rc = bench(root, [eng["tracker"], eng["classifier"]], "--json", str(tmp_path / "r.json"),
               "--markdown", str(tmp_path / "r.md"), "--plots", str(tmp_path / "plots"))
    printed = capsys.readouterr().out
    assert rc == 0, printed
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["status"] == "pass" and set(rep["models"]) == {"tracker", "classifier"}
    for model, sec in rep["models"].items():
        names = [r["name"] for r in sec["rows"] if not r.get("anchor")]
        assert names == ["pytorch", "onnxruntime-plain", f"{model}-cpu-fp32"], names
        for r in sec["rows"][1:3]:
            # same weights, fp32: identical decisions on identical inputs, tiny errors
            assert r["numerics"]["top1_agreement"] == 1.0 and r["numerics"]["max_abs_err"] < 1e-3
            assert r["verdict"]["status"] == "pass", r["verdict"]
            assert r["speed"]["end_to_end"]["fps"] > 0 and r["speedup"]["end_to_end"] > 0
        eng_row, base_row = sec["rows"][2], sec["rows"][1]
        assert eng_row["vs_baseline"]["end_to_end"] == pytest.approx(
            eng_row["speed"]["end_to_end"]["fps"] / base_row["speed"]["end_to_end"]["fps"])
    trk = rep["models"]["tracker"]["rows"]
    anchor = [r for r in trk if r.get("anchor")]                        # OpenCV rows after ours, no verdict
    assert [r["name"] for r in anchor][-1] == "OpenCV MIL" and trk[3:] == anchor
    assert all(r["verdict"]["status"] == "anchor" and 0 <= r["task"]["auc"] <= 1 for r in anchor)
    assert set(trk[0]["task"]["attributes"]) == set(anchor[0]["task"]["attributes"])
    ref_task, eng_task = trk[0]["task"], trk[2]["task"]
    assert len(ref_task["success_curve"]) == 21 and len(ref_task["precision_curve"]) == 51
    assert ref_task["auc"] == pytest.approx(np.mean(ref_task["success_curve"]))
    assert ref_task["precision20"] == pytest.approx(ref_task["precision_curve"][20])
    assert trk[2]["delta"]["auc"] == pytest.approx(eng_task["auc"] - ref_task["auc"])
    # one search per tracked frame, and on a few frames a second one (chase, re-detection)
    assert 11 <= rep["models"]["tracker"]["samples"]["search"] <= 16
    assert trk[2]["numerics"]["search_candidates"]["top1_box_agreement"] == 1.0
    cls = rep["models"]["classifier"]["rows"]
    assert cls[0]["task"]["clips"] == 6 and cls[2]["task"]["prediction_agreement"] == 1.0
    # false alarms on held-back real footage (48 frames of each held-back video here), same count every row
    assert "bikes.mp4" in cls[0]["task"]["alarm_footage"] and cls[0]["task"]["alarm_windows"] > 0
    assert cls[0]["task"]["alarm_footage"]["bikes.mp4"]["frames"] == 48
    for r in cls[1:]:
        assert r["task"]["alarm_events_delta"] == 0 and r["task"]["alarm_window_agreement"] == 1.0
        assert "false alarm events" in r["verdict"]["checked"]
    md = (tmp_path / "r.md").read_text()
    assert md == printed and "| tracker-cpu-fp32 |" in md
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "classifier_latency.png", "fps.png", "tracker_attributes.png", "tracker_latency.png", "tracker_otb.png"]


def test_bench_exit_codes(engines, tmp_path, capsys):
    root, eng = engines
    # a tolerance no engine can meet -> the row fails -> exit code 1 (classifier only: fast)
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"fp32": {"min_cosine": 1.5}}))
    assert bench(root, [eng["classifier"]], "--tolerances", str(strict), "--no-baseline",
                 "--json", str(tmp_path / "fail.json")) == 1
    rep = json.loads((tmp_path / "fail.json").read_text())
    row = rep["models"]["classifier"]["rows"][1]
    assert rep["status"] == "fail" and row["verdict"]["status"] == "fail"
    assert "min cosine" in row["verdict"]["failures"][0]
    # bad input: one-line error, exit 2, nothing written
    assert main(["bench", str(tmp_path / "missing"), "--json", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    assert bench(root, [eng["classifier"]], "--tolerances", str(bad)) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err


def test_engines_from_other_weights_fail(engines, tmp_path):
    """A checkpoint retrained after export: the reference now differs from the engines -> exit 1, said why."""
    import torch
    from edge.export.onnx_export import export_model
    root, _ = engines
    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny_classifier.build_classifier().state_dict(), ckpt)
    export_model(tiny_classifier, tmp_path / "export", weights=str(ckpt), seed=0, log=lambda m: None)
    assert main(["build", str(tmp_path / "export"), "--target", "cpu", "-o", str(tmp_path / "eng")]) == 0
    assert bench(root, [tmp_path / "eng"], "--no-baseline", "--max-clips", "2") == 0     # same weights: pass
    retrained = {k: v + 0.01 for k, v in torch.load(ckpt, weights_only=True).items()}
    torch.save(retrained, ckpt)
    assert bench(root, [tmp_path / "eng"], "--no-baseline", "--max-clips", "2",
                 "--json", str(tmp_path / "r.json")) == 1
    row = json.loads((tmp_path / "r.json").read_text())["models"]["classifier"]["rows"][1]
    assert "other weights than the PyTorch reference" in row["verdict"]["failures"][0]


def test_data_folders_otb_got10k_and_clips(tmp_path):
    """--data: OTB and GOT-10k sequence folders (a GOT-10k test sequence without per-frame ground truth is
    skipped, said so), labelled clip folders; bad labels are a one-line error."""
    from edge.bench import data
    from edge.data.actions import CLASSES, write_clips
    from edge.data.tracking_gen import render_sequence, write_sequence
    seq = render_sequence(3, length=6)
    write_sequence(seq, tmp_path / "otb")
    got = write_sequence(seq, tmp_path / "got", fmt="got10k")
    test_split = write_sequence(render_sequence(4, length=4), tmp_path / "got", fmt="got10k")
    (test_split / "groundtruth.txt").write_text("10,10,20,20\n")     # GOT-10k test split: first box only
    said = []
    loaded = data.load_sequences([tmp_path / "otb", tmp_path / "got"], max_frames=5, log=said.append)
    assert [len(s.frames) for s in loaded] == [5, 5] and loaded[0].gt.shape == (5, 4)
    np.testing.assert_allclose(loaded[1].gt, seq.boxes[:5], atol=1e-3)
    assert len(said) == 1 and test_split.name in said[0]
    assert not data.is_clip_folder(got)
    write_clips(tmp_path / "clips", "test", count=2)
    clips = data.load_clips(tmp_path / "clips", CLASSES)
    assert [c.label for c in clips] == [0, 1] and len(clips[0].frames) == 9
    with pytest.raises(ValueError, match="not classes of the model"):
        data.load_clips(tmp_path / "clips", ["take", "fall"])


def test_bench_conditions_rerun_the_tracker_rows(engines, tmp_path):
    """--conditions: every tracker row (PyTorch, the engine, the OpenCV anchors) again on the same data as those
    cameras give it; the fp32 engine still equals PyTorch there; an unknown condition fails before any work."""
    from edge.bench import conditions as camera
    root, eng = engines
    out = tmp_path / "c.json"
    assert bench(root, [eng["tracker"]], "--no-baseline", "--conditions", "night_ir", "runtime_drops",
                 "--anchors", "CSRT", "--json", str(out), "--markdown", str(tmp_path / "c.md")) == 0
    sec = json.loads(out.read_text())["models"]["tracker"]
    conds = sec["conditions"]
    assert list(conds) == ["night_ir", "runtime_drops"]
    for name, c in conds.items():
        assert c["what"] == camera.CONDITIONS[name].what
        rows = c["rows"]
        assert list(rows)[:2] == ["pytorch", "tracker-cpu-fp32"] and "OpenCV CSRT" in rows
        assert rows["tracker-cpu-fp32"]["auc"] == pytest.approx(rows["pytorch"]["auc"], abs=1e-6)
        assert all(0 <= r["auc"] <= 1 for r in rows.values())
    # the condition changes what the trackers see: CSRT (deterministic) scores otherwise than on the unchanged data
    csrt = next(r for r in sec["rows"] if r["name"] == "OpenCV CSRT")["task"]["auc"]
    assert conds["night_ir"]["rows"]["OpenCV CSRT"]["auc"] != pytest.approx(csrt, abs=1e-6)
    assert "Under camera conditions" in (tmp_path / "c.md").read_text()
    bad = tmp_path / "bad.json"
    assert bench(root, [eng["tracker"]], "--conditions", "fog", "--json", str(bad)) == 2
    assert not bad.exists()


def test_bench_tracker_params_reach_every_tracker_row(engines, tmp_path):
    """--tracker-params: the engine row's AUC is what a tracker with those parameters scores on the same frames
    driven by hand, the PyTorch row matches it, and a bad parameter fails before any work (exit 2, no report)."""
    from edge.bench import data
    from edge.eval import otb
    from edge.runtime import load_engines
    from edge.tracking import SiameseTracker
    root, eng = engines
    # the stand-in networks score below the default lost threshold, so by default the box is held; never lost by
    # score, the box follows the picks (AUC 0.73 vs 0.59 on this sequence)
    params = {"lost_threshold": 1e-6, "wide_redetect": 1}
    out = tmp_path / "p.json"
    assert bench(root, [eng["tracker"]], "--no-baseline", "--tracker-params", json.dumps(params),
                 "--anchors", "KCF", "--json", str(out)) == 0
    sec = json.loads(out.read_text())["models"]["tracker"]
    rows = {r["name"]: r for r in sec["rows"]}
    assert [r["name"] for r in sec["rows"] if r.get("anchor")] == ["OpenCV KCF"]      # --anchors: only those
    seq = data.load_sequences([root / "otb"], max_frames=48)[0]
    engines_ = load_engines(eng["tracker"], threads=1)
    by_hand = {}
    for name, prm in (("given", params), ("default", {})):
        boxes, _ = otb.run_sequence(SiameseTracker(engines_, prm), seq.frames, seq.gt[0])
        by_hand[name] = otb.evaluate(boxes, seq.gt)["auc"]
    assert rows["tracker-cpu-fp32"]["task"]["auc"] == pytest.approx(by_hand["given"], abs=1e-9)
    assert rows["pytorch"]["task"]["auc"] == pytest.approx(by_hand["given"], abs=1e-6)
    assert abs(by_hand["given"] - by_hand["default"]) > 0.01, by_hand
    bad = tmp_path / "bad.json"
    assert bench(root, [eng["tracker"]], "--tracker-params", '{"wide_redetectx": 1}', "--json", str(bad)) == 2
    assert bench(root, [eng["tracker"]], "--anchors", "CSRT", "TLD", "--json", str(bad)) == 2
    assert not bad.exists()
