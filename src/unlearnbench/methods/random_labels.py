"""Random labels (RL): relabel the forget set with random wrong classes and train."""
from dataclasses import dataclass

from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from .base import UnlearnContext


@dataclass
class RandomLabelsParams:
    epochs: int = param(5, ge=1)
    lr: float = param(0.01, gt=0)
    batch_size: int = param(64, ge=1)
    momentum: float = param(0.9, ge=0, lt=1)


@methods.register("rl", params=RandomLabelsParams,
                  tasks=("classification", "language", "generation"), needs=("forget", "retain"))
def random_labels(ctx: UnlearnContext, params: RandomLabelsParams):
    """Random labels: train on the forget set with random wrong labels together with the retain set.

    As in SalUn's RL baseline the relabelled forget set and the retain set are shuffled into
    one training set. The wrong labels come from ``task.relabel_wrong`` (a language task
    answers with a perturbed or another record's answer). Defaults (5 epochs, lr 0.01, SGD)
    follow FT's scaling here; the relabelled forget set adds 11% to FT's cost, so 0.28 of
    digits' retraining, just over the 0.25 the built-in defaults aim at (``--budget 0.25``
    stops it within the fifth epoch)."""
    model = ctx.copy_original()
    mixed = ctx.task.join("forget+retain", [ctx.task.relabel_wrong(ctx.forget, ctx.seed),
                                            ctx.retain])
    optimizer = make_optimizer(model.parameters(), "sgd", params.lr, params.momentum)
    batches = ctx.task.epochs(mixed, params.batch_size, params.epochs, ctx.seed)
    optimise(model, optimizer, batches, lambda b: ctx.task.nll(model, b).mean(), ctx.budget)
    return model
