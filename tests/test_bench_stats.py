"""Latency statistics (trtexec's set) and output agreement on hand-computed cases."""

import numpy as np
import pytest

from edge.bench.numerics import compare, cosine_rows, summarize
from edge.bench.stats import latency_stats


def test_latency_stats_hand_computed(rng):
    ms = rng.permutation(np.arange(1, 11, dtype=float))       # 1..10 ms in random order
    st = latency_stats(ms / 1e3)
    assert st["runs"] == 10
    assert st["min_ms"] == pytest.approx(1) and st["max_ms"] == pytest.approx(10)
    assert st["mean_ms"] == pytest.approx(5.5) and st["median_ms"] == pytest.approx(5.5)
    # nearest rank: p90 -> 9th smallest, p95 and p99 -> 10th
    assert st["p90_ms"] == pytest.approx(9) and st["p95_ms"] == pytest.approx(10)
    assert st["p99_ms"] == pytest.approx(10)
    assert st["throughput"] == pytest.approx(10 / 0.055)      # runs / summed time without a wall time


def test_latency_stats_hundred_and_odd_counts(rng):
    st = latency_stats(rng.permutation(np.arange(1, 101)) / 1e3, wall_s=0.25)
    assert (st["p90_ms"], st["p95_ms"], st["p99_ms"]) == pytest.approx((90, 95, 99))
    assert st["median_ms"] == pytest.approx(50.5)
    assert st["throughput"] == pytest.approx(100 / 0.25)
    st = latency_stats([0.003, 0.001, 0.002])
    assert st["median_ms"] == pytest.approx(2) and st["p99_ms"] == pytest.approx(3)
    one = latency_stats([0.004])
    assert one["min_ms"] == one["p90_ms"] == one["p99_ms"] == pytest.approx(4)


def test_percentiles_match_trtexec_rule(rng):
    """trtexec: sorted[max(n - 1 - int((1 - p/100) * n), 0)] (nearest rank)."""
    for n in (1, 2, 7, 19, 64, 333):
        t = rng.exponential(2.0, n) + 0.1
        st = latency_stats(t / 1e3)
        s = np.sort(t)
        for p in (90, 95, 99):
            assert st[f"p{p}_ms"] == pytest.approx(s[max(n - 1 - int((1 - p / 100) * n), 0)]), (n, p)


@pytest.mark.parametrize("bad", [[], [0.1, float("nan")], [-0.001]])
def test_latency_stats_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        latency_stats(bad)


def test_compare_identical_scaled_and_flipped(rng):
    a = rng.normal(size=(5, 7)).astype(np.float32)
    ref = [{"logits": a, "h": a[:, :3]}]
    same = compare(ref, [{"logits": a.copy(), "h": a[:, :3].copy()}])["logits"]
    assert same["max_abs_err"] == 0 and same["min_cosine"] == pytest.approx(1) and same["top1_agreement"] == 1

    scaled = compare(ref, [{"logits": 2 * a, "h": a[:, :3]}])["logits"]
    assert scaled["max_abs_err"] == pytest.approx(np.abs(a).max(), rel=1e-6)
    assert scaled["mean_abs_err"] == pytest.approx(np.abs(a).mean(), rel=1e-6)
    assert scaled["min_cosine"] == pytest.approx(1) and scaled["top1_agreement"] == 1

    flipped = a.copy()
    flipped[:2] = -flipped[:2]                   # rows 0,1 point the other way: cosine -1, argmax moves
    r = compare(ref, [{"logits": flipped, "h": a[:, :3]}])
    assert r["logits"]["min_cosine"] == pytest.approx(-1)
    expect = np.mean(np.argmax(a, 1) == np.argmax(flipped, 1))
    assert r["logits"]["top1_agreement"] == pytest.approx(expect) and expect <= 0.6
    assert r["h"]["top1_agreement"] is None      # not a decision output
    s = summarize({"step": r})
    assert s["min_cosine"] == pytest.approx(-1) and s["top1_agreement"] == pytest.approx(expect)


def test_compare_tracker_scores_top1_over_candidates(rng):
    scores = [rng.normal(size=256).astype(np.float32) for _ in range(4)]
    moved = [s.copy() for s in scores]
    moved[2][np.argmin(moved[2])] = moved[2].max() + 1     # a different best candidate in 1 of 4 frames
    r = compare([{"scores": s} for s in scores], [{"scores": s} for s in moved])["scores"]
    assert r["top1_agreement"] == pytest.approx(0.75) and r["samples"] == 4


def test_cosine_zero_rows_and_shape_errors():
    z = np.zeros((2, 3))
    assert np.allclose(cosine_rows(z, z), 1)
    assert cosine_rows(z, np.ones((2, 3))).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="shape"):
        compare([{"x": np.zeros(3)}], [{"x": np.zeros(4)}])
    with pytest.raises(ValueError, match="missing"):
        compare([{"x": np.zeros(3)}], [{"y": np.zeros(3)}])
    assert compare([], []) == {}


class Counter:
    """A minimal Engine: counts calls, remembers which input it saw, optionally fails on call ``fail_at``."""

    def __init__(self, fail_at=None):
        self.seen, self.fail_at = [], fail_at

    def run(self, feeds):
        if self.fail_at is not None and len(self.seen) >= self.fail_at:
            raise RuntimeError("engine broke")
        self.seen.append(int(feeds["i"]))
        return {}


def test_round_robin_same_inputs_and_failures():
    from edge.bench.timing import time_round_robin
    feeds = [{"i": np.array(k)} for k in range(3)]
    a, b, broken = Counter(), Counter(), Counter(fail_at=4)
    res = time_round_robin([a, b, broken], feeds, warmup_runs=2, warmup_s=0.0, min_runs=7, min_s=0.0,
                           settle=0, block=1)
    assert res[0]["runs"] == res[1]["runs"] == 7 and len(res[0]["times_ms"]) == 7
    assert a.seen == b.seen == [0, 1] + [k % 3 for k in range(7)]      # identical inputs, same order
    assert isinstance(res[2], RuntimeError) and len(broken.seen) == 4   # 2 warm-up + 2 timed, then out
    with pytest.raises(ValueError):
        time_round_robin([a], [])


def test_round_robin_blocks_settle_untimed():
    """Default turns: one untimed settle call on the turn's first input, then two timed calls."""
    from edge.bench.timing import time_round_robin
    feeds = [{"i": np.array(k)} for k in range(3)]
    a, b = Counter(), Counter()
    res = time_round_robin([a, b], feeds, warmup_runs=1, warmup_s=0.0, min_runs=5, min_s=0.0)
    # warm-up 0; turns (settle i, timed i, i+1) for i = 0, 2, 4; the last turn stops after its 1st timed call
    want = [0] + [0, 0, 1] + [2, 2, 0] + [1, 1]
    assert a.seen == b.seen == want and res[0]["runs"] == res[1]["runs"] == 5


def test_round_robin_gpu_phases():
    """An engine reporting per-phase times (host-to-device, compute, device-to-host) gets stats for each."""
    from edge.bench.timing import time_round_robin

    class Phased(Counter):
        def run(self, feeds):
            super().run(feeds)
            n = len(self.seen)
            self.last_timings = {"h2d": 0.1 * n, "compute": 2.0, "d2h": 0.05}
            return {}
    e = Phased()
    st = time_round_robin([e], [{"i": np.array(0)}], warmup_runs=1, warmup_s=0.0, min_runs=4, min_s=0.0,
                          settle=0, block=1)[0]
    assert st["phases"]["compute"]["median_ms"] == pytest.approx(2.0)
    assert st["phases"]["h2d"]["max_ms"] == pytest.approx(0.5)          # timed calls are calls 2..5
    assert st["phases"]["h2d"]["min_ms"] == pytest.approx(0.2) and st["phases"]["d2h"]["runs"] == 4


def test_candidate_agreement_hand_computed():
    from edge.bench.numerics import candidate_agreement
    rois = np.array([[0, 0, 0, 10, 10], [0, 1, 0, 11, 10], [0, 50, 50, 60, 60]], np.float32)
    feeds = [{"rois": rois}, {"rois": rois}, {"rois": rois}]
    ref = [{"scores": np.array([3.0, 2.0, 1.0])}] * 3
    out = [{"scores": np.array([3.0, 2.0, 1.0])},      # same pick: IoU 1
           {"scores": np.array([2.0, 3.0, 1.0])},      # neighbour: IoU 90 / 110
           {"scores": np.array([1.0, 2.0, 3.0])}]      # far away: IoU 0
    r = candidate_agreement(feeds, ref, out)
    assert r["top1_box_iou_mean"] == pytest.approx((1 + 90 / 110 + 0) / 3)
    assert r["top1_box_agreement"] == pytest.approx(2 / 3)
    assert candidate_agreement([{"x": rois}], ref[:1], out[:1]) is None
