"""Task-vector negation (Ilharco et al. 2023, "Editing Models with Task Arithmetic"; a MUSE
baseline): fine-tune further on the forget set, then move the other way."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from .base import UnlearnContext


@dataclass
class TaskVectorParams:
    epochs: int = param(5, ge=1)
    lr: float = param(1e-4, gt=0)
    batch_size: int = param(32, ge=1)
    alpha: float = param(5.0)  # any: 0 gives θ₀ back, -1 the fine-tuned copy


@methods.register("task_vector", params=TaskVectorParams, tasks=("language",),
                  needs=("forget",))
def task_vector(ctx: UnlearnContext, params: TaskVectorParams):
    """Task vector: fine-tune a copy of θ₀ on the forget set to θ_ft (mean answer NLL, AdamW
    at a constant lr), then return θ = θ₀ − α·(θ_ft − θ₀).

    The fine-tuning steps count against the step budget. With LoRA (the recipe's
    ``lora_rank``) only the adapters fine-tune; they are merged first, so the task vector is
    the merged weight difference. Published defaults (MUSE, 7B): α 5, AdamW lr 1e-5, fine-tuned
    until the forget set is memorised. Chosen: α 5, 5 epochs, batch 32, lr 1e-4 as GradDiff's
    default (tiny models: ``benchmarks.language.TINY_METHOD_PARAMS``). The target here has
    already memorised the forget set, so θ_ft − θ₀ is small; α scales how far the negation
    goes."""
    from ..models.pretrained import merge_lora

    task = ctx.task
    model = ctx.copy_original()
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], "adamw",
                               params.lr)
    optimise(model, optimizer, task.epochs(ctx.forget, params.batch_size, params.epochs,
                                           ctx.seed),
             lambda batch: task.nll(model, batch).mean(), ctx.budget, observed=False)
    model = merge_lora(model)  # a plain model is returned as it is
    original = dict(ctx.original.named_parameters())
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            base = original[name]
            parameter.copy_(base - params.alpha * (parameter - base))
    return model.eval()
