"""Anchor rows: OpenCV CSRT/KCF/MIL through the same OTB metric code; skipped with the reason when the cv2
at hand lacks them (CSRT/KCF live in opencv-contrib-python-headless)."""
from __future__ import annotations

import numpy as np
import pytest

from edge.bench import anchors
from edge.bench.tasks import TrackSequence
from edge.data.tracking_gen import render_sequence
from edge.eval import otb


def _contrib() -> bool:
    import cv2
    return hasattr(cv2, "TrackerCSRT_create") or hasattr(cv2, "TrackerCSRT")


@pytest.fixture(scope="module")
def seqs():
    out = []
    for seed in (3, 8):
        s = render_sequence(seed, length=12)
        out.append(TrackSequence(s.name, s.frames, s.boxes, tuple(s.events["attributes"])))
    return out


def test_anchor_rows_appear_when_contrib_importable(seqs):
    rows, notes = anchors.anchor_rows(seqs, log=lambda m: None)
    names = [r["name"] for r in rows]
    assert "OpenCV MIL" in names                              # plain and contrib wheels both have MIL
    if _contrib():
        assert names == ["OpenCV CSRT", "OpenCV KCF", "OpenCV MIL"] and not notes
    else:
        assert [n for n in notes if "CSRT" in n and "opencv-contrib-python-headless" in n]
    for r in rows:
        assert r["anchor"] and r["label"] == anchors.LABEL and r["verdict"]["status"] == "anchor"
        t = r["task"]
        assert 0 <= t["auc"] <= 1 and set(t["sequences"]) == {s.name for s in seqs}
        assert set(t["attributes"]) == {a for s in seqs for a in s.attributes}
        assert r["speed"]["end_to_end"]["fps"] > 0


@pytest.mark.skipif(not _contrib(), reason="KCF needs opencv-contrib-python-headless")
def test_anchor_metrics_are_the_otb_code_on_its_boxes(seqs):
    """The row's AUC is edge.eval.otb on the boxes OpenCV's KCF gives, run here independently (KCF is
    deterministic; MIL is not)."""
    import cv2
    row = anchors.run_anchor("KCF", seqs[:1], log=lambda m: None)
    s = seqs[0]
    t = cv2.TrackerKCF_create() if hasattr(cv2, "TrackerKCF_create") else cv2.TrackerKCF.create()
    t.init(s.frames[0], tuple(int(round(v)) for v in s.gt[0]))
    boxes = [s.gt[0]]
    for f in s.frames[1:]:
        ok, b = t.update(f)
        boxes.append(np.asarray(b, float) if ok else boxes[-1])
    assert row["task"]["auc"] == pytest.approx(otb.evaluate(np.array(boxes), s.gt)["auc"], abs=1e-9)


def test_missing_tracker_is_skipped_with_the_reason(monkeypatch, seqs):
    import cv2
    for name in ("TrackerKCF_create", "TrackerKCF"):
        monkeypatch.delattr(cv2, name, raising=False)
    monkeypatch.delattr(cv2, "legacy", raising=False)
    rows, notes = anchors.anchor_rows(seqs[:1], kinds=("KCF",), log=lambda m: None)
    assert rows == [] and len(notes) == 1 and "KCF" in notes[0] and "never both" in notes[0]
    with pytest.raises(ValueError, match="unknown anchor"):
        anchors.factory("TLD")
