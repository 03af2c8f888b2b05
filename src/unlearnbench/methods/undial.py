"""UNDIAL (Dong et al. 2024, "Unlearning via Self-Distillation with Adjusted Logits"): distil
the model toward its own original logits with the true next token pushed down."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..params import param
from ..registry import methods
from ._shared import teacher_logits
from .base import UnlearnContext
from .lm_objectives import forget_then_retain, reference


def adjusted_targets(logits: torch.Tensor, tokens: torch.Tensor, beta: float) -> torch.Tensor:
    """softmax(logits − β·onehot(token)) per row: the teacher's distribution with the answer
    token's logit lowered by β."""
    adjusted = logits.float().clone()
    adjusted[torch.arange(len(tokens), device=tokens.device), tokens] -= beta
    return F.softmax(adjusted, dim=-1)


@dataclass
class UndialParams:
    epochs: int = param(10, ge=1)
    lr: float = param(1e-4, gt=0)
    batch_size: int = param(32, ge=1)
    beta: float = param(10.0, gt=0)
    retain_weight: float = param(0.0, ge=0)


@methods.register("undial", params=UndialParams, tasks=("language",), needs=("forget",))
def undial(ctx: UnlearnContext, params: UndialParams):
    """UNDIAL: on the forget answers, minimise the cross-entropy between the model's
    next-token distribution and softmax(z_θ₀ − β·onehot(y_t)), z_θ₀ the frozen original's
    logits; mean over the batch's answer tokens (+ w_r·NLL(retain), off by default).

    The target is fixed (the original's logits, not the student's), so the loss is bounded
    below and the model only moves as far as lowering the answer token by β requires.
    Published defaults (paper / open-unlearning): β 10, no retain term (open-unlearning's
    alpha 0), AdamW lr 1e-4, 10 epochs, effective batch 16. Chosen: the same, batch 32 (tiny
    models: ``benchmarks.language.TINY_METHOD_PARAMS``). Only the scored answer positions
    count (open-unlearning averages over every position)."""
    task = ctx.task
    ref = reference(ctx)
    model = ctx.copy_original()

    def forget_loss(batch):
        target = adjusted_targets(teacher_logits(task, ref, batch), batch.answer_tokens,
                                  params.beta)
        return F.cross_entropy(task.logits(model, batch).float(), target)

    return forget_then_retain(
        ctx, model, task.epochs(ctx.forget, params.batch_size, params.epochs, ctx.seed),
        forget_loss, lr=params.lr, batch_size=params.batch_size, retain_term="nll",
        retain_weight=params.retain_weight)
