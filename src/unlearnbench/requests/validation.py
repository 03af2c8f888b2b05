"""The validation forget request a benchmark's hyperparameters are tuned on (``unlearnbench
tune``): another request of the same kind, disjoint from the evaluation request, so that the
choice is never made on the examples it is then scored on.

A benchmark variant names it, ``NAME[validation=1]`` (see ``scenarios.get_spec``): its
scenario has the same data, model, recipe and original model as ``NAME`` (the original does
not depend on the request, so the cache shares it) and its own retrained reference, trained
without the validation forget set.

- "random": as many examples as the evaluation request, drawn (seeded with the same seed on
  a different stream, ``np.random.default_rng([seed, VALIDATION_STREAM])``) from the
  evaluation request's retain positions: disjoint from the evaluation forget set of the same
  seed (forget sets of other seeds may overlap it, as they overlap each other);
- "class": the next class, ``(class_id + 1) % num_classes``;
- "subclass": the next cluster of the same class, ``(group + 1) % groups``.

Other kinds (corrective, worst-case) have no validation request: their forget set is what the
benchmark is about, and a second one would not be the same kind of request."""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..data import Split
from ..errors import UserError
from ..specs import ForgetSpec
from .forget import select_forget

# Entropy appended to the seed for the random validation draw: a stream of its own, unlike
# the evaluation draw (``default_rng(seed)``) and the corrective / sequential ones (seed + 1, 2).
VALIDATION_STREAM = 7
# The forget kinds that have a validation request.
VALIDATION_KINDS = ("random", "class", "subclass")


def select_validation(spec: ForgetSpec, train: Split, num_classes: int, seed: int,
                      evaluation: np.ndarray,
                      features: Callable[[], np.ndarray] | None = None) -> np.ndarray:
    """Positions (into ``train``, sorted) of the validation forget set of request ``spec``,
    whose evaluation forget set is ``evaluation`` (positions from ``select_forget``)."""
    evaluation = np.asarray(evaluation, np.int64)
    if spec.kind == "random":
        pool = np.setdiff1d(np.arange(len(train)), evaluation)
        if len(evaluation) >= len(pool):
            raise UserError(f"no validation request: the retain set ({len(pool)} examples) cannot "
                            f"give {len(evaluation)} forget examples and keep some to retain; "
                            "tune on a smaller forget fraction")
        rng = np.random.default_rng([seed, VALIDATION_STREAM])
        positions = rng.choice(pool, size=len(evaluation), replace=False)
    elif spec.kind == "class":
        if num_classes < 2 or spec.class_id is None:
            raise UserError("no validation request: a class request needs another class to tune on")
        other = dataclasses.replace(spec, class_id=(spec.class_id + 1) % num_classes)
        positions = select_forget(other, train, num_classes, seed)
    elif spec.kind == "subclass":
        other = dataclasses.replace(spec, group=(spec.group + 1) % spec.groups)
        positions = select_forget(other, train, num_classes, seed, features=features)
    else:
        raise UserError(f"forget kind {spec.kind!r} has no validation request to tune on; tune a "
                        "random, class or subclass benchmark instead")
    return np.sort(positions).astype(np.int64)
