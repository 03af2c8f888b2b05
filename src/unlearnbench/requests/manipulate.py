"""Training-data manipulations for corrective unlearning (Goel et al., "Corrective Machine
Unlearning"): label swaps between two classes and a backdoor patch trigger. Each returns the
manipulated training split, the positions it changed and clean evaluation splits that show
the manipulation's effect."""
from __future__ import annotations

import numpy as np
import torch

from ..data import Split
from ..errors import UserError


def add_trigger(inputs: torch.Tensor, size: int = 2) -> torch.Tensor:
    """The backdoor trigger: a bright ``size``×``size`` patch in the bottom-right corner."""
    patched = inputs.clone()
    patched[..., -size:, -size:] = 1.0
    return patched


def _choose(candidates: np.ndarray, fraction: float, seed: int, what: str) -> np.ndarray:
    if not 0.0 < fraction <= 1.0:
        raise UserError(f"{what} must lie in (0, 1], got {fraction}")
    count = int(round(fraction * len(candidates)))
    if count == 0:
        raise UserError(f"{what} {fraction} manipulates no example; ask for a larger fraction")
    return np.sort(np.random.default_rng(seed).choice(candidates, count, replace=False))


def swap_labels(train: Split, test: Split, classes: tuple[int, ...], fraction: float,
                seed: int) -> tuple[Split, np.ndarray, dict[str, Split]]:
    """Give ``fraction`` of the training examples of class a the label b and vice versa.
    Evaluation split "affected_test": the test examples of a and b with their clean labels."""
    if len(classes) != 2 or classes[0] == classes[1]:
        raise UserError(f"label_swap needs two different classes, got {list(classes)}")
    a, b = classes
    labels = train.targets.numpy()
    candidates = np.flatnonzero((labels == a) | (labels == b))
    if len(candidates) == 0:
        raise UserError(f"classes {a} and {b} have no training examples")
    positions = _choose(candidates, fraction, seed, "manipulated_fraction")
    targets = train.targets.clone()
    index = torch.from_numpy(positions)
    targets[index] = torch.where(targets[index] == a, torch.tensor(b), torch.tensor(a))
    affected = np.flatnonzero(np.isin(test.targets.numpy(), classes))
    return (Split(train.name, train.inputs, targets, train.ids), positions,
            {"affected_test": test.subset(affected, "affected_test")})


def backdoor(train: Split, test: Split, target_class: int, fraction: float, seed: int
             ) -> tuple[Split, np.ndarray, dict[str, Split]]:
    """Patch the trigger into ``fraction`` of the training examples (of other classes) and
    label them ``target_class``. Evaluation split "triggered_test": test examples of other
    classes with the trigger and their clean labels."""
    labels = train.targets.numpy()
    positions = _choose(np.flatnonzero(labels != target_class), fraction, seed,
                        "manipulated_fraction")
    index = torch.from_numpy(positions)
    inputs, targets = train.inputs.clone(), train.targets.clone()
    inputs[index] = add_trigger(inputs[index])
    targets[index] = target_class
    others = test.subset(np.flatnonzero(test.targets.numpy() != target_class), "triggered_test")
    triggered = Split("triggered_test", add_trigger(others.inputs), others.targets, others.ids)
    return Split(train.name, inputs, targets, train.ids), positions, {"triggered_test": triggered}
