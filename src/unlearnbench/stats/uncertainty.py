"""Uncertainty over seeds: bootstrap intervals, seed variance, paired tests, ties within noise.

A leaderboard number is a mean over runs that differ only in their seed. Following
"Quantifying Variance in Evaluation Benchmarks" (Madaan et al. 2024), its noise is reported
two ways: the *seed standard deviation* (spread of single runs, ddof = 1) and the *bootstrap
standard deviation of the mean* (how much the reported mean itself would move with another
draw of seeds), together with a percentile bootstrap interval of the mean. (Madaan et al.
also bootstrap over test examples; here the resampling unit is the seed, the only source of
run-to-run variation a record holds.) Two methods run on the same seeds are compared with a
paired t-test, and `within_noise` turns that into the "≈" mark of `unlearnbench show`.

Inputs are assumed free of NaN (the leaderboard drops non-finite values first). The values
over seeds are a multiset: they are sorted before anything is computed, so that the
bootstrap's draws, and every summary, are the same whatever order they come in."""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95
RESAMPLES = 2000
ALPHA = 0.05


def _bootstrap_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Means of ``resamples`` resamples (with replacement, same size) of ``values``, drawn
    at once as an index matrix."""
    rng = np.random.default_rng(seed)
    return values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)


def bootstrap_interval(values: Sequence[float], level: float = LEVEL, resamples: int = RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over seeds: the (1 − level)/2 and
    (1 + level)/2 quantiles of the means of ``resamples`` resamples drawn with replacement.

    One value gives the degenerate interval (v, v): a single seed carries no information
    about the noise, so the interval says nothing, not that the value is exact. The bounds
    are clipped to [min, max] of the values, where every resample mean lies anyway (this
    only removes floating-point rounding, so constant values give a zero-width interval)."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    if len(values) == 0:
        raise ValueError("bootstrap_interval needs at least one value")
    if len(values) == 1:
        return float(values[0]), float(values[0])
    means = _bootstrap_means(values, resamples, seed)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return (float(np.clip(low, values.min(), values.max())),
            float(np.clip(high, values.min(), values.max())))


def seed_summary(values: Sequence[float], level: float = LEVEL, resamples: int = RESAMPLES,
                 seed: int = 0) -> dict:
    """{mean, std, std_of_mean, n, low, high} of one metric over seeds: ``std`` is the seed
    standard deviation (ddof = 1; 0 for one seed), ``std_of_mean`` the bootstrap standard
    deviation of the mean (same resamples as the interval; 0 for one seed), ``low``/``high``
    the `bootstrap_interval`."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    low, high = bootstrap_interval(values, level, resamples, seed)
    several = len(values) > 1
    return {"mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if several else 0.0,
            "std_of_mean": float(_bootstrap_means(values, resamples, seed).std()) if several
            else 0.0,
            "n": len(values), "low": low, "high": high}


def paired_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test (``scipy.stats.ttest_rel``) of two methods
    measured on the same seeds, ``a[i]`` and ``b[i]`` from seed i.

    Fewer than 2 pairs: nan (no variance to test against). Identical samples: 1 (no
    difference at all; scipy would return nan). A constant non-zero difference: 0 (a shift
    with no noise in it; scipy returns the same through an infinite t)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    if len(a) < 2:
        return math.nan
    differences = a - b
    if np.all(differences == 0):
        return 1.0
    if np.ptp(differences) == 0:
        return 0.0
    with warnings.catch_warnings():  # near-constant differences warn about precision
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_rel(a, b).pvalue)


def within_noise(a: Mapping[int, float], b: Mapping[int, float], alpha: float = ALPHA,
                 level: float = LEVEL) -> bool:
    """Whether two rows of a table, given as {seed: value}, differ by less than the noise.

    Rule: on the seeds both rows have, if there are at least 2, the paired t-test decides:
    p ≥ ``alpha`` (0.05) is a tie. With fewer than 2 shared seeds there is nothing to pair,
    and the rows tie when their bootstrap intervals (``level``, over all each row's seeds)
    overlap; one seed on each side gives point intervals, which tie only when equal. Not
    significant is not the same as equal: a tie says the seeds at hand cannot separate the
    two rows."""
    shared = sorted(set(a) & set(b))
    if len(shared) >= 2:
        return paired_test([a[s] for s in shared], [b[s] for s in shared]) >= alpha
    a_low, a_high = bootstrap_interval(list(a.values()), level)
    b_low, b_high = bootstrap_interval(list(b.values()), level)
    return a_low <= b_high and b_low <= a_high
