"""Unlearning One Expert (UOE, Zhuang et al. 2025; its later version is named SEUF): unlearn a
mixture-of-experts language model by training only the expert the forget set is routed to
most, and that layer's router, with a loss that keeps the router sending the forget tokens to
that expert."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..models.moe import gate_probabilities, moe_blocks
from ..params import param
from ..registry import methods
from .base import UnlearnContext
from .lm_objectives import forget_then_retain, reference, reference_log_prob
from .npo import npo_loss

BASE_LOSSES = ("ga", "graddiff", "npo")


@torch.no_grad()
def expert_affinity(task, model: nn.Module, split, batch_size: int = 64) -> torch.Tensor:
    """(blocks, experts): per MoE block, the router's gate probability of each expert averaged
    over each sequence's tokens, then over the sequences of ``split`` (UOE's attribution)."""
    model.eval()
    total, count = None, 0
    for batch in task.batches(split, batch_size):
        gates = gate_probabilities(model, lambda: task.forward(model, batch))
        mask = batch.attention_mask.float()
        per_sequence = torch.stack([  # (blocks, B, experts)
            (g.view(*mask.shape, -1) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            for g in gates])
        total = per_sequence.sum(1) if total is None else total + per_sequence.sum(1)
        count += len(batch)
    return total / max(count, 1)


def anchor_loss(gates: torch.Tensor, expert: int, mask: torch.Tensor) -> torch.Tensor:
    """‖g − onehot(expert)‖² per token (``gates``: (tokens, experts)), averaged over the tokens
    ``mask`` (flat, 1 = a real token) keeps."""
    target = torch.zeros_like(gates)
    target[:, expert] = 1.0
    per_token = (gates - target).pow(2).sum(-1)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def only_expert(parameter: nn.Parameter, expert: int):
    """Zero the gradient of every expert of a stacked (experts, ...) weight but ``expert``: the
    others get no Adam update at all (zero moments give a zero step; no weight decay)."""
    keep = torch.zeros(parameter.shape[0], *([1] * (parameter.dim() - 1)),
                       device=parameter.device, dtype=parameter.dtype)
    keep[expert] = 1.0
    return parameter.register_hook(lambda grad: grad * keep)


@dataclass
class UOEParams:
    loss: str = param("ga", choices=BASE_LOSSES)
    alpha: float = param(1.0, ge=0)
    epochs: int = param(5, ge=1)
    lr: float = param(1e-3, gt=0)
    batch_size: int = param(32, ge=1)
    beta: float = param(0.1, gt=0)
    retain_weight: float = param(1.0, ge=0)


# architecture="moe": it runs on models with routers only, so the contract tests that run every
# language method on the dense tiny Llama leave it to tests/test_moe.py.
def uoe_needs(params: UOEParams) -> tuple[str, ...]:
    """The retain set only for the base losses with a retain term (not GA)."""
    return ("forget",) if params.loss == "ga" or params.retain_weight == 0 else ("forget", "retain")


@methods.register("uoe", params=UOEParams, tasks=("language",), needs=uoe_needs,
                  architecture="moe")
def uoe(ctx: UnlearnContext, params: UOEParams):
    """UOE: train one expert and its router on ℓ_base + α·‖g − onehot(e*)‖² over forget tokens.

    Attribution: for every MoE block ℓ and expert i, the original model's gate probability
    g_i,t (softmax of the router logits) averaged over each forget sequence's tokens, then over
    the sequences; e* is the single highest (ℓ, i) over all blocks. Only e*'s MLP weights and
    block ℓ's router train (AdamW, no weight decay); every other weight stays bit-identical.
    ``loss``: "ga" −NLL(forget); "graddiff" adds the retain NLL; "npo" NPO's loss (β) plus the
    retain NLL (NPO+RT, as the registered npo); the retain term weighs ``retain_weight``. The
    anchor ‖g − onehot(e*)‖² on block ℓ's gate keeps the forget tokens routed to e* (α 1, the
    paper's best) so the unlearning does not reroute around the expert. Epochs over the
    forget set, each batch paired with the next retain batch, as GradDiff."""
    blocks = moe_blocks(ctx.original)
    if not blocks:
        raise UserError("uoe unlearns one expert of a mixture-of-experts model and this model "
                        "has no routers; choose an MoE benchmark (entities-moe-forget05)")
    task = ctx.task
    affinity = expert_affinity(task, ctx.original, ctx.forget)
    layer, expert = divmod(int(affinity.argmax()), affinity.shape[1])
    model = ctx.copy_original()
    block = moe_blocks(model)[layer][1]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    stacked = [block.experts.gate_up_proj, block.experts.down_proj]
    for parameter in [*stacked, block.gate.weight]:
        parameter.requires_grad_(True)
    hooks = [only_expert(p, expert) for p in stacked]
    ref = reference(ctx) if params.loss == "npo" else None

    def forget_loss(batch):
        outputs = []
        gates = gate_probabilities(model, lambda: outputs.append(task.forward(model, batch)))
        logits = outputs[0].logits[:, :-1][batch.targets != -100]
        if params.loss == "npo":
            base = npo_loss(-task.nll_sum_from_logits(logits, batch),
                            reference_log_prob(task, ref, batch), params.beta)
        else:
            base = -task.nll_from_logits(logits, batch).mean()
        return base + params.alpha * anchor_loss(gates[layer], expert,
                                                 batch.attention_mask.flatten().float())

    try:
        forget_then_retain(
            ctx, model, task.epochs(ctx.forget, params.batch_size, params.epochs, ctx.seed),
            forget_loss, lr=params.lr, batch_size=params.batch_size,
            retain_term="none" if params.loss == "ga" else "nll",
            retain_weight=params.retain_weight, reference_model=ref)
    finally:
        for hook in hooks:
            hook.remove()
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model
