"""Token-weighted gradient ascent: WGA (Wang et al. 2025, "Rethinking LLM Unlearning
Objectives") and SatImp (Yang et al. 2025, saturation and importance weights). Each answer
token's ascent term is weighted by a function of its probability, so tokens the model has
already forgotten (p ≈ 0) stop pushing and the loss no longer diverges as GA's does."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..params import param
from ..registry import methods
from .base import UnlearnContext
from .lm_objectives import forget_then_retain, token_nll_and_prob


def weighted_ascent_loss(ce: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """−mean over the batch's answer tokens of weight_t · CE_t (the weights carry no gradient)."""
    return -(weight * ce).mean()


@dataclass
class WGAParams:
    epochs: int = param(5, ge=1)
    lr: float = param(1e-4, gt=0)
    batch_size: int = param(32, ge=1)
    beta: float = param(1.0, ge=0)
    retain_weight: float = param(1.0, ge=0)


@methods.register("wga", params=WGAParams, tasks=("language",), needs=("forget", "retain"))
def wga(ctx: UnlearnContext, params: WGAParams):
    """WGA: L = −mean_t p(y_t)^β · CE_t on forget answers + w_r·NLL(retain).

    p(y_t) = exp(−CE_t) is detached (a weight, as in the authors' and open-unlearning's code);
    the mean runs over every answer token of the batch. Published defaults (open-unlearning,
    7B): β 1, retain weight 1 with the retain NLL, AdamW lr 1e-5, 5 epochs. Chosen: the same,
    batch 32, lr 1e-4 as GradDiff's default (tiny models: ``TINY_METHOD_PARAMS``)."""
    task = ctx.task
    model = ctx.copy_original()

    def forget_loss(batch):
        ce, p = token_nll_and_prob(task, model, batch)
        return weighted_ascent_loss(ce, p.pow(params.beta))

    return forget_then_retain(
        ctx, model, task.epochs(ctx.forget, params.batch_size, params.epochs, ctx.seed),
        forget_loss, lr=params.lr, batch_size=params.batch_size, retain_term="nll",
        retain_weight=params.retain_weight)


@dataclass
class SatImpParams:
    epochs: int = param(5, ge=1)
    lr: float = param(1e-4, gt=0)
    batch_size: int = param(32, ge=1)
    beta1: float = param(5.0, ge=0)
    beta2: float = param(1.0, ge=0)
    retain_weight: float = param(1.0, ge=0)


@methods.register("satimp", params=SatImpParams, tasks=("language",), needs=("forget", "retain"))
def satimp(ctx: UnlearnContext, params: SatImpParams):
    """SatImp: L = −mean_t p(y_t)^β₁ (1 − p(y_t))^β₂ · CE_t on forget answers + w_r·NLL(retain).

    p^β₁ (saturation) stops pushing on tokens already unlikely; (1 − p)^β₂ (importance) puts
    little weight on tokens the model is sure of. Weights detached as in WGA. Published
    defaults (open-unlearning): β₁ 5, β₂ 1, retain weight 1, AdamW lr 1e-5, 5 epochs. Chosen:
    the same, batch 32, lr 1e-4 as GradDiff's default (tiny models: ``TINY_METHOD_PARAMS``)."""
    task = ctx.task
    model = ctx.copy_original()

    def forget_loss(batch):
        ce, p = token_nll_and_prob(task, model, batch)
        return weighted_ascent_loss(ce, p.pow(params.beta1) * (1 - p).pow(params.beta2))

    return forget_then_retain(
        ctx, model, task.epochs(ctx.forget, params.batch_size, params.epochs, ctx.seed),
        forget_loss, lr=params.lr, batch_size=params.batch_size, retain_term="nll",
        retain_weight=params.retain_weight)
