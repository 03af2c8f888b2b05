"""Bootstrap intervals, seed summaries, the paired test and ties within noise, on values whose
answers can be worked out by hand."""
import math

import numpy as np
import pytest
from scipy import stats

from unlearnbench.stats.uncertainty import (bootstrap_interval, paired_test, seed_summary,
                                            within_noise)


def test_constant_values_give_a_zero_width_interval():
    # 0.1 is not exact in binary: the resample means would round around it without the clip
    assert bootstrap_interval([0.1] * 7) == (0.1, 0.1)
    assert seed_summary([0.1] * 7) == {"mean": pytest.approx(0.1), "std": pytest.approx(0.0),
                                       "std_of_mean": pytest.approx(0.0), "n": 7,
                                       "low": 0.1, "high": 0.1}


def test_one_value_is_its_own_interval():
    assert bootstrap_interval([3.5]) == (3.5, 3.5)
    assert seed_summary([3.5]) == {"mean": 3.5, "std": 0.0, "std_of_mean": 0.0, "n": 1,
                                   "low": 3.5, "high": 3.5}


def test_two_values_span_their_range():
    # Resample means of (0, 1) are 0, 0.5 and 1 with probabilities 1/4, 1/2, 1/4: the 2.5%
    # and 97.5% quantiles are the extremes.
    assert bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)


def test_interval_contains_the_mean_and_narrows_with_more_seeds():
    # The same five values repeated 1, 4 and 16 times: same spread, 4× the seeds each time,
    # so the interval should halve each time (σ/√n).
    pattern = np.array([8.0, 9.0, 10.0, 11.0, 12.0])
    widths = []
    for copies in (1, 4, 16):
        low, high = bootstrap_interval(np.tile(pattern, copies), seed=0)
        assert low < 10.0 < high
        widths.append(high - low)
    assert widths[0] / widths[1] == pytest.approx(2.0, rel=0.2)
    assert widths[1] / widths[2] == pytest.approx(2.0, rel=0.2)
    # the width of a 95% interval of a normal mean is close to 2 × 1.96 σ/√n
    draws = np.random.default_rng(0).normal(10.0, 2.0, size=200)
    low, high = bootstrap_interval(draws)
    assert high - low == pytest.approx(2 * 1.96 * draws.std() / math.sqrt(200), rel=0.15)


def test_interval_is_seeded_and_level_widens_it():
    values = [1.0, 4.0, 2.0, 8.0, 5.0]
    assert bootstrap_interval(values, seed=3) == bootstrap_interval(values, seed=3)
    low90, high90 = bootstrap_interval(values, level=0.90)
    low99, high99 = bootstrap_interval(values, level=0.99)
    assert low99 < low90 and high90 < high99


def test_seed_summary_std_and_std_of_mean():
    values = [1.0, 2.0, 3.0, 4.0]
    summary = seed_summary(values)
    assert summary["mean"] == 2.5
    assert summary["std"] == pytest.approx(math.sqrt(5 / 3))  # ddof = 1
    # bootstrap std of the mean → population std / √n = √1.25 / 2
    assert summary["std_of_mean"] == pytest.approx(math.sqrt(1.25) / 2, rel=0.05)
    assert (summary["low"], summary["high"]) == bootstrap_interval(values)


def test_paired_test_on_a_shift_with_noise_is_the_t_test_worked_by_hand():
    base = np.array([3.0, 5.0, 4.0, 6.0, 2.0])
    noise = np.array([0.1, -0.2, 0.05, 0.15, -0.1])
    shifted = base + 1.0 + noise
    differences = base - shifted  # = -1 - noise
    t = differences.mean() / (differences.std(ddof=1) / math.sqrt(5))
    expected = 2 * stats.t.sf(abs(t), df=4)
    assert paired_test(base, shifted) == pytest.approx(expected, rel=1e-12)
    assert expected < 1e-3  # the shift dwarfs the noise


def test_paired_test_edge_cases():
    assert paired_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert math.isnan(paired_test([1.0], [2.0]))
    assert paired_test([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]) == 0.0  # shift without noise
    with pytest.raises(ValueError):
        paired_test([1.0, 2.0], [1.0])


def test_within_noise_pairs_the_shared_seeds():
    a = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}
    # differences +0.1, -0.1, +0.05, -0.05: mean 0, p = 1 → tie
    tied = {0: 1.1, 1: 1.9, 2: 3.05, 3: 3.95}
    assert within_noise(a, tied)
    # a shift of 1 with small noise: p far below 0.05 → not a tie, even though the rows'
    # spreads over seeds (1 to 4 and 2 to 5) overlap
    apart = {0: 2.1, 1: 2.9, 2: 4.05, 3: 4.95}
    assert not within_noise(a, apart)
    # only the shared seeds 0..3 count: the extra seed 9 cannot break the pairing
    assert not within_noise(a, {**apart, 9: 1.0})


def test_within_noise_falls_back_to_intervals_without_two_shared_seeds():
    # one shared seed: intervals over all seeds decide
    assert within_noise({0: 1.0, 1: 3.0}, {1: 2.0, 2: 2.5})  # [1, 3] overlaps [2, 2.5]
    assert not within_noise({0: 1.0, 1: 1.2}, {1: 5.0, 2: 5.5})
    # one seed each: points, equal or not
    assert within_noise({0: 0.5}, {0: 0.5})
    assert not within_noise({0: 0.5}, {0: 0.6})
