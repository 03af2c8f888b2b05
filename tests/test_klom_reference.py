"""KLoM as the Attribute-to-Delete reference code computes it (data-unlearning-bench,
unlearning_bench/eval.py): the logsumexp margin, the 20-bin histogram KL with its 1e-5 floor,
and a loop port of the reference's own function."""
import math

import numpy as np
import pytest
import scipy.stats

from unlearnbench.stats.population import klom, klom_gaussian, margins


def reference_binned_kl(p_arr, q_arr, bin_count=20, eps=1e-5, min_val=-100, max_val=100):
    """The reference's compute_binned_KL_div, line for line: KL(p ‖ q) of one example."""
    p_arr, q_arr = np.clip(p_arr, min_val, max_val), np.clip(q_arr, min_val, max_val)
    bins_start = min(p_arr.min(), q_arr.min())
    bins_end = max(p_arr.max(), q_arr.max())
    if bins_start >= bins_end:
        bins_end = bins_start + 1
    bins = np.linspace(bins_start, bins_end, bin_count + 1)
    p_index, q_index = np.digitize(p_arr, bins), np.digitize(q_arr, bins)
    p_counts = np.array([np.sum(p_index == i) for i in range(1, bin_count + 1)])
    q_counts = np.array([np.sum(q_index == i) for i in range(1, bin_count + 1)])
    p_total, q_total = p_counts.sum(), q_counts.sum()
    p_probs = p_counts / p_total if p_total > 0 else np.zeros_like(p_counts, dtype=float)
    q_probs = q_counts / q_total if q_total > 0 else np.zeros_like(q_counts, dtype=float)
    q_safe = np.where(p_probs > 0, np.maximum(q_probs, eps), q_probs)
    with np.errstate(invalid="ignore"):
        return scipy.stats.entropy(pk=p_probs, qk=q_safe)


def reference_klom(unlearned, retrained):
    """The reference's kl_from_margins: one call per example (column)."""
    return np.array([reference_binned_kl(unlearned[:, e], retrained[:, e])
                     for e in range(unlearned.shape[1])])


def test_margin_is_correct_logit_minus_logsumexp_of_the_others():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [3.0, 1.0, 1.0], [1000.0, 0.0, -5.0]])
    labels = np.array([0, 2, 1, 1])
    expected = [2 - math.log(math.e + 1),            # 2 − ln(e¹ + e⁰)
                -math.log(2),                        # 0 − ln(1 + 1)
                1 - math.log(math.exp(3) + math.e),  # 1 − ln(e³ + e¹)
                -1000.0]                             # 0 − (1000 + ln(1 + e^−1005)): no overflow
    np.testing.assert_allclose(margins(logits, labels), expected, rtol=1e-12)
    # two classes: the margin is the difference of the two logits
    assert margins(np.array([[3.0, 1.0]]), np.array([1]))[0] == pytest.approx(-2.0)


def test_identical_samples_score_zero():
    rng = np.random.default_rng(0)
    values = rng.normal(0, 3, (16, 5))
    assert (klom(values, values) == 0).all()
    constant = np.full((4, 1), 2.5)          # one value: one bin of width 1, the same histogram
    assert klom(constant, constant)[0] == 0


def test_disjoint_samples_score_what_the_floor_implies():
    """Bins of width 10.5 / 20 = 0.525 over [0, 10.5]. The unlearned margins fill bin 1
    (or bins 1-2), the retrained ones bin 20 (10.5, the joint maximum, falls in no bin).
    Each unlearned bin gets the retrained share 1e-5, and scipy normalises the floored
    shares: q = 1e-5 / (1 + k·1e-5) on the k unlearned bins."""
    retrained = np.array([[10.0], [10.2], [10.4], [10.5]])
    one_bin = np.array([[0.0], [0.1], [0.2], [0.3]])
    assert klom(one_bin, retrained)[0] == pytest.approx(math.log((1 + 1e-5) / 1e-5), rel=1e-12)
    two_bins = np.array([[0.0], [0.0], [1.0], [1.0]])
    # 2 × 0.5 ln(0.5 (1 + 2e-5) / 1e-5)
    assert klom(two_bins, retrained)[0] == pytest.approx(math.log(0.5 * (1 + 2e-5) / 1e-5),
                                                         rel=1e-12)


def random_margins(seed, models=16, examples=8):
    """Per example, retrained margins normal and unlearned ones shifted and rescaled; one
    example with half its unlearned margins beyond the +100 clip (clipped to the joint maximum,
    so binned nowhere), one with a constant unlearned population inside the range."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(0, 5, examples)
    retrained = centre + rng.normal(0, 1, (models, examples)) * rng.uniform(0.2, 3, examples)
    shift = rng.choice([0.0, 0.5, 2.0, 8.0], examples)
    scale = rng.choice([0.3, 1.0, 2.0], examples)
    unlearned = centre + shift + rng.normal(0, 1, (models, examples)) * scale
    unlearned[::2, 0] += 150.0
    unlearned[:, 1] = np.median(retrained[:, 1])
    return unlearned, retrained


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_a_loop_port_of_the_reference(seed):
    """The same float64 operations per example, so agreement to rounding (the sums run in
    another order): rtol 1e-12 on values of order 0.1-12."""
    unlearned, retrained = random_margins(seed)
    expected = reference_klom(unlearned, retrained)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(klom(unlearned, retrained), expected, rtol=1e-12, atol=1e-12)


def test_all_unlearned_at_the_top_edge_counts_in_the_last_bin():
    """A constant unlearned population above every retrained margin: the reference bins none
    of it (NaN); here it counts in the last bin, which holds no retrained margin (floor 1e-5)."""
    retrained = np.linspace(0.0, 1.0, 8)[:, None]
    unlearned = np.full((8, 1), 5.0)
    assert np.isnan(reference_klom(unlearned, retrained)[0])
    assert klom(unlearned, retrained)[0] == pytest.approx(math.log((1 + 1e-5) / 1e-5),
                                                          rel=1e-12)


def test_gaussian_variant_is_the_closed_form():
    unlearned = np.array([[0.0], [2.0], [4.0]])      # mean 2, variance 4
    retrained = np.array([[1.0], [2.0], [3.0]])      # mean 2, variance 1
    assert klom_gaussian(unlearned, retrained)[0] == pytest.approx(0.5 * (math.log(1 / 4) + 3))
