"""Bad Teacher / blindspot (Chundawat et al., AAAI 2023): distil from a competent teacher on
the retain set and from an incompetent (randomly initialised) teacher on the forget set."""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import zip_longest

from torch import nn

from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from ._shared import distill_kl, frozen_teacher, retain_subset, teacher_logits
from .base import UnlearnContext


@dataclass
class BadTeacherParams:
    epochs: int = param(2, ge=1)
    lr: float = param(1e-3, gt=0)
    batch_size: int = param(64, ge=1)
    temperature: float = param(1.0, gt=0)
    retain_fraction: float = param(0.6, gt=0, le=1)


def incompetent_teacher(ctx: UnlearnContext) -> nn.Module:
    """A randomly initialised model of the task's architecture, seeded by ``ctx.seed + 1``
    (deterministic; a different draw from the original's initialisation at seed ``ctx.seed``).
    Frozen, eval mode."""
    teacher = ctx.task.fresh_model(ctx.seed + 1).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def mixed_batches(task, forget, retain, batch_size: int, epochs: int, seed: int):
    """Pairs (forget batch, retain batch) that together cover forget ∪ retain once per epoch,
    each step holding ~``batch_size`` examples in the sets' proportions (the task-agnostic
    equivalent of shuffling the union into one loader). Either side may be None on the last
    steps."""
    steps = max(1, math.ceil((len(forget) + len(retain)) / batch_size))
    forget_bs = max(1, math.ceil(len(forget) / steps))
    retain_bs = max(1, math.ceil(len(retain) / steps))
    for epoch in range(epochs):
        yield from zip_longest(
            task.batches(forget, forget_bs, True, seed * 1000 + epoch),
            task.batches(retain, retain_bs, True, seed * 1000 + 500 + epoch))


@methods.register("bad_teacher", params=BadTeacherParams, tasks=("classification", "language"),
                  needs=("forget", "retain"), models=3)  # + the incompetent teacher
def bad_teacher(ctx: UnlearnContext, params: BadTeacherParams):
    """Bad Teacher: distil from θ₀ on retain data and from a random model on forget data.

    Student = a copy of θ₀; competent teacher = θ₀ (frozen, eval mode); incompetent teacher =
    ``task.fresh_model(seed + 1)``. The student minimises KL(teacher ‖ student) at
    temperature T, the teacher being the incompetent one for forget examples and the
    competent one for retain examples, over forget ∪ (a random ``retain_fraction`` of the
    retain set), mixed in every step. The KL is over the softmax of ``task.logits``' last
    dimension, averaged over the other dimensions (per token for language models).

    Published defaults (bad-teaching-unlearning repository): KL temperature 1, 30% of the
    retain set, 1 epoch, Adam lr 1e-4, batch 256. Here: T 1, batch 64, Adam lr 1e-3, 2 epochs
    over the forget set and 60% of the retain set. With ~120 forget examples an epoch is
    only 7-10 steps (the reference takes hundreds), and at lr 1e-4 the student barely moves
    off θ₀ (digits-class forget accuracy still 94%). At the published 30% the retain side
    (~320 examples) is too small to hold the student: retain/test accuracy drop 2-3 points
    (digits, 3 seeds); 60% keeps them within ~1 point and forgets as much (digits-class
    forget accuracy ~1%, Avg. Gap 1.5 vs 2.2)."""
    task = ctx.task
    student = ctx.copy_original()
    good = frozen_teacher(ctx)
    bad = incompetent_teacher(ctx)
    retain = retain_subset(ctx.retain, params.retain_fraction, ctx.seed)
    optimizer = make_optimizer(student.parameters(), "adam", params.lr)

    def loss_fn(pair):
        total, count = 0.0, 0
        for batch, teacher in zip(pair, (bad, good)):
            if batch is None:
                continue
            kl = distill_kl(task.logits(student, batch), teacher_logits(task, teacher, batch),
                            params.temperature)
            total = total + kl.mean() * len(batch)
            count += len(batch)
        return total / count

    batches = mixed_batches(task, ctx.forget, retain, params.batch_size, params.epochs, ctx.seed)
    optimise(student, optimizer, batches, loss_fn, ctx.budget)
    return student
