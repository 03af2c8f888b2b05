"""Forget requests: which training examples a deletion request names (seeded)."""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.cluster import KMeans

from ..data import Split
from ..errors import UserError
from ..specs import FORGET_KINDS, ForgetSpec


def select_forget(spec: ForgetSpec, train: Split, num_classes: int, seed: int,
                  features: Callable[[], np.ndarray] | None = None,
                  manipulated: np.ndarray | None = None,
                  residual_fit: Callable[[np.ndarray], np.ndarray] | None = None
                  ) -> np.ndarray:
    """Positions (into ``train``) of the examples to forget, sorted. Raises ``UserError`` for a
    request that names nothing, everything, an unknown class or an impossible fraction.

    ``features()`` gives one feature row per training example (for "subclass");
    ``manipulated`` the positions a corrective scenario manipulated (for "corrective");
    ``residual_fit(pool)`` how much better each pool example is still fitted once the
    ``against`` method has unlearned the whole pool (for "hardest", see ``select_hardest``)."""
    n = len(train)
    if spec.kind == "random":
        positions = np.random.default_rng(seed).choice(n, size=request_size(spec, n),
                                                       replace=False)
    elif spec.kind == "class":
        if spec.class_id is None or not 0 <= spec.class_id < num_classes:
            raise UserError(f"unknown class {spec.class_id!r}: classes are 0..{num_classes - 1}")
        positions = np.flatnonzero(train.targets.numpy() == spec.class_id)
        if len(positions) == 0:
            raise UserError(f"class {spec.class_id} has no training examples to forget")
        if len(positions) == n:
            raise UserError("the forget set would hold the whole training set; nothing would be "
                            "left to retain")
    elif spec.kind == "subclass":
        positions = select_subclass(spec, train, num_classes, seed, features)
    elif spec.kind == "corrective":
        if manipulated is None or len(manipulated) == 0:
            raise UserError("a corrective forget request needs a manipulation: set "
                            "manipulation to label_swap or backdoor")
        if not 0.0 < spec.known_fraction <= 1.0:
            raise UserError(f"known_fraction must lie in (0, 1], got {spec.known_fraction}")
        count = max(1, int(round(spec.known_fraction * len(manipulated))))
        positions = np.random.default_rng(seed + 1).choice(manipulated, count, replace=False)
    elif spec.kind == "hardest":
        positions = select_hardest(spec, n, seed, residual_fit)
    else:
        raise UserError(f"unknown forget kind {spec.kind!r}: use {', '.join(FORGET_KINDS)}")
    return np.sort(positions).astype(np.int64)


def request_size(spec: ForgetSpec, n: int) -> int:
    """How many of ``n`` training examples a "random" or "hardest" request names: ``count``,
    else ``fraction`` of ``n`` (rounded)."""
    if spec.count is not None:
        count = spec.count
        if count <= 0:
            raise UserError(f"forget count must be positive, got {count}")
    else:
        fraction = spec.fraction
        if fraction is None or not 0.0 < fraction < 1.0:
            raise UserError(f"forget fraction must lie strictly between 0 and 1, got {fraction}")
        count = int(round(fraction * n))
    if count == 0:
        raise UserError(f"the forget set is empty ({spec.fraction} of {n} examples); "
                        "ask for a larger fraction or count")
    if count >= n:
        raise UserError(f"the forget set would hold the whole training set ({count} of {n}); "
                        "nothing would be left to retain")
    return count


def select_hardest(spec: ForgetSpec, n: int, seed: int,
                   residual_fit: Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
    """The worst-case forget set for method ``spec.against``: a one-shot proxy of Fan et al.
    (2024), "Challenging Forgets: Unveiling the Worst-Case Forget Sets in Machine Unlearning".

    The paper solves a bi-level problem over per-sample weights w (w_i in [0, 1], sum w = k)
    on the whole training set: the lower level unlearns the w-weighted forget set from the
    original model; the upper level lowers sum_i w_i * loss_i(unlearned model) (plus an l2
    term on w) by projected gradient steps on w, so weight moves to the examples the
    unlearned model still fits; after some alternations the k largest weights are the set.

    The proxy here does one alternation, from uniform weights on a candidate pool: draw a
    seeded pool of ``round(pool_factor * k)`` training examples (at most n - 1), let
    ``against`` unlearn the whole pool once from the original, and keep the k pool examples
    with the largest ``residual_fit(pool)``: their loss under a model trained without the pool
    minus their loss under the unlearned model (ties: the earlier position). Differences from
    the paper:

    - the score is relative to a model that never saw the pool, not the unlearned loss
      alone: alone, the lowest losses belong to the prototypical examples every model fits,
      the retrained reference included, so that set is easy to match (on digits with GA its
      forget-accuracy gap to the reference was 0, against 1.6-4.9 points for random sets);
      relative to a held-out model it picks what unlearning failed to erase;
    - no iterated re-weighting: the chosen set is not unlearned and scored again;
    - the search sees a pool, not the whole training set, and the method unlearns the pool,
      a superset of the final request, so a method whose effect depends on the forget set's
      size (GA's steps per epoch) is scored at a larger size than it is evaluated at.

    Cost: one unlearning run and one training run (cached like a reference) per scenario."""
    count = request_size(spec, n)
    if spec.against is None:
        raise UserError("forget_kind=hardest needs the method whose worst case to find: "
                        "set against=METHOD, e.g. against=ga")
    if not spec.pool_factor >= 1.0:
        raise UserError(f"pool_factor must be at least 1 (the pool holds the forget set), "
                        f"got {spec.pool_factor}")
    if residual_fit is None:
        raise UserError("a hardest forget request needs a classification benchmark (it runs "
                        f"{spec.against!r} on a candidate pool)")
    pool_size = min(n - 1, round(spec.pool_factor * count))
    pool = np.sort(np.random.default_rng(seed + 3).choice(n, size=pool_size, replace=False))
    scores = np.asarray(residual_fit(pool), dtype=np.float64)
    if scores.shape != (pool_size,) or not np.isfinite(scores).all():
        raise UserError(f"method {spec.against!r} left non-finite losses on the candidate pool; "
                        "choose gentler hyperparameters for it or another method")
    return pool[np.argsort(-scores, kind="stable")[:count]]


def select_subclass(spec: ForgetSpec, train: Split, num_classes: int, seed: int,
                    features: Callable[[], np.ndarray] | None) -> np.ndarray:
    """One cluster of one class: seeded k-means on the class's feature rows; clusters ordered
    by size (largest first, ties by smallest member position) and ``spec.group`` taken."""
    if spec.class_id is None or not 0 <= spec.class_id < num_classes:
        raise UserError(f"unknown class {spec.class_id!r}: classes are 0..{num_classes - 1}")
    members = np.flatnonzero(train.targets.numpy() == spec.class_id)
    if spec.groups < 2 or len(members) < spec.groups:
        raise UserError(f"cannot split class {spec.class_id} ({len(members)} examples) into "
                        f"{spec.groups} groups; use groups >= 2 and at most the class size")
    if not 0 <= spec.group < spec.groups:
        raise UserError(f"group must be in 0..{spec.groups - 1}, got {spec.group}")
    if features is None:
        raise UserError("subclass forgetting needs the original model's features")
    rows = np.asarray(features())[members]
    labels = KMeans(spec.groups, random_state=seed, n_init=10).fit_predict(rows)
    clusters = sorted((members[labels == c] for c in range(spec.groups)),
                      key=lambda group: (-len(group), group.min()))
    return clusters[spec.group]
