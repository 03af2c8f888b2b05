"""The decision-rule families behind the NeurIPS 2023 challenge's per-example ε, counted
exactly on the reference code's threshold grids (google-deepmind/unlearning_evaluation,
metric.py) and vectorised over examples: each function takes scores as (examples, models)
rows and returns each row's best ε (NaN when every rule is discarded).

Counting rather than comparing: the thresholds are ``numpy.linspace`` grids, so a score's
place among them follows from arithmetic on the spacing; scores within ``NEAR_THRESHOLD``
steps of a threshold (the peakier population's minimum always is, by construction of the
double-threshold grid) are placed by comparing them with the thresholds themselves, computed
as NumPy computes them. The counts are therefore those of the direct comparisons."""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

THRESHOLDS_PER_UNIT = 100
BUFFER = 2.0  # double thresholds: how far (in units of s) the rules reach around the peakier one
LEFT_THRESHOLDS = math.ceil(2 * BUFFER * THRESHOLDS_PER_UNIT)  # per right threshold: 400
# A score this close (in threshold steps) to a threshold is placed by exact comparison;
# farther ones by arithmetic, whose rounding error is below 1e-8 steps for |s| < 1e3.
NEAR_THRESHOLD = 1e-6


def single_threshold_best(pos, neg, delta):
    """Best ε per row over thresholds evenly spaced on [min, max] of the pooled scores, 100
    per unit; a model is predicted positive when its score is >= the threshold."""
    pooled = np.concatenate([pos, neg], axis=1)
    low, high = pooled.min(axis=1), pooled.max(axis=1)
    num = np.ceil((high - low) * THRESHOLDS_PER_UNIT).astype(np.int64)
    width = int(num.max())
    false_negatives = count_below(pos, low, high, num, width, inclusive=False)
    false_positives = neg.shape[1] - count_below(neg, low, high, num, width, inclusive=False)
    # thresholds past a row's own count read fn = all, fp = none: discarded by the rule table
    return _best(false_negatives, false_positives, pos.shape[1], neg.shape[1], delta)


def double_threshold_best(peaky, other, delta, dtype=np.float64):
    """Best ε per row over intervals [left, right] that predict the peakier population: its
    range w is the width; right thresholds 100 per unit from (min + w − 2) to (max + 2) of the
    peakier scores; for each right r, 400 left thresholds evenly spaced on [r − w − 2, r − w + 2].
    (The right grid spans 4 units up to rounding, so it holds 400 or 401 thresholds.) Rates
    and ε in ``dtype`` (see ``rule_table``)."""
    low, high = peaky.min(axis=1), peaky.max(axis=1)
    w = high - low
    right_low, right_high = low + w - BUFFER, high + BUFFER
    num = np.ceil((right_high - right_low) * THRESHOLDS_PER_UNIT).astype(np.int64)
    best = np.empty(len(peaky))
    for count in np.unique(num):
        rows = num == count
        best[rows] = _double_best(peaky[rows], other[rows], right_low[rows], right_high[rows],
                                  w[rows], int(count), delta, dtype)
    return best


def _double_best(peaky, other, right_low, right_high, w, count, delta, dtype):
    """``double_threshold_best`` for rows whose right grid has ``count`` thresholds.

    Left threshold j of right threshold i lies (up to rounding) on a lattice:
    l_ij = l_00 + i·S + j·s with S = 4/(count − 1) and s = 4/399, so in units of
    s/((count − 1)/g), g = gcd(399, count − 1), l_ij is at the integer i·399/g + j·(count − 1)/g;
    #(scores < l_ij) is a cumulative histogram read at those integers."""
    i = np.arange(count)
    right = linspace_at(right_low[:, None], right_high[:, None], count, i[None, :])  # (E, R)
    left_low, left_high = (right - w[:, None]) - BUFFER, (right - w[:, None]) + BUFFER
    g = math.gcd(LEFT_THRESHOLDS - 1, count - 1)
    per_j = (count - 1) // g
    lattice = i[:, None] * ((LEFT_THRESHOLDS - 1) // g) + np.arange(LEFT_THRESHOLDS) * per_j
    top = int(lattice[-1, -1]) + 1
    origin, spacing = left_low[:, :1], (left_high[:, :1] - left_low[:, :1]) / (LEFT_THRESHOLDS - 1)
    inside = []
    for scores in (peaky, other):
        upto_right = count_below(scores, right_low, right_high, np.full(len(scores), count),
                                 count, inclusive=True)                             # (E, R)
        units = (scores - origin) / spacing * per_j
        nearest = np.rint(units)
        near = ~(np.abs(units - nearest) >= NEAR_THRESHOLD * per_j)
        # a score counts below lattice point k when ceil(units) <= k; a score at a lattice
        # point is taken as below it here, and corrected where its threshold is not above it
        position = np.clip(np.where(near, nearest, np.ceil(units)), 0, top).astype(np.int64)
        index = (np.arange(len(scores))[:, None] * (top + 1) + position).ravel()
        below = np.bincount(index, minlength=len(scores) * (top + 1)).reshape(
            len(scores), top + 1).cumsum(axis=1, dtype=np.int32)
        if per_j == 1 and g == LEFT_THRESHOLDS - 1:    # lattice point i + j: a sliding window
            at_lattice = sliding_window_view(below, LEFT_THRESHOLDS, axis=1)[:, :count]
        else:
            at_lattice = np.take(below, lattice, axis=1)
        count_in = upto_right.astype(np.int32)[..., None] - at_lattice               # (E, R, L)
        row, col = np.nonzero(near)
        _correct_at_lattice(count_in, row, scores[row, col], nearest[row, col].astype(np.int64),
                            left_low, left_high, per_i=(LEFT_THRESHOLDS - 1) // g, per_j=per_j)
        inside.append(np.maximum(count_in, 0, out=count_in))
    inside[0] -= peaky.shape[1]   # −(false negatives) of the peakier population
    return _best(np.negative(inside[0], out=inside[0]), inside[1], peaky.shape[1],
                 other.shape[1], delta, dtype)


def _correct_at_lattice(count_in, row, value, point, left_low, left_high, per_i, per_j):
    """Scores at lattice ``point`` were counted below every left threshold there: where the
    threshold, computed as NumPy's linspace computes it, is in fact at or below the score,
    the score is inside the interval instead (one more in ``count_in``)."""
    rights = np.arange(count_in.shape[1])
    steps = point[:, None] - rights[None, :] * per_i              # = j * per_j at the point
    cells = (steps >= 0) & (steps % per_j == 0) & (steps // per_j < count_in.shape[2])
    which, i = np.nonzero(cells)
    j, e = steps[which, i] // per_j, row[which]
    left = linspace_at(left_low[e, i], left_high[e, i], LEFT_THRESHOLDS, j)
    hit = left <= value[which]
    np.add.at(count_in, (e[hit], i[hit], j[hit]), 1)


def linspace_at(start, stop, num, k):
    """Element ``k`` of ``numpy.linspace(start, stop, num)``, computed as NumPy does:
    k·((stop − start)/(num − 1)) + start, the last one exactly ``stop``."""
    step = (stop - start) / np.maximum(num - 1, 1)
    return np.where((k == num - 1) & (num > 1), stop, k * np.where(num > 1, step, 0.0) + start)


def count_below(values, start, stop, num, width, inclusive):
    """counts[..., k] = #(values[...] < t_k), or <= with ``inclusive``, for
    t = linspace(start[...], stop[...], num[...]); ``values`` (..., n) broadcasts against
    the thresholds' (...); columns k >= num[...] count every value.

    Each value's position among the thresholds (how many of them count it) comes from
    arithmetic on the even spacing, exact comparisons settle the values close to a
    threshold, and the counts are a cumulative histogram of the positions."""
    start, stop, num = start[..., None], stop[..., None], num[..., None]
    step = (stop - start) / np.maximum(num - 1, 1)
    invalid = (num < 2) | ~(step > 0)   # a single threshold, or none apart: compare them all
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = (values - start) / step
        near = ~(np.abs(steps - np.rint(steps)) >= NEAR_THRESHOLD) | invalid
    position = np.where(invalid, -1.0, np.floor(steps))
    position += 1
    position = np.clip(position, 0, num, out=position).astype(np.int64)
    _settle(position, near, np.broadcast_to(values, near.shape), start, stop, num, inclusive)
    rows = position.reshape(-1, position.shape[-1])
    index = (np.arange(len(rows))[:, None] * (width + 1) + rows).ravel()
    histogram = np.bincount(index, minlength=len(rows) * (width + 1))
    counts = histogram.reshape(len(rows), width + 1).cumsum(axis=1)[:, :width]
    return counts.reshape(position.shape[:-1] + (width,))


def _settle(position, near, values, start, stop, num, inclusive):
    """Exact positions of the ``near`` values: move up while the next threshold counts the
    value (t <= v for a strict count, t < v for an inclusive one), down while the last does
    not."""
    where = np.nonzero(near)
    shape = near.shape
    v, a, b, m = (np.broadcast_to(x, shape)[where] for x in (values, start, stop, num))
    p = position[where]
    counts = (lambda t: t < v) if inclusive else (lambda t: t <= v)
    while True:
        up = (p < m) & counts(linspace_at(a, b, m, p))
        down = (p > 0) & ~counts(linspace_at(a, b, m, p - 1))
        if not (up.any() or down.any()):
            break
        p += up.astype(np.int64) - down
    position[where] = p


def rule_table(n_positive, n_negative, delta, dtype=np.float64):
    """ε of a rule by its (false negatives, false positives) counts: ∞ when both are 0, NaN
    (discarded) when only one is, else max(log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) −
    log FPR) over the terms that are defined, clipped at 0 (NaN when neither is). Rates, 1 − δ
    and ε in ``dtype``: float32 is how the reference code computes them (rates as torch means
    of float32 indicators, then NumPy on those float32 arrays)."""
    fnr = np.arange(n_positive + 1, dtype=dtype)[:, None] / dtype(n_positive)
    fpr = np.arange(n_negative + 1, dtype=dtype)[None, :] / dtype(n_negative)
    keep = dtype(1 - delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.clip(np.fmax(np.log(keep - fpr) - np.log(fnr),
                              np.log(keep - fnr) - np.log(fpr)), dtype(0), None)
    eps[(fnr == 0) != (fpr == 0)] = np.nan
    eps[0, 0] = np.inf
    return eps


def _best(false_negatives, false_positives, n_positive, n_negative, delta, dtype=np.float64):
    """The largest rule ε of each row (rules along the other axes), NaN if all are discarded."""
    index = false_negatives * np.int32(n_negative + 1)
    index += false_positives
    eps = rule_table(n_positive, n_negative, delta, dtype).ravel()[index.ravel()]
    return np.fmax.reduce(eps.reshape(len(index), -1), axis=1)
