"""LoKU (Cha et al. 2025, "Towards Robust and Parameter-Efficient Knowledge Unlearning for
LLMs", ICLR): the inverted hinge loss (IHL), which lowers each forget token only until the
next most likely token overtakes it, and FILA, LoRA adapters initialised from a
Fisher-weighted low-rank approximation of the weights so that the adapters start on the
directions that matter for the forget data."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..params import param
from ..registry import methods
from .base import UnlearnContext
from .lm_objectives import forget_then_retain, retain_stream

ADAPTER = "default"  # the adapter name peft gives the one LoRA add_lora makes


def inverted_hinge_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """mean over rows of max(0, 1 + p(y_t) − max_{v≠y_t} p(v)), p = softmax(logits) (T, V)."""
    p = torch.softmax(logits.float(), dim=-1)
    target = p.gather(1, tokens.unsqueeze(1)).squeeze(1)
    others = p.scatter(1, tokens.unsqueeze(1), float("-inf")).max(dim=1).values
    return torch.clamp(1 + target - others, min=0).mean()


# --------------------------------------------------------------------------- FILA

def lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The LoRA-wrapped layers of a peft model, by module name."""
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules()
            if isinstance(module, LoraLayer) and ADAPTER in module.lora_A}


def fisher_importance(ctx: UnlearnContext, model: nn.Module, layers: dict[str, nn.Module],
                      batch_size: int) -> dict[str, torch.Tensor]:
    """Per adapted base weight: F_f / (1e-5 + F_r), the diagonal empirical Fisher of the forget
    answers over that of the retain answers (the LoKU code's importance). F is Σ_batches
    n_b·g_b² / Σ n_b, g_b the gradient of batch b's token-mean answer NLL and n_b its answer
    token count; one pass over the forget set, each batch paired with the next retain batch.
    The base weights take gradients only for this pass."""
    task = ctx.task
    weights = {name: layer.base_layer.weight for name, layer in layers.items()}
    flags = {name: w.requires_grad for name, w in weights.items()}
    for weight in weights.values():
        weight.requires_grad_(True)
    sums = {kind: {n: torch.zeros_like(w) for n, w in weights.items()} for kind in "fr"}
    counts = {"f": 0, "r": 0}

    def accumulate(kind, batch):
        loss = F.cross_entropy(task.logits(model, batch).float(), batch.answer_tokens)
        grads = torch.autograd.grad(loss, list(weights.values()))
        tokens = len(batch.answer_tokens)
        for name, grad in zip(weights, grads):
            sums[kind][name] += grad.detach().pow(2) * tokens
        counts[kind] += tokens

    model.eval()
    retain = retain_stream(ctx, batch_size)
    try:
        for batch in task.batches(ctx.forget, batch_size):
            accumulate("f", batch)
            accumulate("r", next(retain))
    finally:
        for name, weight in weights.items():
            weight.requires_grad_(flags[name])
    return {n: (sums["f"][n] / counts["f"]) / (1e-5 + sums["r"][n] / counts["r"])
            for n in weights}


@torch.no_grad()
def fila_init(layer: nn.Module, importance: torch.Tensor) -> None:
    """Initialise one LoRA layer from the row-weighted rank-r approximation of its weight W
    (out × in): with row weights w_i = sqrt(Σ_j importance_ij) and the SVD U S Vᵀ of diag(w)·W,
    A = sqrt(S_r/s)·V_rᵀ, B = diag(1/(w + 1e-5))·U_r·sqrt(S_r/s) (s the LoRA scaling), and the
    base weight becomes W − s·B·A, so the layer computes exactly what it did."""
    transposed = bool(getattr(layer, "fan_in_fan_out", False))  # GPT-2 Conv1D keeps (in, out)
    base = layer.base_layer.weight
    weight = (base.T if transposed else base).float()
    importance = (importance.T if transposed else importance).float()
    rank, scaling = layer.r[ADAPTER], layer.scaling[ADAPTER]
    rows = importance.sum(dim=1).sqrt()
    u, s, vh = torch.linalg.svd(rows[:, None] * weight, full_matrices=False)
    root = (s[:rank] / scaling).sqrt()
    a = root[:, None] * vh[:rank]
    b = (u[:, :rank] * root) / (rows + 1e-5)[:, None]
    residual = weight - scaling * (b @ a)
    layer.lora_A[ADAPTER].weight.copy_(a)
    layer.lora_B[ADAPTER].weight.copy_(b)
    base.copy_(residual.T if transposed else residual)


def fila(ctx: UnlearnContext, model: nn.Module, batch_size: int) -> nn.Module:
    """FILA on every LoRA layer of ``model`` (in place); returns it."""
    layers = lora_layers(model)
    importance = fisher_importance(ctx, model, layers, batch_size)
    for name, layer in layers.items():
        fila_init(layer, importance[name])
    return model


# --------------------------------------------------------------------------- the method

@dataclass
class LoKUParams:
    epochs: int = param(5, ge=1)
    lr: float = param(1e-4, gt=0)
    batch_size: int = param(32, ge=1)
    retain_weight: float = param(1.0, ge=0)
    fisher_init: bool = True
    lora_rank: int = param(0, ge=0)


@methods.register("loku", params=LoKUParams, tasks=("language",), needs=("forget", "retain"))
def loku(ctx: UnlearnContext, params: LoKUParams):
    """LoKU: L = mean over forget answer tokens of IHL_t + w_r·NLL(retain), with
    IHL_t = max(0, 1 + p(y_t) − max_{v≠y_t} p(v)): pushing y_t down raises the most likely
    other token rather than every other token, so the forget answers are unlearned without
    the unbounded loss of gradient ascent. Forget batches over the epochs, each paired with
    the next retain batch, as GradDiff.

    LoRA: with the recipe's ``lora_rank`` (or this method's ``lora_rank`` > 0 on a recipe
    without LoRA) only LoRA adapters train, and with ``fisher_init`` they start from FILA:
    per adapted weight W, importance = F_forget / (1e-5 + F_retain) (diagonal empirical
    Fisher, squared gradients of the answer NLL, one pass over the forget set and as many
    retain batches); row weights w = sqrt(row sums of the importance); the rank-r SVD of
    diag(w)·W gives A and B, and the frozen weight becomes W − s·B·A, so the model is
    unchanged at initialisation. Without LoRA, ``fisher_init`` has nothing to initialise and
    LoKU is IHL + retain NLL with every weight trained.

    Published (paper and authors' code, TOFU with Phi-1.5 / Llama-2-7B): LoRA ranks 4-32 on
    every projection, AdamW lr 1e-4, 5 epochs, batch 4 × 4 accumulation steps, the retain NLL
    added to the IHL, FILA's importance from one epoch. Chosen: retain weight 1, 5 epochs,
    lr 1e-4, batch 32 (tiny models: ``benchmarks.language.TINY_METHOD_PARAMS``; their recipe
    has no LoRA, so FILA does not apply there). Deviations: an exact SVD
    (``torch.linalg.svd``) where the authors use the randomised ``torch.svd_lowrank`` (same
    result up to its approximation error, deterministic, slower on 7B-sized matrices); the
    retain term is the task's per-example mean answer NLL (the authors' is the token mean
    over the batch); the adapters are merged into the returned model."""
    from ..models.pretrained import add_lora, merge_lora

    recipe_rank = int(ctx.recipe.lora_rank or 0)
    if params.lora_rank < 0:
        raise UserError(f"loku lora_rank must be 0 (the recipe's) or more, got {params.lora_rank}")
    if recipe_rank and params.lora_rank and params.lora_rank != recipe_rank:
        raise UserError(f"loku lora_rank {params.lora_rank} differs from the recipe's LoRA rank "
                        f"{recipe_rank}; leave lora_rank at 0 to use the recipe's")
    model = ctx.copy_original()  # LoRA-wrapped when the recipe asks
    if not recipe_rank and params.lora_rank:
        model = add_lora(model, params.lora_rank)  # A drawn after copy_original's seeding
    if params.fisher_init and (recipe_rank or params.lora_rank):
        fila(ctx, model, params.batch_size)
    task = ctx.task
    model = forget_then_retain(
        ctx, model, task.epochs(ctx.forget, params.batch_size, params.epochs, ctx.seed),
        lambda batch: inverted_hinge_loss(task.logits(model, batch), batch.answer_tokens),
        lr=params.lr, batch_size=params.batch_size, retain_term="nll",
        retain_weight=params.retain_weight)
    return merge_lora(model)  # a plain model comes back as it is
