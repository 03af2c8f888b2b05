"""Gradient ascent on the forget set (GA, NegGrad)."""
from dataclasses import dataclass

from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from .base import UnlearnContext


@dataclass
class GradientAscentParams:
    epochs: int = param(5, ge=1)
    lr: float = param(0.002, gt=0)
    batch_size: int = param(64, ge=1)
    momentum: float = param(0.9, ge=0, lt=1)


@methods.register("ga", params=GradientAscentParams,
                  tasks=("classification", "language", "generation", "regression"),
                  needs=("forget",))
def gradient_ascent(ctx: UnlearnContext, params: GradientAscentParams):
    """Gradient ascent: maximise the loss on the forget set (GA / NegGrad).

    OPTML default: 5 epochs, lr 1e-4 on ResNet-18. The forget sets here are a few hundred
    examples (a handful of steps per epoch), so lr is raised to 2e-3 to move the small models
    by a comparable amount; larger values collapse them (the GA failure mode). Benchmarks
    with large forget sets set a smaller lr in their `method_params` (MNIST: 1e-4)."""
    model = ctx.copy_original()
    optimizer = make_optimizer(model.parameters(), "sgd", params.lr, params.momentum)
    batches = ctx.task.epochs(ctx.forget, params.batch_size, params.epochs, ctx.seed)
    optimise(model, optimizer, batches, lambda b: -ctx.task.nll(model, b).mean(), ctx.budget)
    return model
