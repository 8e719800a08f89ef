"""Generated tracking sequences (exact ground truth, deterministic) and the OTB / GOT-10k readers."""
from __future__ import annotations

import numpy as np
import pytest

from edge.data import sequences
from edge.data.tracking_gen import GeneratedSequence, generate_dataset, render_sequence, write_sequence
from edge.eval import otb


@pytest.fixture(scope="module")
def short_seq():
    return render_sequence(3, length=12)


def test_generator_is_deterministic_per_seed(short_seq):
    again = render_sequence(3, length=12)
    assert all(np.array_equal(a, b) for a, b in zip(short_seq.frames, again.frames))
    np.testing.assert_array_equal(short_seq.boxes, again.boxes)
    other = render_sequence(4, length=12)
    assert not np.array_equal(short_seq.boxes, other.boxes)


def test_generated_ground_truth_is_exact(rng):
    """The textured target is drawn exactly inside its box: a frame with the target differs from the same
    background without it only inside the box (plus the 1-px antialiased edge)."""
    seed = int(rng.integers(0, 10_000))
    seq = render_sequence(seed, length=3)
    h, w = seq.frames[0].shape[:2]
    assert seq.frames[0].dtype == np.uint8 and seq.frames[0].shape == (h, w, 3)
    b = seq.boxes
    assert (b[:, 2:] > 8).all() and (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
    assert (b[:, 0] + b[:, 2] <= w).all() and (b[:, 1] + b[:, 3] <= h).all()
    # the drawing primitive: a flat patch drawn at a sub-pixel box covers each pixel by exactly its area
    # inside the box (straight edges), so the box is the patch's exact bounding box
    from edge.data.tracking_gen import _paste
    for x, y, bw, bh in b:
        canvas = np.zeros((h, w, 3), np.float32)
        _paste(canvas, np.full((40, 40, 3), 255, np.uint8), (x, y, bw, bh))
        a = canvas[..., 0] / 255
        row, col = a[int(y + bh / 2)], a[:, int(x + bw / 2)]   # through the middle of the patch
        assert row.sum() == pytest.approx(bw, abs=1e-3) and col.sum() == pytest.approx(bh, abs=1e-3)
        assert row[int(x)] == pytest.approx(int(x) + 1 - x, abs=1e-4)           # left edge pixel coverage
        assert row[int(x + bw)] == pytest.approx(x + bw - int(x + bw), abs=1e-4)  # right edge pixel coverage
        assert col[int(y)] == pytest.approx(int(y) + 1 - y, abs=1e-4)
        ys, xs = np.nonzero(a > 0)
        assert xs.min() >= int(x) and xs.max() <= int(x + bw) and ys.min() >= int(y) and ys.max() <= int(y + bh)


@pytest.mark.parametrize("fmt", ["otb", "got10k"])
def test_readers_round_trip_generator_output(tmp_path, short_seq, fmt):
    folder = write_sequence(short_seq, tmp_path, fmt)
    seq = sequences.read_sequence(folder)
    assert seq.format == fmt and seq.name == short_seq.name and len(seq) == 12
    names = [p.name for p in seq.frames]
    assert names[0] == ("0001.jpg" if fmt == "otb" else "00000001.jpg") and names == sorted(names)
    np.testing.assert_allclose(seq.boxes, short_seq.boxes, atol=5e-4)     # written with 3 decimals
    img = next(seq.images())
    assert img.shape == short_seq.frames[0].shape
    assert np.abs(img.astype(int) - short_seq.frames[0]).mean() < 4       # JPEG q92
    assert otb.evaluate(seq.boxes, short_seq.boxes)["auc"] == pytest.approx(20 / 21)
    found = sequences.find_sequences(tmp_path)
    assert [s.name for s in found] == [short_seq.name]


def test_generate_dataset_and_find(tmp_path):
    paths = generate_dataset(tmp_path / "set", count=2, length=4, seed=11)
    assert [p.name for p in paths] == ["gen0011", "gen0012"]
    seqs = sequences.find_sequences(tmp_path / "set")
    assert [s.name for s in seqs] == ["gen0011", "gen0012"] and all(len(s) == 4 for s in seqs)
    assert sequences.find_sequences(paths[0])[0].name == "gen0011"    # a sequence folder itself


def _otb(tmp_path, gt_text: str | None, frames: int = 3):
    folder = tmp_path / "seq"
    (folder / "img").mkdir(parents=True)
    import cv2
    for i in range(1, frames + 1):
        cv2.imwrite(str(folder / "img" / f"{i:04d}.jpg"), np.zeros((20, 20, 3), np.uint8))
    if gt_text is not None:
        (folder / "groundtruth_rect.txt").write_text(gt_text)
    return folder


def test_otb_separators_tab_space_comma(tmp_path):
    folder = _otb(tmp_path, "1,2,3,4\n5\t6\t7\t8\n9 10 11 12\n")
    np.testing.assert_array_equal(sequences.read_sequence(folder).boxes,
                                  [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])


@pytest.mark.parametrize("gt, err, msg", [
    (None, FileNotFoundError, "ground truth not found"),
    ("", ValueError, "empty ground truth"),
    ("1,2,3,4\n1,2,x,4\n1,2,3,4\n", ValueError, ":2: not numbers"),
    ("1,2,3,4\n1,2,3\n1,2,3,4\n", ValueError, ":2: expected 4 values"),
    ("1,2,3,4\n1,2,3,4\n", ValueError, "2 ground-truth boxes for 3 frames"),
    ("1,2,0,4\n1,2,3,4\n1,2,3,4\n", ValueError, "no area"),
])
def test_bad_otb_groundtruth_one_line_error(tmp_path, gt, err, msg):
    folder = _otb(tmp_path, gt)
    with pytest.raises(err, match=msg) as e:
        sequences.read_sequence(folder)
    assert "\n" not in str(e.value)


def test_missing_folders_and_images(tmp_path):
    with pytest.raises(FileNotFoundError, match="sequence folder not found"):
        sequences.read_sequence(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not an OTB"):
        sequences.read_sequence(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no OTB or GOT-10k sequence folders"):
        sequences.find_sequences(tmp_path / "empty")
    noimg = tmp_path / "noimg"
    noimg.mkdir()
    (noimg / "groundtruth.txt").write_text("1,2,3,4\n")
    with pytest.raises(FileNotFoundError, match="no images"):
        sequences.read_sequence(noimg)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot read image"):
        sequences.read_image(bad)


def test_got10k_test_split_has_only_first_box(tmp_path, short_seq):
    one = GeneratedSequence("g1", short_seq.frames[:3], short_seq.boxes[:3])
    folder = write_sequence(one, tmp_path, "got10k")
    (folder / "groundtruth.txt").write_text("10,20,30,40\n")
    seq = sequences.read_sequence(folder)
    assert len(seq) == 3 and seq.boxes.shape == (1, 4)
    np.testing.assert_array_equal(seq.init_box, [10, 20, 30, 40])
