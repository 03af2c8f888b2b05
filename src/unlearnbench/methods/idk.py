"""Unlearning by refusal (TOFU's "IDK" baselines): teach the model to answer the forget
questions with a refusal such as "I don't know.", by plain fine-tuning (IdkNLL) or by
preference optimisation against the original answer (IdkDPO)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..params import param
from ..registry import methods
from .base import UnlearnContext
from .lm_objectives import forget_then_retain, reference, reference_log_prob, sequence_log_prob


def refusal_split(ctx: UnlearnContext, seed: int):
    """The forget split with every answer replaced by one of the data set's refusal strings,
    drawn per record with ``numpy.random.default_rng(seed)``; same ids and order. QA records
    change their ``answer``, verbatim pairs their ``continuation``."""
    refusals = tuple(getattr(ctx.task.data, "refusals", ()) or ())
    if not refusals:
        raise UserError(f"data set {ctx.task.data.name!r} has no refusal strings ('I don't "
                        "know.'): IdkNLL, IdkDPO and FLAT need them; give the TextBundle refusals "
                        "(TOFU layout: idontknow.jsonl)")
    rng = np.random.default_rng(seed)
    records = []
    for record in ctx.forget.records:
        refusal = refusals[int(rng.integers(len(refusals)))]
        if "question" in record:
            records.append(dict(record, answer=refusal))
        elif "prefix" in record:
            records.append(dict(record, continuation=" " + refusal))
        else:
            raise UserError("IdkNLL and IdkDPO need question/answer (or prefix/continuation) "
                            "records to refuse; this forget set holds whole documents")
    return ctx.forget.with_records(records, ctx.forget.name + "-idk")


def refusal_and_forget_batches(ctx: UnlearnContext, batch_size: int, epochs: int):
    """(refusal batch, forget batch) pairs over the epochs, each pair the same records: the
    two splits have the same length and ``task.epochs`` shuffles both with the same seed."""
    refusals = refusal_split(ctx, ctx.seed)
    return zip(ctx.task.epochs(refusals, batch_size, epochs, ctx.seed),
               ctx.task.epochs(ctx.forget, batch_size, epochs, ctx.seed))


@dataclass
class IdkNLLParams:
    epochs: int = param(5, ge=1)
    lr: float = param(1e-4, gt=0)
    batch_size: int = param(32, ge=1)
    retain_weight: float = param(1.0, ge=0)


@methods.register("idknll", params=IdkNLLParams, tasks=("language",),
                  needs=("forget", "retain", "refusals"))
def idknll(ctx: UnlearnContext, params: IdkNLLParams):
    """IdkNLL: L = NLL(forget question → a refusal) + w_r·NLL(retain).

    Each forget record gets one refusal string from ``task.data.refusals``, drawn once with a
    seeded generator (TOFU draws one per example each time it is loaded; fixed here so a run
    is deterministic and the model sees a consistent target). A data set without refusals is
    a UserError. Forget batches over the epochs, each paired with the next retain batch, as
    GradDiff. Published defaults (TOFU / open-unlearning, 7B): retain weight 1, AdamW lr 1e-5,
    5-10 epochs, batch 32. Chosen: the same, lr 1e-4 as GradDiff's default (tiny models:
    ``benchmarks.language.TINY_METHOD_PARAMS``)."""
    task = ctx.task
    idk = refusal_split(ctx, ctx.seed)
    model = ctx.copy_original()
    return forget_then_retain(
        ctx, model, task.epochs(idk, params.batch_size, params.epochs, ctx.seed),
        lambda batch: task.nll(model, batch).mean(), lr=params.lr,
        batch_size=params.batch_size, retain_term="nll", retain_weight=params.retain_weight)


def dpo_loss(win: torch.Tensor, win_reference: torch.Tensor, lose: torch.Tensor,
             lose_reference: torch.Tensor, beta: float) -> torch.Tensor:
    """−mean log σ(β·[(log π_θ(y_w) − log π_θ₀(y_w)) − (log π_θ(y_l) − log π_θ₀(y_l))]):
    log 2 where θ = θ₀."""
    return -F.logsigmoid(beta * ((win - win_reference) - (lose - lose_reference))).mean()


@dataclass
class IdkDPOParams:
    epochs: int = param(5, ge=1)
    lr: float = param(1e-4, gt=0)
    batch_size: int = param(32, ge=1)
    beta: float = param(0.1, gt=0)
    retain_weight: float = param(1.0, ge=0)


@methods.register("idkdpo", params=IdkDPOParams, tasks=("language",),
                  needs=("forget", "retain", "refusals"))
def idkdpo(ctx: UnlearnContext, params: IdkDPOParams):
    """IdkDPO: DPO with the refusal preferred (y_w) and the forget answer rejected (y_l):
    L = −log σ(β·[(log π_θ(y_w|x) − log π_θ₀(y_w|x)) − (log π_θ(y_l|x) − log π_θ₀(y_l|x))])
    + w_r·NLL(retain), the reference θ₀ the frozen original, sequence log-probabilities summed
    over the answer tokens.

    The refusals are drawn as in IdkNLL; the preferred and rejected batches hold the same
    records in the same (shuffled) order. Published defaults (TOFU / open-unlearning): β 0.1,
    retain weight 1, AdamW lr 1e-5, 10 epochs, batch 32. Chosen: those β and weight, 5
    epochs, lr 1e-4 as GradDiff's default (tiny models: ``TINY_METHOD_PARAMS``). The loss is
    the DPO paper's; open-unlearning multiplies it by 2/β (= 20), which under Adam mostly
    weighs the forget term 20 times the retain term."""
    task = ctx.task
    ref = reference(ctx)
    model = ctx.copy_original()
    pairs = refusal_and_forget_batches(ctx, params.batch_size, params.epochs)

    def forget_loss(pair):
        win, lose = pair
        return dpo_loss(sequence_log_prob(task, model, win), reference_log_prob(task, ref, win),
                        sequence_log_prob(task, model, lose),
                        reference_log_prob(task, ref, lose), params.beta)

    return forget_then_retain(ctx, model, pairs, forget_loss, lr=params.lr,
                              batch_size=params.batch_size, retain_term="nll",
                              retain_weight=params.retain_weight)
