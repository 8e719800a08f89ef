"""Short-window helpers of ``edge.models.train_classifier`` (``--window-lengths`` / ``--compare-windows``),
checked against explicit per-clip indexing."""
import pytest
import torch

from edge.models.train_classifier import last_frames, parse_lengths


def _cache_like(rng, n=5, t=8):
    g = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    return {"cam": torch.randn(n, t, 1, 5, 5, generator=g), "low": torch.randn(n, t, 3, 4, 4, generator=g).half(),
            "flow": torch.randn(n, t, 2, 4, 4, generator=g).half(), "label": torch.randint(6, (n,), generator=g)}


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_last_frames_keeps_exactly_the_last_k_steps(rng, k):
    data = _cache_like(rng)
    sub = last_frames(data, k)
    assert torch.equal(sub["label"], data["label"])
    for key in ("cam", "low", "flow"):
        assert sub[key].shape[1] == k
        for i in range(len(data["label"])):
            for j in range(k):  # step j of the window is frame 8 - k + j of the clip
                assert torch.equal(sub[key][i, j], data[key][i, 8 - k + j])


@pytest.mark.parametrize("k", [0, 9, -1])
def test_last_frames_rejects_impossible_windows(rng, k):
    with pytest.raises(ValueError, match="window length"):
        last_frames(_cache_like(rng), k)


def test_parse_lengths():
    assert parse_lengths("1,2,4,8") == (1, 2, 4, 8)
    assert parse_lengths(" 8 , 4 ") == (8, 4)
    for bad in ("", "a,2", "0,4", "-1"):
        with pytest.raises(ValueError, match="window lengths"):
            parse_lengths(bad)
