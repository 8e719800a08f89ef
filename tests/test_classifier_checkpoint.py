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
    # chance is 1/6: >= 11 of 18 right has probability < 1e-4 for a guesser
    assert acc >= 0.6
