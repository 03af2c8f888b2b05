"""Helpers the class-forgetting methods for conditional diffusion models share (CA, SA,
EraseDiff, UCE): the forgotten class, the conditions a request erases and their anchors (on a
style × object grid, every pair with the forgotten style or object), the images of some
classes, a forget batch paired with a batch of other images, and a random other condition
per example."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..data.styles import FACTORS
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


def forgotten_factor(ctx: UnlearnContext) -> str | None:
    """"style" or "object" when the request forgets a whole factor value of a grid, else None."""
    return getattr(ctx.task, "forget_factor", None)


def erased_conditions(ctx: UnlearnContext, method: str) -> list[int]:
    """The conditions a request erases: its one class (or grid pair), or, for a style
    (object) request on a grid, every pair with the forgotten style (object)."""
    factor = forgotten_factor(ctx)
    if factor is None:
        return [forgotten_class(ctx, method)]
    grid = ctx.task.grid
    values = sorted(set(grid.factor_values(ctx.forget.targets, factor).tolist()))
    if len(values) != 1:
        raise UserError(f"{method} erases one {factor}; this forget set holds {factor}s {values}: "
                        "use a benchmark that forgets one style or one object")
    return [label for label in range(grid.num_classes)
            if grid.factor_values(label, factor) == values[0]]


def anchor_conditions(ctx: UnlearnContext, erased: list[int], chosen: int, method: str,
                      option: str) -> list[int]:
    """Each erased condition's anchor. One class: ``chosen`` (see ``other_class``). A style
    (object) request: the same pair in the anchor style (object), ``chosen`` a style (object)
    other than the forgotten one, or -1 the next one."""
    factor = forgotten_factor(ctx)
    if factor is None:
        return [other_class(ctx, erased[0], chosen, method, option)]
    grid = ctx.task.grid
    size = grid.factor_sizes[FACTORS.index(factor)]
    value = int(grid.factor_values(erased[0], factor))
    if chosen == -1:
        chosen = (value + 1) % size
    elif chosen == value or not 0 <= chosen < size:
        article = "an" if factor == "object" else "a"
        raise UserError(f"{method}: {option} must be {article} {factor} other than the forgotten "
                        f"{value}, in 0..{size - 1}, or -1; got {chosen}")
    if factor == "style":
        return [grid.label(chosen, grid.factor_values(c, "object")) for c in erased]
    return [grid.label(grid.factor_values(c, "style"), chosen) for c in erased]


def class_images(split, labels: list[int], name: str):
    """The examples of ``split`` whose label is one of ``labels``."""
    return split.subset(np.flatnonzero(np.isin(split.targets.numpy(), labels)), name)


def paired_batches(ctx: UnlearnContext, first, second, batch_size: int,
                   epochs: int) -> Iterator[tuple]:
    """``epochs`` shuffled epochs of ``first``, each batch with the next batch of an endlessly
    reshuffled ``second``."""
    others = endless_batches(ctx.task, second, batch_size, ctx.seed + 1)
    for batch in ctx.task.epochs(first, batch_size, epochs, ctx.seed):
        yield batch, next(others)


def random_other_conditions(ctx: UnlearnContext, batch) -> torch.Tensor:
    """Per example, from the batch's seed: a uniformly drawn class other than its own, or, for
    a style (object) request on a grid, its pair in another style (object)."""
    generator = torch.Generator().manual_seed(batch.seed + 2)
    if forgotten_factor(ctx) is not None:
        return ctx.task.wrong_conditions(batch.targets.cpu(), generator)
    num_classes = ctx.task.num_classes
    shift = torch.randint(1, num_classes, (len(batch),), generator=generator)
    return (batch.targets.cpu() + shift) % num_classes
