"""The paired-comparison statistics used to compare the classifier with its no-flow ablation
(``edge.models.train_classifier``), against SciPy's binomial test and hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from edge.models.train_classifier import mcnemar_exact, paired_bootstrap, wilson_interval


def test_mcnemar_exact_matches_scipy_binomial_test(rng):
    for _ in range(20):
        n = int(rng.integers(1, 200))
        first, second = rng.random(n) < rng.random(), rng.random(n) < rng.random()
        b, c, p = mcnemar_exact(first, second)
        assert b == int((first & ~second).sum()) and c == int((~first & second).sum())
        expected = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
        assert p == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_mcnemar_named_cases():
    yes, no = np.ones(5, bool), np.zeros(5, bool)
    assert mcnemar_exact(yes, yes) == (0, 0, 1.0)                    # no discordant clips
    assert mcnemar_exact(yes, no) == (5, 0, pytest.approx(2 / 32))  # 5 to 0: 2 * 0.5**5
    assert mcnemar_exact(np.array([1, 0], bool), np.array([0, 1], bool))[2] == 1.0


def test_wilson_interval_matches_scipy(rng):
    for _ in range(20):
        n = int(rng.integers(1, 500))
        k = int(rng.integers(0, n + 1))
        lo, hi = wilson_interval(k, n)
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert lo == pytest.approx(ci.low, abs=2e-4) and hi == pytest.approx(ci.high, abs=2e-4)
        assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_interval_all_or_nothing_is_exact():
    for n in (1, 7, 101, 480):      # 101/101 once gave hi = 0.9999999999999998 before clamping
        assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0
        assert wilson_interval(n, n)[0] < 1.0 and wilson_interval(0, n)[1] > 0.0


def test_paired_bootstrap_brackets_the_difference(rng):
    first = rng.random(300) < 0.6
    second = first | (rng.random(300) < 0.3)            # second is right wherever first is, and more
    lo, hi = paired_bootstrap(first, second, reps=2000, seed=int(rng.integers(1 << 30)))
    diff = second.mean() - first.mean()
    assert 0.0 <= lo <= diff <= hi
    assert paired_bootstrap(first, first, reps=200) == (0.0, 0.0)
