"""The typed contract (``edge.contract``): real manifests and fingerprints parse, the last release's still
do, and each malformed part is one line that names the fix; one rule says which model a manifest is."""
from __future__ import annotations

import copy
import json
import shutil

import pytest

from edge.contract import (ClassifierConfig, ContractError, Fingerprint, Manifest, TrackerConfig,
                           model_kind)
from edge.errors import UserError
from edge.events import ActionStart, StreamSummary, TrackInit, from_record, to_record
from edge.runtime import load_engines
from edge.runtime.fingerprint import EngineMismatch
from fixtures.engines import build_standins


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    return build_standins(tmp_path_factory.mktemp("contract"))


def _manifest(d) -> dict:
    return json.loads((d / "model.json").read_text())


def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg and isinstance(e.value, UserError)
    return msg


def test_real_manifests_parse_to_typed_configs(standins):
    t = Manifest.from_dict(_manifest(standins["tracker"]))
    c = Manifest.from_dict(_manifest(standins["classifier"]))
    assert t.kind == "tracker" and isinstance(t.config, TrackerConfig) and t.task == "tracking"
    assert t.config.crop_size == 64 and t.config.search.inputs == ("image", "rois", "template")
    assert t.config.search_embeddings is None                 # this stand-in's search returns scores only
    assert c.kind == "classifier" and isinstance(c.config, ClassifierConfig)
    assert c.config.window == 8 and c.config.stride == 4 and c.config.input_size == 160   # stride = T // 2
    assert c.config.classes[0] == "none" and c.networks["step"].output("logits").dim(-1) == len(c.config.classes)


def test_last_release_manifest_without_io_names_still_parses(standins):
    """Tracker exports before the config named its networks' I/O: the defaults that exist are used."""
    d = _manifest(standins["tracker"])
    d["config"].pop("networks")
    m = Manifest.from_dict(d)
    assert m.config.template.inputs == ("image", "box") and m.config.search.outputs == ("scores",)


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d.pop("networks"), "lists no networks"),
    (lambda d: d["networks"].pop("search"), "needs network(s) ['search']"),
    (lambda d: d.update(format="edge-export/9"), "expected 'edge-export/1'"),
    (lambda d: d["config"].update(crop_size=-3), "crop_size must be a positive int"),
    (lambda d: d["config"]["networks"]["search"].update(inputs=["image", "boxes", "template"]),
     "has no tensor(s) ['boxes']"),
])
def test_malformed_tracker_manifest_is_one_line(standins, edit, needle):
    d = copy.deepcopy(_manifest(standins["tracker"]))
    edit(d)
    with pytest.raises(ContractError) as e:
        Manifest.from_dict(d, "x/model.json")
    msg = _one_line(e)
    assert needle in msg and msg.startswith("x/model.json")


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["config"].update(classes=["a", "b"]), "2 classes but the step gives 7 logits"),
    (lambda d: d["config"].update(clip_len=0), "clip_len must be an int >= 1"),
    (lambda d: d["networks"]["step"]["outputs"].pop(), "must output h_next, c_next and logits"),
])
def test_malformed_classifier_manifest_is_one_line(standins, edit, needle):
    d = copy.deepcopy(_manifest(standins["classifier"]))
    edit(d)
    with pytest.raises(ContractError) as e:
        Manifest.from_dict(d)
    assert needle in _one_line(e) and "re-export" in str(e.value)


def test_one_rule_says_which_model():
    assert model_kind(["encoder", "step"]) == "classifier"
    assert model_kind(["template", "search"], model="my_pkg.tracker") == "tracker"
    assert model_kind(["a", "b"], task="tracking") == "tracker"
    assert model_kind(["template", "search"], model="classifier") == "classifier"     # the name wins
    with pytest.raises(ContractError, match="cannot tell which model"):
        model_kind(["head"])


def _edit_fp(src, tmp_path, fn):
    d = tmp_path / src.name
    shutil.copytree(src, d)
    fp = json.loads((d / "fingerprint.json").read_text())
    fn(fp)
    (d / "fingerprint.json").write_text(json.dumps(fp))
    return d


@pytest.mark.parametrize("edit,needle", [
    (lambda fp: next(iter(fp["networks"].values())).update(kind=["onnxruntime", "numba"]), "has kind"),
    (lambda fp: next(iter(fp["networks"].values())).update(files={}), "lists no files"),
    (lambda fp: fp.pop("backend"), "has no backend"),
    (lambda fp: fp.update(networks={}), "lists no networks"),
])
def test_hand_edited_fingerprint_is_one_line(standins, tmp_path, edit, needle):
    d = _edit_fp(standins["classifier"], tmp_path, edit)
    with pytest.raises(EngineMismatch) as e:
        load_engines(d)
    msg = _one_line(e)
    assert needle in msg and "rebuild with `edge build" in msg


def test_fingerprint_parses_and_reports_network_precisions(standins):
    d = json.loads((standins["tracker"] / "fingerprint.json").read_text())
    fp = Fingerprint.from_dict(d, "fp", "rebuild")
    assert fp.backend == "onnxruntime" and fp.network_precisions == "fp32" and fp.session.spin == "during_run"
    d["session"] = {"allow_spinning": True, "intra_op_num_threads": 2}        # the last release's bool
    assert Fingerprint.from_dict(d, "fp", "rebuild").session.spin == "always"


def test_engines_of_the_other_model_are_refused(standins):
    with pytest.raises(EngineMismatch) as e:
        load_engines(standins["classifier"], kind="tracker")
    assert "holds classifier engines (encoder, step), not tracker engines" in _one_line(e)


def test_events_round_trip_through_json():
    common = {"stream": 1, "source": "cam", "frame": 7, "time": 0.25, "wall": 1.0, "box": [1.0, 2.0, 3.0, 4.0],
              "score": 0.5, "lost": False, "label": "idle", "label_score": 0.9}
    for ev in (ActionStart(9, "fall", 0.97), TrackInit(3, (1.0, 2.0, 3.0, 4.0))):
        rec = json.loads(json.dumps(to_record(common, ev)))
        assert rec["type"] == ev.type and rec["frame"] == ev.frame and from_record(rec) == ev
    assert to_record(common)["type"] == "frame" and from_record(to_record(common)) is None
    s = StreamSummary("cam", True, 10, 9, 1, 0, 0, 30.0, 5.0, 9.0, {"action_start": 2})
    rec = s.to_record(0, 2.0)
    assert rec["type"] == "summary" and rec["source"] == "cam" and rec["drops"] == 1 and "events" not in rec


def test_manifest_sample_fps_is_read_and_checked(standins):
    d = copy.deepcopy(_manifest(standins["classifier"]))
    d["config"]["sample_fps"] = 12.5
    assert Manifest.from_dict(d).config.sample_fps == 12.5
    d["config"].pop("sample_fps")
    assert Manifest.from_dict(d).config.sample_fps is None           # older exports: every frame
    for bad in (0, -5, "5", True, 1e6):
        d["config"]["sample_fps"] = bad
        with pytest.raises(ContractError, match="sample_fps must be"):
            Manifest.from_dict(d)
