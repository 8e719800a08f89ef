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


def test_time_reversal_of_cached_take_clip_is_the_put_back_clip(rng):
    """reverse_time on the cache of frames 0..8 of a generated take clip = the clip played backwards (frames 9..1):
    per-frame tensors exactly, flow of steps 1.. close to DIS computed on the backwards frames (much closer than
    the forward flow), label put_back; fall is never flipped."""
    import numpy as np
    from edge.classify.preprocess import clip_inputs
    from edge.data.actions import CLASSES, make_clip
    from edge.models.train_classifier import reverse_time
    clip = make_clip(np.random.SeedSequence([11, int(rng.integers(1 << 30))]), "take", 10, 96)
    rgb_f, flow_f = clip_inputs(clip[:9], 96)               # forward: frames 1..8, flow F(i-1) -> F(i)
    rgb_b, flow_b = clip_inputs(clip[1:][::-1].copy(), 96)  # backwards: frames 8..1, flow F(i+1) -> F(i)
    q = lambda f: torch.from_numpy(np.round(np.clip(f, -1, 1) * 127).astype(np.int8))[None]  # noqa: E731
    take = CLASSES.index("take")
    batch = {"cam": torch.from_numpy(rgb_f)[None], "flow": q(flow_f), "label": torch.tensor([take])}
    out = reverse_time(batch, torch.tensor([True]))
    assert out["label"].tolist() == [CLASSES.index("put_back")]
    assert torch.equal(out["cam"][0], torch.from_numpy(rgb_b))
    got, ref, fwd = (out["flow"][0, 1:].float(), q(flow_b)[0, 1:].float(), q(flow_f)[0, 1:].float())
    moving = ref.abs().amax(1, keepdim=True).expand_as(ref) > 2
    assert moving.any()
    err, err_fwd = (got - ref)[moving].abs().mean(), (fwd - ref)[moving].abs().mean()
    print(f"backwards flow error {float(err):.2f}, forward flow error {float(err_fwd):.2f} (int8 steps)")
    assert err < 0.5 * err_fwd, (float(err), float(err_fwd))
    assert torch.equal(reverse_time(batch, torch.tensor([False]))["flow"], batch["flow"])
    fall = {**batch, "label": torch.tensor([CLASSES.index("fall")])}
    with pytest.raises(ValueError, match="without a reversed class"):
        reverse_time(fall, torch.tensor([True]))
