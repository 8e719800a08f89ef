"""The committed sample checkpoints (edge/weights/classifier.pt and classifier_noflow.pt) on fresh clips."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edge.classify.preprocess import clip_inputs
from edge.data.actions import CLASSES, make_clip
from edge.models.two_in_one import DEFAULT_WEIGHTS, build_classifier

NOFLOW = DEFAULT_WEIGHTS.with_name("classifier_noflow.pt")
PER_CLASS = 3


def test_committed_checkpoints_are_small_and_load_weights_only():
    for path, use_flow in ((DEFAULT_WEIGHTS, True), (NOFLOW, False)):
        assert path.stat().st_size < 10e6
        raw = torch.load(path, weights_only=True)
        meta = raw["meta"]
        assert meta["config"]["classes"] == list(CLASSES) and meta["config"]["use_flow"] is use_flow
        assert {"seed", "how_made", "accuracy"} <= set(meta)
        assert not any(k.startswith(("encoder.low", "encoder.mid", "encoder.high")) for k in raw["state_dict"])
    assert DEFAULT_WEIGHTS.with_suffix(".md").is_file()


@pytest.fixture(scope="module")
def fresh_batch():
    """PER_CLASS new clips per class from seeds outside the fixed splits (split ids 1..3)."""
    base = int(np.random.SeedSequence().entropy % (2**31))
    print(f"fresh clip seed base {base}")
    rgb, flow, labels = [], [], []
    for i in range(PER_CLASS * len(CLASSES)):
        label = CLASSES[i % len(CLASSES)]
        r, f = clip_inputs(make_clip(np.random.SeedSequence([7, base, i]), label, 9, 160), 160)
        rgb.append(r)
        flow.append(f)
        labels.append(i % len(CLASSES))
    return torch.from_numpy(np.stack(rgb)), torch.from_numpy(np.stack(flow)), torch.tensor(labels)


@torch.no_grad()
def predict(model, batch) -> torch.Tensor:
    rgb, flow, _ = batch
    return torch.cat([model(rgb[i:i + 6], flow[i:i + 6]).argmax(1) for i in range(0, len(rgb), 6)])


@pytest.mark.slow
def test_committed_classifier_beats_chance_on_fresh_clips(fresh_batch):
    model = build_classifier()                       # weights=None -> the committed checkpoint
    assert model.cfg.use_flow
    acc = float((predict(model, fresh_batch) == fresh_batch[2]).float().mean())
    print(f"two-in-one accuracy on {len(fresh_batch[2])} fresh clips: {acc:.3f} (chance {1 / len(CLASSES):.3f})")
    # chance is 1/7: >= 8 of 21 right has probability < 0.01 for a guesser (binomial tail 0.006); the
    # committed model is weak (test top-1 0.671, edge/weights/classifier.md), so this only rules out chance
    assert acc >= 8 / 21


def test_committed_checkpoints_carry_their_calibration():
    """Temperature and open-set rule fitted on validation data travel in the checkpoint and the manifest."""
    from edge.classify.decision import Calibration
    from edge.models.two_in_one import config
    for path, use_flow in ((DEFAULT_WEIGHTS, True), (NOFLOW, False)):
        model = build_classifier(path, use_flow=use_flow)
        cal = Calibration.from_config(config(model)["calibration"])
        assert cal.temperature != 1.0 and cal.ood.rule != "none"
        ev = model.meta["evaluation"]
        # fitted on the validation split by NLL (temperature scaling's objective; T = 1 is a candidate, so the fit
        # cannot raise it), and on the test split, never used to fit, it lowers the ECE. (The validation ECE of
        # the 2026-12-04 checkpoints goes up, 0.070 -> 0.096, while their validation NLL goes down:
        # edge/weights/classifier.md)
        assert ev["ece"]["val"]["nll_after"] <= ev["ece"]["val"]["nll_before"]
        assert ev["ece"]["test"]["after"] < ev["ece"]["test"]["before"]


def test_open_set_rule_rejects_a_clip_of_pure_background_noise(rng):
    """Gaussian-noise frames (nothing in them): the committed model's decision through the torch-free
    runtime is 'unknown' (open-set rule) or 'none' (the background class; what the committed model says, at
    calibrated 0.55-0.66), and a noise stream through edge run's protocol raises no alarm."""
    from edge.classify.decision import UNKNOWN
    from edge.classify.runtime import ClassifierRuntime
    from edge.models.registry import torch_engines
    rt = ClassifierRuntime(torch_engines("classifier", threads=1))
    frames = np.clip(rng.normal(128, 50, (17, 160, 160, 3)), 0, 255).astype(np.uint8)
    from edge.stream.sources import Frame
    sess, labels, events = rt.session(), [], []
    for k, f in enumerate(frames):
        frame = Frame(0, k, k / rt.sample_fps, f, 0.0)       # a camera at the model's clock: every frame used
        (u,) = rt.step([(sess, sess.prepare(frame), frame)])
        events += u.events
        if sess.last is not None and sess.last.frame == k:
            labels.append((sess.last.label, sess.last.rejected))
    assert labels and all(lab in (UNKNOWN, "none") for lab, _ in labels), labels
    assert not [e for e in events if getattr(e, "alarm", False)]
