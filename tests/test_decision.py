"""edge.classify.decision: temperature scaling and ECE, open-set rules, the alarm rules file, per-class
hysteresis, and calibrated scores in the events of a running pipeline."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edge.classify.decision import (DEFAULT_ALARMS, UNKNOWN, AlarmRule, Calibration, Decider, Hysteresis, OODRule,
                                    energy, expected_calibration_error, fit_temperature, load_alarm_rules, nll,
                                    rules_to_config, softmax)
from edge.data.actions import CLASSES


def _overconfident(rng, n=4000, k=6, sharpen=3.0):
    """Labels drawn from softmax(z) (so softmax(z) is calibrated by construction); the 'model' reports
    sharpen * z: over-confident by a known temperature."""
    z = rng.normal(0, 1.5, (n, k))
    p = softmax(z)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return sharpen * z, labels


def test_temperature_scaling_lowers_ece_on_a_fixed_synthetic_case():
    rng = np.random.default_rng(1234)              # fixed case: the acceptance numbers below are for it
    logits, labels = _overconfident(rng)
    t = fit_temperature(logits[:2000], labels[:2000])          # fit on one half, judge on the other
    assert t == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(softmax(logits[2000:]), labels[2000:])
    after = expected_calibration_error(softmax(logits[2000:], t), labels[2000:])
    assert before > 0.1 and after < 0.03 and after < before / 4
    # the fitted temperature is the NLL minimum: both neighbours are worse
    assert nll(logits[:2000], labels[:2000], t) <= min(nll(logits[:2000], labels[:2000], t * 1.05),
                                                       nll(logits[:2000], labels[:2000], t / 1.05))


def test_ece_hand_computed():
    # bin (0.6, 0.6667]: two samples at 0.65 / 0.62, one right -> |0.5 - 0.635|; bin (0.9333, 1]: one at 0.95,
    # right -> |1 - 0.95|; weights 2/3 and 1/3
    probs = np.array([[0.65, 0.35], [0.38, 0.62], [0.95, 0.05]])
    labels = np.array([0, 0, 0])
    want = 2 / 3 * abs(0.5 - 0.635) + 1 / 3 * abs(1 - 0.95)
    assert expected_calibration_error(probs, labels, bins=15) == pytest.approx(want)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0


def test_ood_rules_hand_computed(rng):
    z = rng.normal(0, 2, 5)
    t = 1.7
    p = np.exp(z / t) / np.exp(z / t).sum()
    assert OODRule("max_prob", 0.5).score(z, t) == pytest.approx(1 - p.max())
    assert energy(z, t) == pytest.approx(-t * np.log(np.exp(z / t).sum()))
    cent, scale = rng.normal(0, 1, (3, 5)), rng.uniform(0.5, 2, 5)
    rule = OODRule("centroid", 2.0, tuple(map(tuple, cent)), tuple(scale))
    assert rule.score(z) == pytest.approx(min(np.linalg.norm((z - c) / scale) for c in cent))
    assert rule.reject(cent[1]) is np.False_ or not rule.reject(cent[1])        # on a centroid: accepted
    assert rule.reject(cent[1] + 10 * scale)
    assert OODRule().reject(z) is False                                           # rule none: never rejects
    for bad in (dict(rule="mahalanobis", threshold=1.0), dict(rule="energy"), dict(rule="energy", threshold=np.nan),
                dict(rule="centroid", threshold=1.0, centroids=((0.0, 1.0),), scale=(1.0, -1.0))):
        with pytest.raises(ValueError):
            OODRule(**bad)


def test_calibration_round_trips_through_the_manifest_config(rng):
    cent = tuple(tuple(r) for r in rng.normal(0, 1, (7, 7)))
    cal = Calibration(2.5, OODRule("centroid", 3.0, cent, tuple(rng.uniform(0.5, 1, 7))))
    back = Calibration.from_config(json.loads(json.dumps(cal.to_config())))
    assert back == cal
    assert Calibration.from_config(None) == Calibration(1.0, OODRule("none"))
    for bad in ({"temperature": 0}, {"temperature": -1.0}, {"ood": {"rule": "energy", "threshold": 1, "x": 2}},
                {"ood": {"rule": "nope"}}):
        with pytest.raises(ValueError):
            Calibration.from_config(bad)


def test_open_set_rule_turns_a_confident_looking_window_into_unknown():
    """Energy rule: a window whose logits are all low (nothing the model knows) is 'unknown' even though its
    softmax has a clear winner; a window with one strong logit keeps its class."""
    dec = Decider(CLASSES, Calibration(1.0, OODRule("energy", -4.0)), load_alarm_rules(None, CLASSES))
    weak = np.full(len(CLASSES), -6.0)
    weak[CLASSES.index("fall")] = -2.5                  # softmax 0.85 for fall, energy about -2.6 > -4
    d = dec.decide(weak)
    assert d.rejected and d.label == UNKNOWN and d.index == CLASSES.index("fall") and d.score > 0.8
    strong = np.zeros(len(CLASSES))
    strong[CLASSES.index("fall")] = 8.0
    d = dec.decide(strong)
    assert not d.rejected and d.label == "fall" and d.score == pytest.approx(softmax(strong).max())
    h = dec.hysteresis()
    assert h.update(UNKNOWN, 0.99, 0) == [] and h.update(UNKNOWN, 0.99, 1) == []   # unknown never starts


# -- the alarm rules file ---------------------------------------------------------------------------------
def test_shipped_alarm_rules_are_valid_and_alarm_classes_need_a_higher_bar():
    rules = load_alarm_rules(None, CLASSES)
    assert set(rules) == set(CLASSES)
    alarms = [c for c, r in rules.items() if r.alarm]
    assert sorted(alarms) == ["fall", "put_back", "sit_down", "take"]
    assert not rules["none"].event and not rules["idle"].event and rules["pass_by"].event
    assert all(rules[c].start > rules["pass_by"].start for c in alarms)
    assert rules["fall"].start >= max(rules[c].start for c in alarms)
    raw = json.loads(DEFAULT_ALARMS.read_text())
    assert load_alarm_rules(rules_to_config(rules), CLASSES) == rules          # manifest form round-trips
    assert load_alarm_rules(raw, CLASSES) == rules


@pytest.mark.parametrize("patch, message", [
    ({"classes": {"dance": {"start": 0.5}}}, "unknown class 'dance'"),
    ({"classes": {"fall": {"start": 1.5}}}, "fall.start must be a probability"),
    ({"classes": {"fall": {"start": -0.1}}}, "fall.start must be a probability"),
    ({"classes": {"take": {"end": 0.9, "start": 0.8}}}, "end 0.9 must not exceed start 0.8"),
    ({"classes": {"take": {"enter": 0}}}, "take.enter must be an integer"),
    ({"classes": {"take": {"exit": 2.5}}}, "take.exit must be an integer"),
    ({"classes": {"take": {"alarm": "yes"}}}, "take.alarm must be true or false"),
    ({"classes": {"take": {"threshold": 0.5}}}, "unknown key(s) ['threshold']"),
    ({"default": {"start": 2}}, "default.start must be a probability"),
    ({"thresholds": {}}, "unknown key(s) ['thresholds']"),
])
def test_alarm_rules_file_errors_are_one_line(tmp_path, patch, message):
    raw = json.loads(DEFAULT_ALARMS.read_text())
    for key, val in patch.items():
        if key == "classes":
            for c, r in val.items():
                raw["classes"][c] = {**raw["classes"].get(c, {}), **r}
        else:
            raw[key] = {**raw.get(key, {}), **val} if isinstance(raw.get(key), dict) else val
    path = tmp_path / "alarms.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError) as e:
        load_alarm_rules(path, CLASSES)
    assert message in str(e.value) and "\n" not in str(e.value) and str(path) in str(e.value)


def test_alarm_rules_file_missing_or_not_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="alarm rules file not found"):
        load_alarm_rules(tmp_path / "nope.json", CLASSES)
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_alarm_rules(bad, CLASSES)


def test_per_class_hysteresis_hand_computed():
    rules = {"fall": AlarmRule(alarm=True, start=0.9, end=0.6, enter=2, exit=1),
             "pass_by": AlarmRule(start=0.6, end=0.4, enter=1, exit=2),
             "none": AlarmRule(event=False)}
    h = Hysteresis(rules=rules)
    seq = [("fall", 0.85), ("fall", 0.95), ("fall", 0.92), ("fall", 0.7), ("fall", 0.5),   # start at 2, end at 4
           ("none", 0.99), ("pass_by", 0.65), ("pass_by", 0.3), ("none", 0.9)]            # start 6, end 8
    out = []
    for i, (label, score) in enumerate(seq):
        out += [(e.type, e.label, e.frame, getattr(e, "alarm", None)) for e in h.update(label, score, i)]
    assert out == [("action_start", "fall", 2, True), ("action_end", "fall", 4, None),
                   ("action_start", "pass_by", 6, False), ("action_end", "pass_by", 8, None)]


# -- calibrated scores in a running pipeline --------------------------------------------------------------
def test_events_carry_calibrated_scores():
    """The pipeline's label_score is softmax(logits / T) of the manifest's temperature (independent:
    the direct window logits of the numpy engines), and events start by the per-class rules."""
    from edge.classify.runtime import ClassifierRuntime
    from edge.stream.pipeline import Pipeline, StreamInput
    from edge.stream.sources import open_source
    from fixtures.numpy_engines import LABELS, classifier_engines, read_clip
    from test_stream_pipeline import CLIP, Collect, direct_window_logits
    t = 3.0
    engines = classifier_engines(window=4, stride=3, calibration={"temperature": t, "ood": {"rule": "none"}},
                                 alarms={"default": {"start": 0.0, "end": 0.0, "enter": 1, "exit": 1}})
    sink = Collect()
    Pipeline([StreamInput(open_source(str(CLIP)))], classifier=ClassifierRuntime(engines), sinks=[sink],
             max_frames=40).run()
    ref = direct_window_logits(read_clip(CLIP)[:40], classifier_engines(window=4, stride=3), 4, 3)
    starts = [e for r in sink.results for e in r.events if e.type == "action_start"]
    for k, logits in ref.items():
        p = softmax(logits.astype(np.float64), t)
        r = sink.results[k]
        assert r.label == LABELS[int(p.argmax())]
        assert r.label_score == pytest.approx(float(p.max()), rel=1e-4, abs=1e-5)
        assert r.label_score < float(softmax(logits.astype(np.float64)).max())     # T > 1 softens
    assert starts and all(0 < e.score < 1 and e.alarm is False for e in starts)
    assert any(e.score == pytest.approx(sink.results[e.frame].label_score) for e in starts)
    # every frame's ``action`` is the event in progress, as its start/end events tell it (an end frame has none)
    active = None
    for r in sink.results:
        for e in r.events:
            if e.type == "action_start":
                active = e.label
            elif e.type == "action_end":
                active = None
        assert r.action == active, r.index
    assert any(r.action is None for r in sink.results) and any(r.action for r in sink.results)


def test_overlay_shows_the_event_in_progress_not_a_guess_below_its_rule():
    import numpy as np
    from edge.stream.pipeline import FrameResult
    from edge.stream.sinks import draw_overlay, overlay_label
    r = FrameResult(0, "s", 5, 0.0, np.zeros((48, 64, 3), np.uint8), label="sit_down", label_score=0.54)
    assert overlay_label(r) == "  no action (sit_down 0.54)"
    r.action = "sit_down"
    assert overlay_label(r) == "  SIT_DOWN 0.54"
    r.label, r.label_score = "idle", 0.7          # the event still holds (hysteresis) while a window disagrees
    assert overlay_label(r) == "  SIT_DOWN"
    assert overlay_label(FrameResult(0, "s", 5, 0.0, r.image)) == ""    # no classifier
    assert draw_overlay(r).shape == r.image.shape


def test_shipped_rules_apply_to_a_model_with_other_classes():
    """The shipped file on a model without some of its classes (strict=False, what export does); a user's
    file naming a class the model lacks stays an error."""
    rules = load_alarm_rules(None, ["idle", "fall", "wave"], strict=False)
    assert rules["fall"].alarm and rules["fall"].start == load_alarm_rules(None, CLASSES)["fall"].start
    assert not rules["idle"].event and rules["wave"] == AlarmRule()
    with pytest.raises(ValueError, match="unknown class 'none'"):
        load_alarm_rules(None, ["idle", "fall", "wave"])
