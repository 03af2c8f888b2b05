"""Data sets (each module registers loaders with ``@datasets.register``) and the array types
they return. Forget-set selection lives in ``requests/forget.py``."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Split:
    """One named split of a data set: inputs, integer labels, and the ids of its examples
    (row numbers in the data set's training pool, or in its test set for "test")."""

    name: str
    inputs: torch.Tensor
    targets: torch.Tensor
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, positions: np.ndarray, name: str | None = None) -> "Split":
        positions = np.asarray(positions, dtype=np.int64)
        index = torch.from_numpy(positions)
        return Split(name or self.name, self.inputs[index], self.targets[index], self.ids[positions])


@dataclass(frozen=True)
class DataBundle:
    """A loaded data set: training pool, validation and test splits (as published where a
    publication fixes them, otherwise carved deterministically)."""

    name: str
    train: Split
    validation: Split
    test: Split
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.inputs.shape[1:])

    def fingerprint(self) -> str:
        """Content hash of every array, so cached models trained on other data never match."""
        digest = hashlib.sha256(self.name.encode())
        for split in (self.train, self.validation, self.test):
            digest.update(split.inputs.numpy().tobytes())
            digest.update(split.targets.numpy().tobytes())
        return digest.hexdigest()[:16]


def make_split(name: str, inputs, targets, ids=None) -> Split:
    inputs = torch.as_tensor(np.ascontiguousarray(inputs), dtype=torch.float32)
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    ids = np.arange(len(targets), dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    return Split(name, inputs, targets, ids)


def carve_validation(name: str, train_x, train_y, test_x, test_y, num_classes: int,
                     fraction: float = 0.1, seed: int = 0) -> DataBundle:
    """Split a published training set into training pool and validation, stratified by class
    and fixed by ``seed`` (not the run seed: every run sees the same validation set)."""
    train_y = np.asarray(train_y)
    rng = np.random.default_rng(seed)
    validation = []
    for label in np.unique(train_y):
        members = np.flatnonzero(train_y == label)
        take = max(1, int(round(fraction * len(members))))
        validation.extend(rng.choice(members, size=take, replace=False).tolist())
    validation = np.sort(np.asarray(validation, dtype=np.int64))
    keep = np.setdiff1d(np.arange(len(train_y)), validation)
    train_x = np.asarray(train_x)
    return DataBundle(
        name,
        make_split("train", train_x[keep], train_y[keep]),
        make_split("validation", train_x[validation], train_y[validation]),
        make_split("test", test_x, test_y),
        num_classes,
    )
