"""Who's Harry Potter (WHP, Eldan & Russinovich 2023, "Who's Harry Potter? Approximate
Unlearning in LLMs"): learn what the forget data pushes up by over-training on it, then teach
the model the predictions it would make had it never been pushed."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from .base import UnlearnContext
from .lm_objectives import forget_then_retain, reads_retain_when_used, reference


def generic_logits(original: torch.Tensor, reinforced: torch.Tensor,
                   alpha: float) -> torch.Tensor:
    """v = v_θ₀ − α·ReLU(v_θr − v_θ₀), per position and vocabulary entry: every logit the
    reinforced model raised is lowered by α times that rise; the others stay as θ₀ has them."""
    return original - alpha * F.relu(reinforced - original)


def record_keys(ids) -> list:
    return list(ids.tolist())


@torch.no_grad()
def generic_targets(task, original, reinforced, split, batch_size: int, alpha: float,
                    soft: bool) -> dict:
    """Per forget record (keyed by id): the generic targets at its answer positions, the
    argmax token of v (hard, LongTensor (T_i,)) or v itself (soft, float16 (T_i, V) on the
    CPU). One pass over ``split``, each batch's logits taken once under no_grad."""
    targets = {}
    for batch in task.batches(split, batch_size):
        v = generic_logits(task.logits(original, batch).float(),
                           task.logits(reinforced, batch).float(), alpha)
        v = v.half().cpu() if soft else v.argmax(-1)
        lengths = torch.bincount(batch.answer_rows, minlength=len(batch)).tolist()
        for key, part in zip(record_keys(batch.ids), torch.split(v, lengths)):
            targets[key] = part
    return targets


def batch_targets(targets: dict, batch) -> torch.Tensor:
    """The stored targets of a batch's records, in the batch's row-major answer-token order."""
    return torch.cat([targets[key] for key in record_keys(batch.ids)]).to(
        batch.answer_tokens.device)


def whp_loss(logits: torch.Tensor, target: torch.Tensor, soft: bool) -> torch.Tensor:
    """Cross-entropy of the answer-position logits (T, V) against the generic targets: hard
    labels (T,) or softmax of the generic logits (T, V); mean over the batch's answer tokens."""
    if soft:
        return F.cross_entropy(logits.float(), F.softmax(target.float(), dim=-1))
    return F.cross_entropy(logits.float(), target)


def reinforce(ctx: UnlearnContext, params) -> torch.nn.Module:
    """θ_r: a copy of θ₀ fine-tuned further on the forget set (mean answer NLL, AdamW at
    ``reinforce_lr`` for ``reinforce_epochs``), its steps taken from the step budget."""
    task = ctx.task
    reinforced = ctx.copy_original()
    optimizer = make_optimizer([p for p in reinforced.parameters() if p.requires_grad],
                               "adamw", params.reinforce_lr)
    optimise(reinforced, optimizer,
             task.epochs(ctx.forget, params.batch_size, params.reinforce_epochs, ctx.seed),
             lambda batch: task.nll(reinforced, batch).mean(), ctx.budget,
             observed=False)  # not the model being unlearned: no learning-curve points
    return reinforced


@dataclass
class WHPParams:
    reinforce_epochs: int = param(3, ge=1)
    reinforce_lr: float = param(1e-4, gt=0)
    epochs: int = param(5, ge=1)
    lr: float = param(1e-4, gt=0)
    batch_size: int = param(32, ge=1)
    alpha: float = param(1.0, ge=0)
    soft_targets: bool = False
    retain_weight: float = param(0.0, ge=0)


@methods.register("whp", params=WHPParams, tasks=("language",), needs=reads_retain_when_used)
def whp(ctx: UnlearnContext, params: WHPParams):
    """WHP: (1) fine-tune a copy θ_r of θ₀ further on the forget set (answer NLL, AdamW at
    ``reinforce_lr`` for ``reinforce_epochs``; these steps count against the step budget);
    (2) at every forget answer position take the generic logits
    v = v_θ₀ − α·ReLU(v_θr − v_θ₀) (θ₀ the frozen original) and free θ_r; (3) fine-tune a
    fresh copy of θ₀ on the forget prompts with cross-entropy against argmax(v) (the paper's
    hard labels) or, with ``soft_targets``, against softmax(v); mean over the batch's answer
    tokens (+ w_r·NLL(retain) when ``retain_weight`` > 0, which then needs retain data; WHP
    itself uses forget data only, so the default is 0).

    The targets are computed once, one no_grad pass over the forget set in batches, before
    the second phase, so only one model is held besides the original at any time. Hard
    targets cost one token id per answer token; soft ones keep v in float16 on the CPU
    (answer tokens × vocabulary).

    Published (Llama-2-7B on the Harry Potter books): α 1 in the formula above (the paper
    also combines the reinforced-model targets with an entity-anchor dictionary that swaps
    idiosyncratic names for generic ones before taking the baseline's predictions; that step
    needs a hand-made or model-made dictionary of the forget domain's entities and is left
    out here); the paper's optimiser settings are not restated here (not checked against a
    reference implementation, none being public). Chosen defaults: α 1, hard labels, 3 reinforcement epochs and 5 unlearning epochs, batch
    32, AdamW lr 1e-4 for both (the learning rate GradDiff uses here). The tiny benchmark
    models take α 10 (``benchmarks.language.TINY_METHOD_PARAMS``): they hold their memorised
    answers with logit margins wider than reinforcement adds, so with α 1 argmax(v) is
    nearly always the answer itself and the second phase re-teaches it. The
    targets are taken at the scored answer positions only (the paper fine-tunes on every
    position of book text). With LoRA (the recipe's ``lora_rank``) both phases train adapters."""
    task = ctx.task
    reinforced = reinforce(ctx, params)
    targets = generic_targets(task, reference(ctx), reinforced, ctx.forget, params.batch_size,
                              params.alpha, params.soft_targets)
    del reinforced  # the second model WHP holds: gone before the second phase

    model = ctx.copy_original()

    def forget_loss(batch):
        return whp_loss(task.logits(model, batch), batch_targets(targets, batch),
                        params.soft_targets)

    return forget_then_retain(
        ctx, model, task.epochs(ctx.forget, params.batch_size, params.epochs, ctx.seed),
        forget_loss, lr=params.lr, batch_size=params.batch_size, retain_term="nll",
        retain_weight=params.retain_weight)
