"""Population scores: a method run with N seeds against N retrained models, per example.

Definitions: docs/metrics.md, "NeurIPS 2023 Machine Unlearning Challenge
score" (reference code google-deepmind/unlearning_evaluation, metric.py and main.py) and
"Population statistics beyond the challenge" (U-LiRA, KLoM: reference code
RoyRin/data-unlearning-bench, unlearning_bench/eval.py). Arrays are (models, examples) and
every computation is NumPy, vectorised over examples and decision thresholds.

The challenge's ε, where this differs from the reference code by default:
- the reference computes in float32 in three places: the exponentials of the confidences
  (``np.exp`` of the float32 logits, then float64), the single-threshold grid
  (``torch.linspace`` in the default float32) and the rates and ε (torch means of float32
  indicators, then NumPy on those); here all three are float64. An ε can therefore differ in
  its last float32 digits, or where a score lies within float32 rounding of a threshold, and
  in rare cases that moves it across a bucket boundary (a multiple of 0.5) and changes F.
  ``float32=True`` (``logit_scaled_confidence``, ``example_epsilons``; ``unlearnbench
  population --float32``) computes those three as the reference does;
- both populations constant (the reference divides 0 by 0 and then fails its own assertion):
  ε = 0 when they hold the same value, ``EPSILON_CAP`` when they differ;
- an example whose every decision rule is discarded (the reference asserts this never
  happens): ε = 0, no rule of the family tells the populations apart.

KLoM follows its reference code step by step (``klom`` says how, and the one input on which
the reference returns NaN); ``klom_gaussian`` is a closed-form variant, not the reference.

Reading F: even two populations from one distribution rarely score 1. A threshold with k
models of one population and one of the other above it scores ε ≈ ln(k − N·δ) whatever N,
so with δ = 1e-5 such tail counts give ε ≈ 1-1.5 and F ≈ 0.2 at any affordable N; F tends to
1 only when N·δ ≫ 1 (tests/test_population_stats.py). F is also comparable only at equal N:
N sets the number of buckets, ⌈ln(N − 1)⌉ / 0.5.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.stats

from .challenge_rules import (
    THRESHOLDS_PER_UNIT,
    double_threshold_best,
    rule_table,
    single_threshold_best,
)

DELTA = 1e-5
EPSILON_CAP = 50.0
RANGE_RATIO_CAP = 0.01  # (smaller range) / (larger range) below this: ε = EPSILON_CAP outright
BUCKET_WIDTH = 0.5
# KLoM's histogram, as the reference code bins: margins clipped to ±KLOM_CLIP, KLOM_BINS equal
# bins over the joint range, retrained shares floored at KLOM_FLOOR where unlearned ones are > 0.
KLOM_CLIP = 100.0
KLOM_BINS = 20
KLOM_FLOOR = 1e-5
# Gaussian fits (U-LiRA, the Gaussian KLoM) floor the variance here: a method whose models all
# agree (the no-op `original`) has zero spread, and σ ≥ 1e-3 (in units of s or of the margin)
# keeps the likelihoods and the KL finite while still far below any real seed-to-seed spread.
VARIANCE_FLOOR = 1e-6
# Examples per chunk: each holds ~160k double-threshold rules (a few arrays of that size).
EXAMPLES_PER_CHUNK = 12


def logit_scaled_confidence(logits, labels, float32: bool = False) -> np.ndarray:
    """s = log p_y − log Σ_{k≠y} p_k per example (LiRA's logit scaling), softmax in float64
    after subtracting the largest logit, 1e-45 added inside both logs. ``logits`` (..., C),
    ``labels`` (...) -> (...). ``float32``: the logits are taken as float32 and the shift and
    exponentials computed in float32, the rest in float64, as the reference code does with a
    network's float32 logits."""
    z = np.asarray(logits, np.float32 if float32 else np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z).astype(np.float64)
    p /= p.sum(axis=-1, keepdims=True)
    correct = np.take_along_axis(p, _label_index(labels, z), axis=-1)[..., 0]
    wrong = np.where(_label_mask(labels, z), 0.0, p).sum(axis=-1)
    return np.log(correct + 1e-45) - np.log(wrong + 1e-45)


def margins(logits, labels) -> np.ndarray:
    """KLoM's margin, as the reference's ``get_margin``: the correct-class logit minus the
    logsumexp of the other logits (float64, shifted by their largest), (..., C) -> (...)."""
    z = np.asarray(logits, np.float64)
    correct = np.take_along_axis(z, _label_index(labels, z), axis=-1)[..., 0]
    others = np.where(_label_mask(labels, z), -np.inf, z)
    top = others.max(axis=-1, keepdims=True)
    return correct - (top[..., 0] + np.log(np.exp(others - top).sum(axis=-1)))


def _label_index(labels, z):
    return np.broadcast_to(np.asarray(labels), z.shape[:-1])[..., None].astype(np.int64)


def _label_mask(labels, z):
    return np.arange(z.shape[-1]) == _label_index(labels, z)


def check_finite(values: np.ndarray, what: str) -> None:
    """Refuse (models, examples) scores holding NaN or infinite values, naming the examples
    (columns): no decision rule or Gaussian fit means anything on them."""
    bad = np.flatnonzero(~np.isfinite(values).all(axis=0))
    if len(bad):
        shown = ", ".join(str(i) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise ValueError(f"the {what} hold NaN or infinite values on {len(bad)} of "
                         f"{values.shape[1]} examples ({shown}): a model gave NaN or infinite "
                         "logits; score models whose logits are finite")


def example_epsilons(unlearned, retrained, delta: float = DELTA, float32: bool = False
                     ) -> np.ndarray:
    """The challenge's per-example ε from the logit-scaled confidences of the unlearned
    (N_u, E) and retrained (N_r, E) populations (docs/metrics.md, steps 2-4): the best privacy
    loss over single- and double-threshold decision rules, clipped to [0, EPSILON_CAP].
    ``float32``: single-threshold grid, rates and ε in float32 as the reference code computes
    them (the returned ε are float32; the confidences themselves stay float64 there too)."""
    u, r = np.asarray(unlearned, np.float64), np.asarray(retrained, np.float64)
    if u.ndim != 2 or r.ndim != 2 or u.shape[1] != r.shape[1] or min(len(u), len(r)) < 2:
        raise ValueError(f"need (models, examples) arrays with the same examples and at least "
                         f"2 models each, got {u.shape} and {r.shape}")
    check_finite(u, "unlearned population's confidences")
    check_finite(r, "retrained population's confidences")
    range_u, range_r = np.ptp(u, axis=0), np.ptp(r, axis=0)
    smaller, larger = np.minimum(range_u, range_r), np.maximum(range_u, range_r)
    with np.errstate(invalid="ignore", divide="ignore"):
        capped = smaller / larger < RANGE_RATIO_CAP
    constant = larger == 0
    dtype = np.float32 if float32 else np.float64
    single = _single_threshold_best_float32 if float32 else single_threshold_best
    eps = np.where(capped, EPSILON_CAP, 0.0).astype(dtype)
    eps[constant] = np.where(u[0, constant] == r[0, constant], 0.0, EPSILON_CAP)
    retrain_positive = np.median(r, axis=0) > np.median(u, axis=0)
    # the double-threshold rules call the peakier population positive (the negative one
    # when the ranges tie), so each example belongs to one of four role assignments
    peaky_is_positive = np.where(retrain_positive, range_r, range_u) < np.where(
        retrain_positive, range_u, range_r)
    scored = ~capped & ~constant
    for positive_is_r in (False, True):
        pos, neg = (r, u) if positive_is_r else (u, r)
        for peaky_positive in (False, True):
            columns = np.flatnonzero(scored & (retrain_positive == positive_is_r)
                                     & (peaky_is_positive == peaky_positive))
            peaky, other = (pos, neg) if peaky_positive else (neg, pos)
            for at in range(0, len(columns), EXAMPLES_PER_CHUNK):
                part = columns[at:at + EXAMPLES_PER_CHUNK]
                best = np.fmax(single(pos[:, part].T, neg[:, part].T, delta),
                               double_threshold_best(peaky[:, part].T, other[:, part].T, delta,
                                                     dtype))
                eps[part] = np.where(np.isnan(best), 0.0, best)
    return np.clip(eps, dtype(0), dtype(EPSILON_CAP))


def _single_threshold_best_float32(pos, neg, delta):
    """``single_threshold_best`` on the reference's own grid: per row, ``torch.linspace`` in
    float32 over [min, max] of the pooled scores (its arithmetic differs from NumPy's, so the
    thresholds are built, not counted on), compared with the float64 scores; rates and ε in
    float32."""
    import torch

    table = rule_table(pos.shape[1], neg.shape[1], delta, np.float32)
    pos, neg = np.sort(pos, axis=1), np.sort(neg, axis=1)
    best = np.empty(len(pos), np.float32)
    for row, (p, n) in enumerate(zip(pos, neg)):
        low, high = min(p[0], n[0]), max(p[-1], n[-1])
        count = int(np.ceil((high - low) * THRESHOLDS_PER_UNIT))
        thresholds = torch.linspace(low, high, count, dtype=torch.float32).numpy()
        thresholds = thresholds.astype(np.float64)   # compared with float64 scores, as there
        false_negatives = np.searchsorted(p, thresholds, side="left")         # p < t
        false_positives = len(n) - np.searchsorted(n, thresholds, side="left")  # n >= t
        best[row] = np.fmax.reduce(table[false_negatives, false_positives])
    return best


def forget_quality(epsilons, n_models: int) -> float:
    """The challenge's forget quality F (step 5): buckets of width 0.5 from 0 below
    ⌈ln(N − 1)⌉, the k-th worth 2^−k points, ε beyond the last worth 0; F = mean points."""
    if n_models < 2:
        raise ValueError(f"forget quality needs at least 2 models, got {n_models}")
    eps = np.asarray(epsilons, np.float64)
    buckets = int(math.ceil(math.log(n_models - 1)) / BUCKET_WIDTH)
    k = np.floor(eps / BUCKET_WIDTH)
    return float(np.where(k < buckets, 2.0 ** -np.minimum(k, buckets), 0.0).mean())


def challenge_score(forget_quality: float, ra_u: float, ra_r: float, ta_u: float,
                    ta_r: float) -> float:
    """Final score = F × (RA_u / RA_R) × (TA_u / TA_R), accuracies averaged over models (any
    unit, the same for both)."""
    return forget_quality * (ra_u / ra_r) * (ta_u / ta_r)


def _fit(values):
    """Per-column mean and (unbiased, floored) variance of (models, examples)."""
    return values.mean(axis=0), np.maximum(values.var(axis=0, ddof=1), VARIANCE_FLOOR)


def _log_density(x, mean, var):
    return -0.5 * (np.log(2 * np.pi * var) + (x - mean) ** 2 / var)


def _leave_one_out(values):
    """Mean and floored unbiased variance of each column without each row in turn (closed
    form: removing x moves the mean by (μ − x)/(n − 1) and the sum of squared deviations by
    −(x − μ)²·n/(n − 1)). Needs 3 rows or more."""
    n = len(values)
    mean = values.mean(axis=0)
    squares = ((values - mean) ** 2).sum(axis=0)
    loo_mean = (n * mean - values) / (n - 1)
    loo_squares = np.maximum(squares - (values - mean) ** 2 * n / (n - 1), 0.0)
    return loo_mean, np.maximum(loo_squares / (n - 2), VARIANCE_FLOOR)


def ulira_accuracy(unlearned_s, retrained_s) -> np.ndarray:
    """U-LiRA-style attack accuracy per example (0.5 = indistinguishable, 1 = always told
    apart): each model in turn is held out; Gaussians are fitted to s of the unlearned and
    of the retrained population without it, and the likelihood ratio assigns it to the more
    likely one (a tie counts half). (N_u, E), (N_r, E) with N ≥ 3 each -> (E,)."""
    u, r = np.asarray(unlearned_s, np.float64), np.asarray(retrained_s, np.float64)
    if min(len(u), len(r)) < 3:
        raise ValueError("U-LiRA's leave-one-out fits need at least 3 models per population")
    check_finite(u, "unlearned population's confidences")
    check_finite(r, "retrained population's confidences")
    u_mean, u_var = _fit(u)
    r_mean, r_var = _fit(r)
    loo_u_mean, loo_u_var = _leave_one_out(u)
    loo_r_mean, loo_r_var = _leave_one_out(r)
    # log-likelihood ratio "unlearned over retrained": > 0 says unlearned
    held_u = _log_density(u, loo_u_mean, loo_u_var) - _log_density(u, r_mean, r_var)
    held_r = _log_density(r, u_mean, u_var) - _log_density(r, loo_r_mean, loo_r_var)
    correct = (np.sign(held_u) + 1).sum(axis=0) / 2 + (1 - np.sign(held_r)).sum(axis=0) / 2
    return correct / (len(u) + len(r))


def gaussian_kl(mean_p, var_p, mean_q, var_q):
    """KL(N(mean_p, var_p) ‖ N(mean_q, var_q)) in nats, elementwise."""
    return 0.5 * (np.log(var_q / var_p) + (var_p + (mean_p - mean_q) ** 2) / var_q - 1.0)


def klom(unlearned_margins, retrained_margins) -> np.ndarray:
    """KLoM per example as the reference code computes it (``compute_binned_KL_div`` called by
    ``kl_from_margins`` in data-unlearning-bench's eval.py), vectorised over examples:
    KL(unlearned ‖ retrained) of the two populations' margins (``margins``) binned in shared
    histograms. As there: both clipped to [−KLOM_CLIP, KLOM_CLIP]; KLOM_BINS equal bins from
    ``numpy.linspace`` over the joint [min, max] (max = min + 1 when they are equal); a margin
    falls in bin i when edge i ≤ margin < edge i + 1 (``numpy.digitize``), so margins equal
    to the joint maximum fall in no bin; each population's counts divided by its binned total;
    the retrained shares raised to KLOM_FLOOR where the unlearned share is positive; then
    ``scipy.stats.entropy``, which normalises both again. (N_u, E), (N_r, E) -> (E,); 0 = the
    same histogram.

    One difference: when every unlearned margin equals the joint maximum (a constant
    population at or above every retrained margin, as the no-op ``original`` gives), the
    reference bins none of them and returns NaN (0/0); here they count in the last bin, as
    ``numpy.histogram`` counts its right edge (KL = −ln of that bin's retrained share, floored
    and renormalised: ln(1 + 10⁵) when it holds no retrained margin). The reference's margins
    come from float32 logits (its bin edges are float32 then); here they are float64, so a
    margin within float32 rounding of an edge may fall in the next bin."""
    u, r = np.asarray(unlearned_margins, np.float64), np.asarray(retrained_margins, np.float64)
    check_finite(u, "unlearned population's margins")
    check_finite(r, "retrained population's margins")
    u, r = np.clip(u, -KLOM_CLIP, KLOM_CLIP), np.clip(r, -KLOM_CLIP, KLOM_CLIP)
    low = np.minimum(u.min(axis=0), r.min(axis=0))
    high = np.maximum(u.max(axis=0), r.max(axis=0))
    high = np.where(low >= high, low + 1, high)
    edges = np.linspace(low, high, KLOM_BINS + 1, axis=-1)                  # (E, bins + 1)
    p, q = _bin_shares(u, edges), _bin_shares(r, edges)
    empty = p.sum(axis=1) == 0
    p[empty, -1] = 1.0
    q = np.where(p > 0, np.maximum(q, KLOM_FLOOR), q)
    return scipy.stats.entropy(p, q, axis=1)


def _bin_shares(values, edges):
    """Share of each column's values (models, examples) in each bin of its row of ``edges``,
    binned as ``numpy.digitize`` places them (edges[i] ≤ v < edges[i + 1]); the divisor is the
    number binned, and a column with none binned gets zeros. -> (examples, bins)."""
    index = (values[:, :, None] >= edges[None]).sum(axis=2)      # numpy.digitize, per column
    counts = (index[:, :, None] == np.arange(1, edges.shape[1])).sum(axis=0)
    total = counts.sum(axis=1, keepdims=True)
    return counts / np.maximum(total, 1)


def klom_gaussian(unlearned_margins, retrained_margins) -> np.ndarray:
    """KLoM's Gaussian variant (a useful extra, not the reference; docs/metrics.md): KL(unlearned ‖
    retrained) between Gaussians fitted (mean, unbiased variance floored at VARIANCE_FLOOR) to
    the margins of each population, in closed form. (N_u, E), (N_r, E) -> (E,)."""
    u, r = np.asarray(unlearned_margins, np.float64), np.asarray(retrained_margins, np.float64)
    check_finite(u, "unlearned population's margins")
    check_finite(r, "retrained population's margins")
    u_mean, u_var = _fit(u)
    r_mean, r_var = _fit(r)
    return gaussian_kl(u_mean, u_var, r_mean, r_var)


def summarise(values) -> dict[str, float]:
    """Mean, median and 99th percentile (linear interpolation) of per-example values."""
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "median": float(np.median(v)),
            "p99": float(np.percentile(v, 99))}
