"""NegGrad+ (advanced NegGrad): descend on the retain set while ascending on the forget set."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from ._shared import endless_batches
from .base import UnlearnContext


@dataclass
class NegGradPlusParams:
    epochs: int = param(5, ge=1)
    lr: float = param(0.01, gt=0)
    batch_size: int = param(64, ge=1)
    momentum: float = param(0.9, ge=0, lt=1)
    # The retain term's weight; the forget term's is 1 - beta (beta = 1: fine-tuning).
    beta: float = param(0.99, ge=0, le=1, search=(0.9, 0.999))


def forget_cycle(ctx: UnlearnContext, batch_size: int) -> Iterator:
    """The forget set's batches, endlessly, with seeds apart from the retain epochs' seeds."""
    return endless_batches(ctx.task, ctx.forget, batch_size, (ctx.seed + 1) * 1_000_003)


def paired_batches(ctx: UnlearnContext, batch_size: int, epochs: int) -> Iterator[tuple]:
    """(retain batch, forget batch) pairs: each epoch walks the retain set once (shuffled as
    ``task.epochs`` shuffles it) and draws the next forget batch from an endless cycle; the
    forget batch is None when the forget set is empty."""
    forget = forget_cycle(ctx, batch_size)
    for epoch in range(epochs):
        for retain_batch in ctx.task.batches(ctx.retain, batch_size, True, ctx.seed * 1000 + epoch):
            yield retain_batch, next(forget, None)


@methods.register("neggrad_plus", params=NegGradPlusParams,
                  tasks=("classification", "language", "regression"),
                  needs=("forget", "retain"))
def neggrad_plus(ctx: UnlearnContext, params: NegGradPlusParams):
    """NegGrad+: minimise β·NLL(retain) − (1 − β)·NLL(forget) on paired retain/forget batches.

    As in SCRUB's code base (Kurmanji et al., whose "NegGrad+" is MUFAC's "advanced NegGrad"),
    each epoch iterates over the retain batches and pairs each with the next batch of a
    cycled (reshuffled every pass) forget loader; the loss is β times the retain batch's mean
    NLL minus (1 − β) times the forget batch's. Published defaults: SCRUB's small-scale
    notebook uses β = 0.95, 10 epochs, lr 0.01 (SGD, plus an L2 pull toward θ₀); its
    large-scale tuning goes up to β = 0.999. Chosen here: β = 0.99. On the digits benchmarks
    (a ~120-example forget set cycled ~9 times an epoch, so the ascent term is applied far
    more often per forget example than at CIFAR scale) β = 0.95 and 0.97 let the unbounded
    ascent term collapse the model when a whole class is forgotten (retain accuracy 22-95%,
    seeds 0-2), while β = 0.995-0.999 behave like plain fine-tuning and leave a forgotten
    class at ~75-85% accuracy; β = 0.99 forgets the class (UA 99-100%, Avg. Gap ≈ 0.4) and
    does at least as well as FT on random forgetting. The safe β grows with the number of
    steps: on MNIST (one epoch, ~700 steps) β ≤ 0.995 collapses the model on class
    forgetting and β = 0.999 (the large-scale value) is right, so benchmarks with large
    forget sets should set it in their ``method_params``. Epochs 5, lr 0.01, momentum 0.9
    follow FT's scaling in this library. No L2 pull toward θ₀ (FT here has none either).
    With β = 1 this is exactly fine-tuning on the retain set.

    Cost: every step passes a retain and a forget batch, so 5 epochs spend 0.50 of digits'
    retraining (in examples passed, ``run --budget``), over the 0.25 the built-in defaults aim
    at; kept because β = 0.99 was chosen at 5 epochs (above), and ``--budget 0.25`` caps it
    (Avg. Gap 1.55 on digits-random10 at 0.25 against 1.80 at 0.05: docs/benchmarks.md)."""
    model = ctx.copy_original()
    optimizer = make_optimizer(model.parameters(), "sgd", params.lr, params.momentum)
    beta = params.beta

    def loss(pair):
        retain_batch, forget_batch = pair
        value = beta * ctx.task.nll(model, retain_batch).mean()
        if forget_batch is not None:
            value = value - (1.0 - beta) * ctx.task.nll(model, forget_batch).mean()
        return value

    optimise(model, optimizer, paired_batches(ctx, params.batch_size, params.epochs), loss,
             ctx.budget)
    return model
