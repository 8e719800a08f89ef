"""The hard generated benchmark: OTB-style attribute tags per sequence, written into the OTB folder and read
back; per-attribute AUC; train and test never share a background video or a target texture."""
from __future__ import annotations

import numpy as np
import pytest

from edge.data import sequences, splits
from edge.data.tracking_gen import (ATTRIBUTES, DEFAULT_COUNT, render_sequence, sequence_attributes,
                                    write_sequence)
from edge.eval import otb


def test_default_set_tags_every_attribute_often():
    tags = [sequence_attributes(s) for s in range(DEFAULT_COUNT)]
    assert DEFAULT_COUNT >= 24 and all(len(t) == 3 for t in tags)
    for code in ATTRIBUTES:
        assert sum(code in t for t in tags) >= 6, code


@pytest.mark.parametrize("fmt", ["otb", "got10k"])
def test_attribute_tags_round_trip(tmp_path, rng, fmt):
    seed = int(rng.integers(0, 10_000))
    seq = render_sequence(seed, length=4)
    assert tuple(seq.events["attributes"]) == sequence_attributes(seed)
    back = sequences.read_sequence(write_sequence(seq, tmp_path, fmt))
    assert back.attributes == sequence_attributes(seed)
    # an OTB folder of someone else's: attributes.txt alone (whitespace separated), or none at all
    (tmp_path / seq.name / "attributes.txt").write_text("SV OCC\n")
    assert sequences.read_sequence(tmp_path / seq.name).attributes == ("SV", "OCC")
    (tmp_path / seq.name / "attributes.txt").unlink()
    (tmp_path / seq.name / "meta.json").unlink()
    assert sequences.read_sequence(tmp_path / seq.name).attributes == ()


def test_attributes_change_the_sequence():
    """SV ramps the size 2-3x; LR keeps the target small; CS moves the whole frame."""
    sv = render_sequence(5, length=60, attributes=("SV",))
    h = sv.boxes[:, 3]
    assert h.max() / h.min() >= 1.8
    lr = render_sequence(5, length=20, attributes=("LR",))
    assert lr.boxes[:, 3].max() <= 30
    plain = render_sequence(5, length=20, attributes=())
    cs = render_sequence(5, length=20, attributes=("CS",))
    jitter = lambda b: np.abs(np.diff(b[:, :2], 2, axis=0)).mean()  # noqa: E731
    assert jitter(cs.boxes) > 2 * jitter(plain.boxes)
    with pytest.raises(ValueError, match="unknown sequence attributes"):
        render_sequence(5, length=3, attributes=("XYZ",))


def test_per_attribute_auc_averages_tagged_sequences(rng):
    gt = rng.uniform(20, 60, (30, 4))
    evals = {f"s{i}": otb.evaluate(gt + rng.normal(0, 4 * i, gt.shape), gt) for i in range(3)}
    tags = {"s0": ("SV",), "s1": ("SV", "OCC"), "s2": ()}
    by = otb.summarize_by_attribute(evals, tags)
    assert set(by) == {"SV", "OCC"} and by["SV"]["sequences"] == 2
    want = np.mean([evals["s0"]["success_curve"], evals["s1"]["success_curve"]], 0).mean()
    assert by["SV"]["auc"] == pytest.approx(want)
    assert by["OCC"]["auc"] == pytest.approx(evals["s1"]["auc"])
    assert otb.summarize_by_attribute(evals, {}) == {}


def test_train_and_test_never_share_video_or_texture(rng):
    splits.check_disjoint()
    assert not set(splits.VIDEOS["train"]) & set(splits.VIDEOS["test"])
    with pytest.raises(ValueError, match="share chelsea"):
        splits.check_disjoint(train_photos=splits.PHOTOS["train"] + ("cat",))   # cat is chelsea
    with pytest.raises(ValueError, match="share bikes.mp4"):
        splits.check_disjoint(train_videos=("bikes.mp4",))
    for split in ("train", "test"):
        seq = render_sequence(int(rng.integers(0, 10_000)), length=2, split=split)
        assert seq.events["background"] in splits.VIDEOS[split]
        assert seq.events["texture"] in splits.PHOTOS[split]
