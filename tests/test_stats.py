"""Paired tests, intervals and corrections: hand-computed cases, scipy agreement, simulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from movierec import stats as S


# --- hand-computed -------------------------------------------------------------------------------
def test_paired_t_by_hand():
    # d = 1, 2, 3, 4: mean 2.5, sd sqrt(5/3) = 1.29099, t = 2.5 / (1.29099 / 2) = 3.87298, df 3;
    # two-sided p of t = 3.873 with 3 df (tables): 0.03047.
    assert S.paired_test([1, 2, 3, 4], [0, 0, 0, 0], "t") == pytest.approx(0.030466, abs=1e-5)


def test_wilcoxon_by_hand():
    # d = 1, -2, 3, 4, 5, 6: ranks 1..6, W- = 2. Subsets of {1..6} with rank sum <= 2: {}, {1},
    # {2}, so the exact two-sided p = 2 * 3 / 2^6 = 0.09375.
    assert S.paired_test([1, -2, 3, 4, 5, 6], [0] * 6, "wilcoxon") == pytest.approx(0.09375)


def test_permutation_by_hand():
    # All 2^6 sign flips: only all-plus and all-minus reach |mean| >= 3.5, so p = 2 / 64.
    assert S.paired_test(np.arange(1, 7), np.zeros(6), "permutation") == pytest.approx(2 / 64)
    # d = 1, -2, 3, 4, 5, 6 (sum 17 of 21): flipping a set of absolute sum s gives |21 - 2s|,
    # >= 17 for s in {0, 1, 2} and their complements: 6 / 64.
    assert S.paired_test([1, -2, 3, 4, 5, 6], [0] * 6, "permutation") == pytest.approx(6 / 64)


def test_no_difference_and_constant_difference():
    assert S.paired_test([1, 2, 3], [1, 2, 3], "t") == 1.0
    assert S.paired_test([1] * 8, [1] * 8, "wilcoxon") == 1.0
    assert S.paired_test([2, 3, 4], [1, 2, 3], "t") == 0.0


def test_cohens_dz_by_hand():
    assert S.cohens_dz([1, 2, 3, 4]) == pytest.approx(2.5 / math.sqrt(5 / 3))
    assert S.cohens_dz([0, 0, 0]) == 0.0
    assert math.isnan(S.cohens_dz([1.0]))


def test_holm_and_bonferroni_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max
    # 0.02, 0.03, 0.06, 0.06; back in input order:
    np.testing.assert_allclose(S.holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(S.bonferroni(p), [0.04, 0.16, 0.12, 0.02])
    np.testing.assert_allclose(S.correct(p, "none"), p)
    np.testing.assert_allclose(S.holm([0.5, 0.9]), [1.0, 1.0])
    out = S.correct([0.01, float("nan"), 0.02], "holm")
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="unknown correction"):
        S.correct(p, "fdr")


def test_t_interval_by_hand():
    # 1..5: mean 3, s = sqrt(2.5), t(0.975, 4) = 2.776445 (tables): half = 2.776445 * 0.707107.
    mean, low, high = S.t_interval([1, 2, 3, 4, 5])
    assert mean == 3.0
    assert high - mean == pytest.approx(2.776445 * math.sqrt(2.5 / 5), rel=1e-6)
    assert mean - low == pytest.approx(high - mean)
    m1, l1, h1 = S.t_interval([0.4])
    assert m1 == 0.4 and math.isnan(l1) and math.isnan(h1)


def test_bootstrap_by_hand():
    # diffs 0 and 1: a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4, so the
    # 2.5 % and 97.5 % quantiles are 0 and 1.
    assert S.bootstrap_ci([0, 1], n_resamples=4000) == (0.0, 1.0)
    # Resampled within groups, each group constant: every resample's mean is 0.5.
    assert S.bootstrap_ci([0, 0, 1, 1], groups=["a", "a", "b", "b"]) == (0.5, 0.5)
    assert S.bootstrap_ci([0.3] * 10) == pytest.approx((0.3, 0.3))
    # seeded: the same data give the same interval
    d = np.random.default_rng(1).normal(size=50)
    assert S.bootstrap_ci(d, rng=3) == S.bootstrap_ci(d, rng=3)


def test_too_few_pairs():
    assert S.min_pairs("t") == 2 and S.min_pairs("wilcoxon") == 6
    assert S.min_pairs("permutation", alpha=0.01) == 8  # 2 / 2^8 < 0.01 <= 2 / 2^7
    with pytest.raises(S.TooFewError, match="at least 2"):
        S.paired_test([1.0], [0.0], "t")
    with pytest.raises(S.TooFewError, match="at least 6 paired users"):
        S.paired_test([1, 2, 3, 4, 5], [0] * 5, "wilcoxon")
    with pytest.raises(S.TooFewError):
        S.bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="unknown test"):
        S.paired_test([1, 2], [0, 0], "z")
    with pytest.raises(ValueError, match="NaN"):
        S.paired_test([1, np.nan], [0, 0], "t")


# --- agreement with scipy ------------------------------------------------------------------------
def test_agrees_with_scipy_on_random_pairs():
    gen = np.random.default_rng(0)
    for _ in range(5):
        a = gen.normal(0.3, 0.2, 60)
        b = a + gen.normal(0.02, 0.1, 60)
        assert S.paired_test(a, b, "t") == pytest.approx(sps.ttest_rel(a, b).pvalue)
        assert S.paired_test(a, b, "wilcoxon") == pytest.approx(sps.wilcoxon(a - b).pvalue)
        # With 2^60 sign flips the permutation test samples them; it approaches the t-test.
        assert S.paired_test(a, b, "permutation") == pytest.approx(
            sps.ttest_rel(a, b).pvalue, abs=0.03)
        mean, low, high = S.t_interval(a)
        low2, high2 = sps.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=sps.sem(a))
        assert (low, high) == pytest.approx((low2, high2))
        ours = S.bootstrap_ci(a - b, n_resamples=4000, rng=1)
        ref = sps.bootstrap(((a - b),), np.mean, n_resamples=4000, method="percentile",
                            random_state=np.random.default_rng(2)).confidence_interval
        assert ours == pytest.approx((ref.low, ref.high), abs=0.006)


# --- simulations ---------------------------------------------------------------------------------
def test_identical_models_rejected_at_about_alpha():
    """400 null comparisons (the same distribution, 200 users): rejections ~ Binomial(400, 0.05).

    The mean is 20 and the standard deviation 4.36; 3 standard deviations either side allow
    7..33 rejections. The bootstrap interval misses 0 about as often.
    """
    gen = np.random.default_rng(2024)
    rejected = {"t": 0, "wilcoxon": 0, "ci": 0}
    for i in range(400):
        user = gen.normal(0.3, 0.15, 200)  # users differ; both models see the same users
        a = user + gen.normal(0, 0.1, 200)
        b = user + gen.normal(0, 0.1, 200)
        rejected["t"] += S.paired_test(a, b, "t") < 0.05
        rejected["wilcoxon"] += S.paired_test(a, b, "wilcoxon") < 0.05
        low, high = S.bootstrap_ci(a - b, n_resamples=400, rng=i)
        rejected["ci"] += not low <= 0 <= high
    for key, n in rejected.items():
        assert 7 <= n <= 33, (key, n)


def test_permutation_null_rate():
    gen = np.random.default_rng(7)
    hits = sum(S.paired_test(gen.normal(size=50), gen.normal(size=50), "permutation",
                             n_resamples=999, rng=i) < 0.05 for i in range(200))
    # Binomial(200, 0.05): mean 10, sd 3.08
    assert 1 <= hits <= 20


def test_planted_difference_is_found():
    gen = np.random.default_rng(3)
    user = gen.normal(0.3, 0.15, 200)
    base = user + gen.normal(0, 0.1, 200)
    better = base + 0.05 + gen.normal(0, 0.1, 200)
    for test in S.TESTS:
        assert S.paired_test(better, base, test) < 0.001, test
    low, high = S.bootstrap_ci(better - base)
    assert 0 < low < 0.05 < high
    assert S.cohens_dz(better - base) > 0.3
