"""Population scores: a method run with N seeds against N retrained models, per example.

Definitions: ../shared/reference/metrics.md, "NeurIPS 2023 Machine Unlearning Challenge
score" (reference code google-deepmind/unlearning_evaluation, metric.py and main.py) and
"Population statistics beyond the challenge" (U-LiRA, KLoM). Arrays are (models, examples)
and every computation is float64 NumPy, vectorised over examples and decision thresholds.

Where this differs from the reference code:
- single-threshold grids are float64 ``numpy.linspace`` (the reference builds them with
  ``torch.linspace`` in the default float32) and the rates and ε are float64 (float32 there);
  a difference needs a model's score within float32 rounding of a threshold;
- both populations constant (the reference divides 0 by 0 and then fails its own assertion):
  ε = 0 when they hold the same value, ``EPSILON_CAP`` when they differ;
- an example whose every decision rule is discarded (the reference asserts this never
  happens): ε = 0, no rule of the family tells the populations apart.

Reading F: even two populations from one distribution rarely score 1. A threshold with k
models of one population and one of the other above it scores ε ≈ ln(k − N·δ) whatever N,
so with δ = 1e-5 such tail counts give ε ≈ 1-1.5 and F ≈ 0.2 at any affordable N; F tends to
1 only when N·δ ≫ 1 (tests/test_population_stats.py). F is also comparable only at equal N:
N sets the number of buckets, ⌈ln(N − 1)⌉ / 0.5.
"""
from __future__ import annotations

import math

import numpy as np

from .challenge_rules import double_threshold_best, single_threshold_best

DELTA = 1e-5
EPSILON_CAP = 50.0
RANGE_RATIO_CAP = 0.01  # (smaller range) / (larger range) below this: ε = EPSILON_CAP outright
BUCKET_WIDTH = 0.5
# Gaussian fits (U-LiRA, KLoM) floor the variance here: a method whose models all agree (the
# no-op `original`) has zero spread, and σ ≥ 1e-3 (in units of s or of the margin) keeps the
# likelihoods and the KL finite while still far below any real seed-to-seed spread.
VARIANCE_FLOOR = 1e-6
# Examples per chunk: each holds ~160k double-threshold rules (a few arrays of that size).
EXAMPLES_PER_CHUNK = 12


def logit_scaled_confidence(logits, labels) -> np.ndarray:
    """s = log p_y − log Σ_{k≠y} p_k per example (LiRA's logit scaling), softmax in float64
    after subtracting the largest logit, 1e-45 added inside both logs. ``logits`` (..., C),
    ``labels`` (...) -> (...)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    correct = np.take_along_axis(p, _label_index(labels, z), axis=-1)[..., 0]
    wrong = np.where(_label_mask(labels, z), 0.0, p).sum(axis=-1)
    return np.log(correct + 1e-45) - np.log(wrong + 1e-45)


def margins(logits, labels) -> np.ndarray:
    """Correct-class logit minus the largest other logit (KLoM's margin), (..., C) -> (...)."""
    z = np.asarray(logits, np.float64)
    correct = np.take_along_axis(z, _label_index(labels, z), axis=-1)[..., 0]
    return correct - np.where(_label_mask(labels, z), -np.inf, z).max(axis=-1)


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


def example_epsilons(unlearned, retrained, delta: float = DELTA) -> np.ndarray:
    """The challenge's per-example ε from the logit-scaled confidences of the unlearned
    (N_u, E) and retrained (N_r, E) populations (metrics.md steps 2-4): the best privacy
    loss over single- and double-threshold decision rules, clipped to [0, EPSILON_CAP]."""
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
    eps = np.where(capped, EPSILON_CAP, 0.0)
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
                best = np.fmax(single_threshold_best(pos[:, part].T, neg[:, part].T, delta),
                               double_threshold_best(peaky[:, part].T, other[:, part].T, delta))
                eps[part] = np.where(np.isnan(best), 0.0, best)
    return np.clip(eps, 0.0, EPSILON_CAP)


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
    """KLoM per example: KL(unlearned ‖ retrained) between Gaussians fitted (mean, unbiased
    variance floored at VARIANCE_FLOOR) to the margins of each population. (N_u, E), (N_r, E)
    -> (E,); 0 = the same distribution. (The closed form, one of metrics.md's options; the
    data-unlearning-bench code bins both populations' margins into shared histograms.)"""
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
