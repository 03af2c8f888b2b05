"""FLAT (Wang et al. 2024, ICLR 2025, "LLM Unlearning via Loss Adjustment with Only Forget
Data"): maximise an f-divergence between a template answer (a refusal) and the forget answer,
using the forget data alone: no retain set, no reference model."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError
from ..params import param
from ..registry import methods
from .base import UnlearnContext
from .idk import refusal_and_forget_batches
from .lm_objectives import forget_then_retain

DIVERGENCES = ("tv", "kl")


def mean_token_probability(task, model, batch) -> torch.Tensor:
    """Per example: the mean over its answer tokens of p(y_t) = exp(−CE_t) (with gradient)."""
    logits = task.logits(model, batch).float()
    p = torch.softmax(logits, dim=-1).gather(1, batch.answer_tokens.unsqueeze(1)).squeeze(1)
    total = torch.zeros(len(batch), device=p.device).index_add(0, batch.answer_rows, p)
    return total / task.answer_lengths(batch)


def flat_loss(p_template: torch.Tensor, p_forget: torch.Tensor, divergence: str) -> torch.Tensor:
    """The variational f-divergence loss on the batch-mean probabilities P_e (template answer)
    and P_f (forget answer): ``tv`` −½·tanh(P_e) + ½·tanh(P_f); ``kl`` −P_e + exp(P_f − 1).
    Minimising it raises P_e and lowers P_f."""
    p_e, p_f = p_template.mean(), p_forget.mean()
    if divergence == "tv":
        return -0.5 * torch.tanh(p_e) + 0.5 * torch.tanh(p_f)
    if divergence == "kl":
        return -p_e + torch.exp(p_f - 1.0)
    raise UserError(f"FLAT divergence {divergence!r} is unknown: use one of "
                    f"{', '.join(DIVERGENCES)}")


@dataclass
class FLATParams:
    epochs: int = param(5, ge=1)
    lr: float = param(1e-4, gt=0)
    batch_size: int = param(32, ge=1)
    divergence: str = param("tv", choices=DIVERGENCES)


@methods.register("flat", params=FLATParams, tasks=("language",), needs=("forget", "refusals"))
def flat(ctx: UnlearnContext, params: FLATParams):
    """FLAT: for each forget question x with answer y and a template answer e (a refusal),
    P_e and P_f are the mean answer-token probabilities of e and y (the mean over tokens of
    p(token), not exp of the mean log-probability, as in the authors' code), averaged over the
    batch; the loss is the f-divergence's variational form
    ``tv``: L = −½·tanh(P_e) + ½·tanh(P_f), ``kl``: L = −P_e + exp(P_f − 1).
    Forget data only: no retain term, no reference model.

    Each forget record gets one refusal from the data set's refusal strings, drawn with a
    seeded generator as IdkNLL does (``idk.refusal_split``); a data set without refusals is a
    UserError. The refusal and forget batches hold the same records in the same shuffled
    order. Published defaults (authors' code, TOFU): Total-Variation, AdamW lr 1e-5, 5 epochs,
    effective batch 64, weight decay 0.01. Chosen: TV, 5 epochs, batch 32, no weight decay,
    lr 1e-4 as GradDiff's default (tiny models: ``benchmarks.language.TINY_METHOD_PARAMS``).
    Deviation: the authors' code averages p over every position of the padded sequence
    (prompt and padding count as zeros), which scales P by each batch's answer fraction; here
    the mean runs over each answer's own tokens, as the paper writes it."""
    if params.divergence not in DIVERGENCES:
        raise UserError(f"FLAT divergence {params.divergence!r} is unknown: use one of "
                        f"{', '.join(DIVERGENCES)}")
    task = ctx.task
    model = ctx.copy_original()
    pairs = refusal_and_forget_batches(ctx, params.batch_size, params.epochs)

    def forget_loss(pair):
        template_batch, forget_batch = pair
        return flat_loss(mean_token_probability(task, model, template_batch),
                         mean_token_probability(task, model, forget_batch), params.divergence)

    return forget_then_retain(ctx, model, pairs, forget_loss, lr=params.lr,
                              batch_size=params.batch_size, retain_term="none")
