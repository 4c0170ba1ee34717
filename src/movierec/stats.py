"""Paired significance tests, confidence intervals and multiple-comparison corrections.

Pure functions over arrays (numpy, scipy); they know nothing of models or folders. `compare.py`
pairs per-user results of two models and calls them.

* `t_interval(values)`: mean and Student-t confidence interval, e.g. of a metric over K folds.
* `bootstrap_ci(diff, groups=...)`: percentile interval of a mean paired difference, users
  resampled with replacement (within each group, e.g. each fold, when groups are given), seeded.
* `paired_test(a, b, test)`: p-value of a paired test over users: "t" (`scipy.stats.ttest_rel`),
  "wilcoxon" (`scipy.stats.wilcoxon`, zero differences dropped) or "permutation"
  (`scipy.stats.permutation_test`, the signs of the differences flipped at random).
* `holm`, `bonferroni`, `correct`: family-wise corrected p-values.
* `cohens_dz(diff)`: the effect size of paired data, mean difference / its standard deviation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import stats as sps

Test = Literal["t", "wilcoxon", "permutation"]
Correction = Literal["holm", "bonferroni", "none"]
TESTS: tuple[str, ...] = ("t", "wilcoxon", "permutation")
CORRECTIONS: tuple[str, ...] = ("holm", "bonferroni", "none")
#: Random sign flips of the permutation test (exact when 2^n is fewer).
PERMUTATIONS = 9999
#: Bootstrap resamples of `bootstrap_ci`.
BOOTSTRAPS = 2000


class TooFewError(ValueError):
    """Too few paired observations for the asked test or interval."""


def _paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired samples must be two 1-d arrays of one length, got shapes "
                         f"{x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired samples hold NaN or infinite values: drop unpaired users first")
    return x, y


def min_pairs(test: str, alpha: float = 0.05) -> int:
    """Fewest pairs for which `test` can give a two-sided p-value below `alpha`.

    The t-test needs 2 (a standard deviation). The rank and sign-flip tests are discrete: with n
    pairs their smallest two-sided p-value is 2 / 2^n, so they need n >= log2(2 / alpha)
    (6 pairs at alpha = 0.05).
    """
    _check_test(test)
    if test == "t":
        return 2
    return max(2, math.ceil(math.log2(2.0 / alpha) - 1e-12))


def _check_test(test: str) -> None:
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of {', '.join(TESTS)}")


def paired_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                test: str = "t", *, alpha: float = 0.05, n_resamples: int = PERMUTATIONS,
                rng: int | np.random.Generator | None = 0) -> float:
    """Two-sided p-value that the mean (t, permutation) or median (wilcoxon) of a - b is zero.

    Args:
        a: one value per user of the first model.
        b: the second model's values of the same users, in the same order.
        test: "t" (paired t-test), "wilcoxon" (signed-rank; zero differences dropped, as in
            Wilcoxon's original test) or "permutation" (random sign flips of the differences,
            statistic the mean difference; exact when 2^n <= n_resamples).
        alpha: the level, only to check that there are enough pairs (`min_pairs`).
        n_resamples: sign flips of the permutation test. Default 9999.
        rng: seed of the permutation test. Default 0.

    Returns:
        The p-value; 1.0 when every difference is zero (no evidence of any difference), 0.0
        when the differences are all equal and non-zero (t-test: infinite statistic).

    Raises:
        TooFewError: fewer pairs than `min_pairs(test, alpha)`.
        ValueError: unknown test, arrays of different lengths, NaN values.
    """
    _check_test(test)
    x, y = _paired(a, b)
    need = min_pairs(test, alpha)
    if len(x) < need:
        raise TooFewError(f"the {test} test needs at least {need} paired users at alpha={alpha:g}"
                          f", got {len(x)}")
    d = x - y
    if not d.any():
        return 1.0
    if test == "t":
        if np.ptp(d) == 0:
            return 0.0
        return float(sps.ttest_rel(x, y).pvalue)
    if test == "wilcoxon":
        return float(sps.wilcoxon(d, zero_method="wilcox").pvalue)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def mean_diff(first: np.ndarray, second: np.ndarray, axis: int) -> np.ndarray:
        return np.mean(first - second, axis=axis)

    res = sps.permutation_test((x, y), mean_diff, permutation_type="samples",
                               n_resamples=n_resamples, vectorized=True,
                               alternative="two-sided", **_rng_kwarg(gen))
    return float(min(1.0, res.pvalue))


def _rng_kwarg(gen: np.random.Generator) -> dict[str, np.random.Generator]:
    """The generator as keyword: `rng` from scipy 1.15 on, `random_state` before."""
    import inspect

    names = inspect.signature(sps.permutation_test).parameters
    return {"rng": gen} if "rng" in names else {"random_state": gen}


def cohens_dz(diff: Sequence[float] | np.ndarray) -> float:
    """Cohen's d_z of paired differences: mean / standard deviation (ddof=1).

    0 when every difference is zero; ±inf when they are all equal and non-zero; NaN for fewer
    than 2 differences.
    """
    d = np.asarray(diff, dtype=np.float64)
    if len(d) < 2:
        return float("nan")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / sd


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95
               ) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t confidence interval of the mean of `values`.

    mean ± t_{(1+confidence)/2, n-1} · s / sqrt(n), with s the sample standard deviation
    (ddof=1): the interval over K folds of a cross-validation. With one value the bounds are
    NaN (no spread to estimate).
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = float(sps.t.ppf((1 + confidence) / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, mean - half, mean + half


def bootstrap_ci(diff: Sequence[float] | np.ndarray, *, groups: Sequence[object] | None = None,
                 confidence: float = 0.95, n_resamples: int = BOOTSTRAPS,
                 rng: int | np.random.Generator | None = 0, chunk: int = 200
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean paired difference.

    Each resample draws the users again with replacement; with `groups` (e.g. the fold of each
    pair), within each group, keeping every group's size, so that a resample is again "every
    fold once". The interval is the (1 - confidence)/2 and (1 + confidence)/2 quantiles of the
    resampled means.

    Args:
        diff: one paired difference per (group, user).
        groups: the group of each difference (default: one group).
        confidence: coverage of the interval. Default 0.95.
        n_resamples: bootstrap resamples. Default 2000.
        rng: seed or Generator. Default 0 (the same data give the same interval).
        chunk: resamples drawn at once (memory: chunk x users indices).

    Raises:
        TooFewError: fewer than 2 differences.
    """
    d = np.asarray(diff, dtype=np.float64)
    if len(d) < 2:
        raise TooFewError(f"a bootstrap interval needs at least 2 paired users, got {len(d)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if groups is None:
        parts = [d]
    else:
        labels = np.asarray(groups)
        if len(labels) != len(d):
            raise ValueError(f"groups has {len(labels)} labels for {len(d)} differences")
        parts = [d[labels == g] for g in dict.fromkeys(labels.tolist())]
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        total = np.zeros(b)
        for part in parts:
            idx = gen.integers(0, len(part), size=(b, len(part)))
            total += part[idx].sum(axis=1)
        means[start:start + b] = total / len(d)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def bonferroni(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Bonferroni-corrected p-values: min(1, m · p)."""
    p = np.asarray(pvalues, dtype=np.float64)
    return np.minimum(1.0, p * len(p))


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down corrected p-values (controls the family-wise error rate).

    Sorted ascending, p_(i) becomes max_{j <= i} min(1, (m - j + 1) · p_(j)) (1-based), then
    returned in the input order. Rejecting where the corrected p < alpha is Holm's procedure.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.maximum.accumulate(scaled)
    return out


def correct(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Corrected p-values by `method`: "holm", "bonferroni" or "none" (unchanged).

    NaN p-values (comparisons that could not be tested) are left out of the family and stay NaN.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; expected one of "
                         f"{', '.join(CORRECTIONS)}")
    p = np.asarray(pvalues, dtype=np.float64)
    out = p.copy()
    ok = np.isfinite(p)
    if method == "holm":
        out[ok] = holm(p[ok])
    elif method == "bonferroni":
        out[ok] = bonferroni(p[ok])
    return out


__all__ = ["BOOTSTRAPS", "CORRECTIONS", "PERMUTATIONS", "TESTS", "Correction", "Test",
           "TooFewError", "bonferroni", "bootstrap_ci", "cohens_dz", "correct", "holm",
           "min_pairs", "paired_test", "t_interval"]
