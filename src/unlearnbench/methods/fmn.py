"""Forget-Me-Not (FMN; Zhang et al., "Forget-Me-Not: Learning to Forget in Text-to-Image
Diffusion Models", CVPR 2024 workshops), for class-conditional diffusion models."""
from dataclasses import dataclass

import torch
from torch import nn

from ..data.styles import FACTORS
from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from ._diffusion import erased_conditions, forgotten_factor
from .base import UnlearnContext, freeze_all_but
from .concept_ablation import condition_modules


@dataclass
class FMNParams:
    steps: int = param(100, ge=1)
    lr: float = param(1e-3, gt=0)


def concept_vector(ctx: UnlearnContext):
    """A function of the model giving the forgotten concept's embedding: its class's row,
    the forgotten style's (object's) row on a grid, or the sum of a pair's two rows (what the
    pair adds to the condition)."""
    factor = forgotten_factor(ctx)
    erased = erased_conditions(ctx, "fmn")
    if factor is None:
        return lambda model: model.embed_condition(
            torch.tensor(erased[:1], device=next(model.parameters()).device))[0]
    table, value = FACTORS.index(factor), int(ctx.task.grid.factor_values(erased[0], factor))
    return lambda model: model.factor_embeddings[table].weight[value]


def concept_attention(model: nn.Module, concept: torch.Tensor) -> torch.Tensor:
    """Σ over the residual blocks of ‖W_embed · concept‖²: how much the concept moves the
    features each block reads it into."""
    maps = [m.embed for m in model.modules() if isinstance(getattr(m, "embed", None), nn.Linear)]
    return sum((block.weight @ concept).pow(2).sum() for block in maps)


@methods.register("fmn", params=FMNParams, tasks=("generation",), needs=("forget",))
def fmn(ctx: UnlearnContext, params: FMNParams):
    """FMN: attention re-steering, the concept's share of what the denoiser reads driven to 0.

    FMN fine-tunes Stable Diffusion's cross-attention layers to minimise the attention
    probabilities at the concept's token positions (the Frobenius norm of those maps, summed
    over every cross-attention layer), for 35 steps (UnlearnCanvas: Adam 2e-5, 100 steps,
    cross-attention only for styles), after a textual inversion that finds the concept's
    token. This U-Net has no cross-attention: its condition enters each residual block as
    ``embed(time + condition)`` added to the features. The concept's "attention" is therefore
    what its embedding e adds there, Σ_blocks ‖W_embed e‖², minimised (divided by its value
    in the original, so the loss starts at 1) over the maps that read the condition (the
    embedding tables and each block's ``embed``: the analogue of cross-attention's weights).
    e is the forgotten class's row of the embedding table; on a style × object grid the
    forgotten style's (object's) row, or a pair's two rows summed. The textual inversion
    stage is not needed: the concept already has its learned row. Data-free like FMN's
    loss, which reads no image beyond the attention maps. Adam 1e-3 for 100 steps: on
    digits-gen-class (seed 0) the concept keeps 31% of its share at 1e-4, 2e-5 at 1e-3, and
    UA / IRA are 94% / 98.7% (the original's 0% / 98.9%); on canvas-digits-style UA 12%.
    No term keeps the other concepts: shrinking W_embed along e also shrinks what the
    concepts sharing its direction add (UnlearnCanvas measures FMN's IRA at 57% and CRA at
    47% on styles)."""
    concept = concept_vector(ctx)
    model = ctx.copy_original()
    trainable = freeze_all_but(model, condition_modules(model))
    optimizer = make_optimizer(trainable, "adam", params.lr)
    with torch.no_grad():
        start = concept_attention(model, concept(model)).clamp(min=1e-12)

    def loss(_):
        return concept_attention(model, concept(model)) / start

    optimise(model, optimizer, range(params.steps), loss, ctx.budget)
    return model
