"""EU-k (exact unlearning of the last k layers): re-initialise the last k layers and retrain
only them on the retain set with the original recipe."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..models.inspect import last_layers
from ..params import param
from ..registry import methods
from ..train import make_optimizer
from .base import UnlearnContext
from .cf_k import train_last_layers


@dataclass
class EUkParams:
    k: int = param(2, ge=1)
    epochs: int | None = param(None, ge=1)
    batch_size: int | None = param(None, ge=1)


@torch.no_grad()
def reinitialise(model: nn.Module, modules: list[nn.Module], fresh: nn.Module) -> None:
    """Copy into ``modules`` of ``model`` the parameters and buffers of the modules of the
    same name in ``fresh`` (a freshly initialised model of the same architecture)."""
    names = {id(m): name for name, m in model.named_modules()}
    fresh_modules = dict(fresh.named_modules())
    for module in modules:
        module.load_state_dict(fresh_modules[names[id(module)]].state_dict())


@methods.register("eu_k", params=EUkParams, tasks=("classification", "language", "regression"),
                  needs=("retain",), exact=False)
def eu_k(ctx: UnlearnContext, params: EUkParams):
    """EU-k: re-initialise the last k layers and retrain only them on the retain set with the recipe.

    Goel et al.'s EU-k: the last k weight layers (with the normalisation layers that follow
    them; see ``base.last_layers``) get fresh initial values, from ``task.fresh_model(seed)``,
    and are trained from there on the retain set alone with the original training recipe
    (``ctx.recipe``: its optimizer, lr, momentum, weight decay, batch size and cosine
    schedule). It is exact only for those k layers given the frozen layers below them: the
    frozen layers were trained with the forget set and keep whatever they learnt from it, so
    the method is registered exact=False. Defaults: k = 2 (the digits MLP's 256→128 hidden
    layer and classifier), and ``epochs`` = None, meaning the recipe's epochs, because EU-k is
    defined as retraining those layers the way the model was trained (fewer epochs leave a
    re-initialised head under-trained). The frozen layers need no backward pass, so a run
    costs less than retraining; benchmarks with long recipes can set fewer epochs."""
    if params.k < 1:
        raise UserError("eu_k: k must be at least 1")
    recipe = ctx.recipe
    epochs = recipe.epochs if params.epochs is None else params.epochs
    batch_size = recipe.batch_size if params.batch_size is None else params.batch_size
    if epochs < 0 or batch_size < 1:
        raise UserError("eu_k: epochs must be >= 0 and batch_size >= 1")
    model = ctx.copy_original()
    trainable = last_layers(model, params.k)
    reinitialise(model, trainable, ctx.task.fresh_model(ctx.seed))
    torch.manual_seed(ctx.seed)
    steps = max(1, epochs * -(-len(ctx.retain) // batch_size))
    return train_last_layers(
        ctx, model, trainable,
        lambda ps: make_optimizer(ps, recipe.optimizer, recipe.lr, recipe.momentum,
                                  recipe.weight_decay),
        epochs, batch_size,
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps))
