"""Helpers several methods share: the frozen teacher and distillation loss of the
teacher-student family (SCRUB, Bad Teacher, UNDIAL, boundary, the language objectives),
endless shuffled batches, a seeded retain subset, a transformer's decoder blocks."""
from __future__ import annotations

import copy
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .base import UnlearnContext


def frozen_teacher(ctx: UnlearnContext) -> nn.Module:
    """The original model as a read-only teacher.

    Used in place (no copy) when it is in eval mode, which is how scenarios hand it over; its
    logits are only ever taken under ``torch.no_grad`` and it is never stepped, so it cannot
    change. If a caller passes an original in training mode, one frozen eval-mode copy is made
    instead of flipping the caller's module to eval."""
    if not ctx.original.training:
        return ctx.original
    teacher = copy.deepcopy(ctx.original).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def teacher_logits(task, teacher: nn.Module, batch) -> torch.Tensor:
    with torch.no_grad():
        return task.logits(teacher, batch)


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher ‖ student) of the temperature-``T`` softmaxes over the last dimension, times
    T² (Hinton's scaling, as SCRUB's DistillKL), one value per position of the leading dims
    (per example for classification, per token for language). Task-agnostic."""
    t = float(temperature)
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)
    return kl * (t * t)


def endless_batches(task, split, batch_size: int, seed: int) -> Iterator:
    """``split``'s batches, endlessly: each pass reshuffled with its own seed (``seed`` and
    the pass number). Empty if the split is empty."""
    cycle = 0
    while True:
        seen = False
        for batch in task.batches(split, batch_size, True, seed + cycle):
            seen = True
            yield batch
        if not seen:
            return
        cycle += 1


def retain_subset(split, fraction: float, seed: int):
    """A seeded random ``fraction`` of ``split`` (at least one example when it is not empty)."""
    if not 0 < fraction <= 1:
        raise ValueError("retain_fraction must be in (0, 1]")
    count = max(1, int(round(fraction * len(split)))) if len(split) else 0
    generator = torch.Generator().manual_seed(seed)
    positions = torch.randperm(len(split), generator=generator)[:count].numpy()
    return split.subset(np.sort(positions))


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's list of transformer blocks and its qualified name (Llama-style ``layers``,
    GPT-2's ``h``), through a LoRA wrapper too."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.split(".")[-1] in ("layers", "h"):
            return name, module
    raise UserError("this method needs a transformer with a list of decoder blocks (model.layers or "
                    "transformer.h); this model has none")


def greedy_inputs(model_name: str, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                  do_sample: bool, pad_token_id: int | None, eos_token_id
                  ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The attention mask, end-of-sequence ids and pad id of a hand-written greedy
    ``generate`` (a model that wraps a Hugging Face one, as ULD's pair and KSD's abstainer),
    with Hugging Face's defaults; sampling is refused."""
    if do_sample:
        raise UserError(f"the {model_name} model decodes greedily only; call generate with "
                        "do_sample=False")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    eos = [] if eos_token_id is None else (
        [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id))
    eos = torch.tensor(eos, dtype=torch.long, device=input_ids.device)
    pad = pad_token_id if pad_token_id is not None else (int(eos[0]) if len(eos) else 0)
    return attention_mask, eos, pad
