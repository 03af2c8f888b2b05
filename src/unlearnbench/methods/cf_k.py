"""CF-k (catastrophic forgetting of the last k layers): fine-tune only the last k layers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import UserError
from ..models.inspect import last_layers
from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from .base import UnlearnContext, freeze_all_but


@dataclass
class CFkParams:
    k: int = param(2, ge=1)
    epochs: int = param(5, ge=1)
    lr: float = param(0.01, gt=0)
    batch_size: int = param(64, ge=1)
    momentum: float = param(0.9, ge=0, lt=1)


def train_last_layers(ctx: UnlearnContext, model: nn.Module, trainable: list[nn.Module],
                      optimizer_factory: Callable, epochs: int, batch_size: int,
                      schedule_factory: Callable | None = None) -> nn.Module:
    """Train only the parameters of ``trainable`` on the retain set, in place. Everything else
    stays bitwise unchanged: its parameters are frozen, and the normalisation layers outside
    ``trainable`` are kept in eval mode so their running statistics do not move either. All
    parameters are trainable again on return."""
    if epochs < 0:
        raise ValueError("epochs must be >= 0")
    params = freeze_all_but(model, trainable)
    inside = {id(m) for module in trainable for m in module.modules()}
    frozen_norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and id(m) not in inside]
    optimizer = optimizer_factory(params)
    schedule = schedule_factory(optimizer) if schedule_factory else None

    def loss(batch):
        for module in frozen_norms:  # optimise() switched the whole model to train mode
            module.eval()
        return ctx.task.nll(model, batch).mean()

    try:
        if params:
            optimise(model, optimizer, ctx.task.epochs(ctx.retain, batch_size, epochs, ctx.seed),
                     loss, ctx.budget, after_step=schedule.step if schedule else None)
    finally:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    return model.eval()


@methods.register("cf_k", params=CFkParams, tasks=("classification", "language", "regression"),
                  needs=("retain",))
def cf_k(ctx: UnlearnContext, params: CFkParams):
    """CF-k: fine-tune only the last k layers on the retain set (catastrophic forgetting of the head).

    Goel et al. ("Towards adversarial evaluation of unlearning") freeze all but the last k
    layers and fine-tune them on the retain set; SCRUB's code base runs it like its FT
    baseline (10 epochs, lr 0.01, SGD). "Layers" are weight layers (Linear/Conv/Embedding,
    with the normalisation layers that follow them; see ``base.last_layers``). Defaults: k = 2
    (of the digits MLP's three Linear layers: the 256→128 hidden layer and the classifier),
    and FT's scaling here: 5 epochs, lr 0.01, momentum 0.9."""
    if params.k < 1:
        raise UserError("cf_k: k must be at least 1")
    model = ctx.copy_original()
    return train_last_layers(
        ctx, model, last_layers(model, params.k),
        lambda ps: make_optimizer(ps, "sgd", params.lr, params.momentum),
        params.epochs, params.batch_size)
