"""Helpers the class-forgetting methods for conditional diffusion models share (CA, SA,
EraseDiff, UCE): the forgotten class, one class's images, a forget batch paired with a batch
of other images, and a random other condition per example."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..errors import UserError
from ._shared import endless_batches
from .base import UnlearnContext


def forgotten_class(ctx: UnlearnContext, method: str) -> int:
    """The one class the forget set holds (these methods erase a concept, not examples)."""
    classes = sorted(set(ctx.forget.targets.tolist()))
    if len(classes) != 1:
        raise UserError(f"{method} erases one class; this forget set holds classes {classes}: "
                        "use a benchmark that forgets a whole class (digits-gen-class)")
    return classes[0]


def other_class(ctx: UnlearnContext, forgotten: int, chosen: int, method: str,
                option: str) -> int:
    """``chosen`` (a class other than ``forgotten``), or the next class when it is -1."""
    if chosen == -1:
        return (forgotten + 1) % ctx.task.num_classes
    if chosen == forgotten or not 0 <= chosen < ctx.task.num_classes:
        raise UserError(f"{method}: {option} must be a class other than the forgotten "
                        f"{forgotten}, in 0..{ctx.task.num_classes - 1}, or -1; got {chosen}")
    return chosen


def class_images(split, label: int, name: str):
    return split.subset(np.flatnonzero(split.targets.numpy() == label), name)


def paired_batches(ctx: UnlearnContext, first, second, batch_size: int,
                   epochs: int) -> Iterator[tuple]:
    """``epochs`` shuffled epochs of ``first``, each batch with the next batch of an endlessly
    reshuffled ``second``."""
    others = endless_batches(ctx.task, second, batch_size, ctx.seed + 1)
    for batch in ctx.task.epochs(first, batch_size, epochs, ctx.seed):
        yield batch, next(others)


def random_other_conditions(batch, forgotten: int, num_classes: int) -> torch.Tensor:
    """A uniformly drawn class other than ``forgotten`` per example, from the batch's seed."""
    generator = torch.Generator().manual_seed(batch.seed + 2)
    shift = torch.randint(1, num_classes, (len(batch),), generator=generator)
    return (forgotten + shift) % num_classes
