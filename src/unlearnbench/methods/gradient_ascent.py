"""Gradient ascent on the forget set (GA, NegGrad)."""
from dataclasses import dataclass

from torch import nn

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
    max_grad_norm: float = param(0.0, ge=0)


@methods.register("ga", params=GradientAscentParams,
                  tasks=("classification", "language", "generation", "regression"),
                  needs=("forget",))
def gradient_ascent(ctx: UnlearnContext, params: GradientAscentParams):
    """Gradient ascent: maximise the loss on the forget set (GA / NegGrad).

    OPTML default: 5 epochs, lr 1e-4 on ResNet-18. The forget sets here are a few hundred
    examples (a handful of steps per epoch), so lr is raised to 2e-3 to move the small models
    by a comparable amount; larger values collapse them (the GA failure mode). Benchmarks
    with large forget sets set a smaller lr in their `method_params` (MNIST: 1e-4).

    ``max_grad_norm`` > 0 clips the gradient norm before every step; 0, the default, is the
    reference (no clipping). A diffusion model's loss, the noise-prediction MSE, has no upper
    bound and its gradient grows with it, so with momentum the ascent runs away once it has
    enough steps: on canvas-digits-style (1215 forget images, 95 steps) the loss turns NaN
    at step 18 at lr 7e-3, 52 at 1e-3 and 83 at 5e-4; a lower rate only delays it. Clipping
    bounds each step, so the weights stay finite (the grid benchmarks clip at 1)."""
    model = ctx.copy_original()
    optimizer = make_optimizer(model.parameters(), "sgd", params.lr, params.momentum)
    if params.max_grad_norm > 0:
        def clip(*_):
            nn.utils.clip_grad_norm_(model.parameters(), params.max_grad_norm)
        optimizer.register_step_pre_hook(clip)
    batches = ctx.task.epochs(ctx.forget, params.batch_size, params.epochs, ctx.seed)
    optimise(model, optimizer, batches, lambda b: -ctx.task.nll(model, b).mean(), ctx.budget)
    return model
