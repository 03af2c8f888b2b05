"""Pieces shared by the language-model unlearning objectives (NPO, SimNPO, KL, IdkNLL,
IdkDPO, WGA, SatImp, UNDIAL): sequence log-probabilities, the frozen reference model, the
retain terms, per-token answer losses and the one forget-batch/retain-batch loop.

No method is registered here. Every loop follows GradDiff (TOFU, open-unlearning): the epochs
run over the forget set, and each forget batch is paired with the next batch of an endlessly
reshuffled retain set."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..train import make_optimizer, optimise
from ._shared import distill_kl, endless_batches, frozen_teacher, teacher_logits
from .base import UnlearnContext


RETAIN_TERMS = ("none", "nll", "kl")


def check_retain_term(kind: str) -> str:
    if kind not in RETAIN_TERMS:
        raise UserError(f"retain_term {kind!r} is unknown: use one of {', '.join(RETAIN_TERMS)}")
    return kind


def sequence_log_prob(task, model: nn.Module, batch) -> torch.Tensor:
    """log π(y|x) per example: minus the summed answer NLL (the answer's closing <eos> counts)."""
    return -task.nll_sum(model, batch)


def reference_log_prob(task, reference: nn.Module, batch) -> torch.Tensor:
    with torch.no_grad():
        return sequence_log_prob(task, reference, batch)


def retain_loss(task, model: nn.Module, reference: nn.Module | None, batch, kind: str):
    """The retain term on one retain batch: ``nll`` the mean answer NLL; ``kl`` the mean over
    answer tokens of KL(p_θ₀ ‖ p_θ) (the reference model frozen); ``none`` zero."""
    if kind == "nll":
        return task.nll(model, batch).mean()
    if kind == "kl":
        return distill_kl(task.logits(model, batch), teacher_logits(task, reference, batch)).mean()
    return torch.zeros(())


def token_nll_and_prob(task, model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per answer token (T,): the cross-entropy CE_t and its probability p(y_t) = exp(−CE_t),
    the latter detached (a weight, as in the WGA / SatImp code)."""
    ce = F.cross_entropy(task.logits(model, batch).float(), batch.answer_tokens, reduction="none")
    return ce, (-ce).exp().detach()


def reference(ctx: UnlearnContext) -> nn.Module:
    """The frozen original θ₀, used in place under ``torch.no_grad`` (see ``frozen_teacher``)."""
    return frozen_teacher(ctx)


def retain_stream(ctx: UnlearnContext, batch_size: int):
    """The retain set's batches, endlessly (the seeds GradDiff uses)."""
    return endless_batches(ctx.task, ctx.retain, batch_size, (ctx.seed + 1) * 1_000_003)


def reads_retain_when_used(params) -> tuple[str, ...]:
    """``needs`` of a ``forget_then_retain`` method whose retain term can be switched off: the
    retain set only while the term is on (``retain_term`` not "none", ``retain_weight`` > 0),
    so the method runs where the retain set is withheld (RWKU's setting) once it is off."""
    on = getattr(params, "retain_term", "nll") != "none" and params.retain_weight != 0
    return ("forget", "retain") if on else ("forget",)


def forget_then_retain(ctx: UnlearnContext, model: nn.Module, forget_batches: Iterable,
                       forget_loss: Callable, *, lr: float, batch_size: int,
                       retain_term: str = "nll", retain_weight: float = 1.0,
                       forget_weight: float = 1.0, reference_model: nn.Module | None = None,
                       optimizer: str = "adamw") -> nn.Module:
    """Minimise ``forget_weight·forget_loss(item) + retain_weight·retain term`` over
    ``forget_batches`` (one optimizer step each, within the step budget), each paired with the
    next retain batch. ``item`` is whatever ``forget_batches`` yields (a batch, or a tuple of
    aligned batches). Returns ``model`` (trained in place)."""
    check_retain_term(retain_term)
    use_retain = retain_term != "none" and retain_weight != 0
    retain = retain_stream(ctx, batch_size) if use_retain else iter(())
    task = ctx.task
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], optimizer, lr)

    def loss(item):
        value = forget_weight * forget_loss(item)
        retain_batch = next(retain, None)
        if retain_batch is not None:
            value = value + retain_weight * retain_loss(task, model, reference_model,
                                                        retain_batch, retain_term)
        return value

    optimise(model, opt, forget_batches, loss, ctx.budget)
    return model
