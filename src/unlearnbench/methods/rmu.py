"""Representation Misdirection for Unlearning (RMU, Li et al. 2024, the WMDP paper): push
the forget data's activations at one layer toward a fixed random direction while holding the
retain data's activations where the original model puts them."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from ._shared import decoder_layers
from .base import UnlearnContext
from .lm_objectives import reference, retain_stream


def pick_layer(n_layers: int, layer: int | None) -> int:
    """``layer`` if given (negative counts from the end), else the default: the last block of
    a model of at most 2 blocks, otherwise block round(7·n/32) (WMDP's 7 of Zephyr's 32)."""
    if layer is None:
        return n_layers - 1 if n_layers <= 2 else max(2, round(7 * n_layers / 32))
    chosen = layer if layer >= 0 else n_layers + layer
    if not 0 <= chosen < n_layers:
        raise UserError(f"rmu: layer {layer} is out of range for a model of {n_layers} blocks")
    return chosen


def block_output(model: nn.Module, block: nn.Module, task, batch) -> torch.Tensor:
    """(B, L, hidden): the output of ``block`` (before any later block or final norm)."""
    seen = []

    def hook(_module, _inputs, output):
        seen.append(output[0] if isinstance(output, tuple) else output)

    handle = block.register_forward_hook(hook)
    try:
        task.forward(model, batch)
    finally:
        handle.remove()
    return seen[0]


def answer_mask(batch) -> torch.Tensor:
    """(B, L) 1 at the positions of the scored answer tokens (open-unlearning's label mask)."""
    mask = torch.zeros(batch.input_ids.shape, dtype=torch.float32, device=batch.input_ids.device)
    mask[:, 1:] = (batch.targets != -100).float()
    return mask


def activation_mse(activations: torch.Tensor, target: torch.Tensor, mask: torch.Tensor):
    """Per example, the mean over its masked positions of the per-position mean squared error
    over the hidden units; then the mean over the batch."""
    per_position = (activations.float() - target.float()).pow(2).mean(-1)
    return ((per_position * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


@dataclass
class RMUParams:
    epochs: int = param(5, ge=1)
    lr: float = param(5e-5, gt=0)
    batch_size: int = param(32, ge=1)
    steering: float = param(6.5, ge=0)
    alpha: float = param(1200.0, ge=0)
    # None: the default block (see pick_layer); negative counts from the end: any integer
    layer: int | None = param(None)
    n_updated: int = param(3, ge=1)


@methods.register("rmu", params=RMUParams, tasks=("language",), needs=("forget", "retain"))
def rmu(ctx: UnlearnContext, params: RMUParams):
    """RMU: L = MSE(h_ℓ(x_f), c·u) + α·MSE(h_ℓ(x_r), h_ℓ^θ₀(x_r)) over answer positions.

    h_ℓ is the output of transformer block ℓ; u is a fixed random unit vector (uniform [0, 1)
    entries, normalised, as the WMDP code; drawn from a generator seeded by the run's seed);
    θ₀ the frozen original. Only the MLP parameters of blocks ℓ−n+1..ℓ (``n_updated``, 3:
    ℓ−2..ℓ) are updated (with LoRA: their adapters). The MSE is averaged over the scored answer
    positions of each example, then over the batch (open-unlearning's form; WMDP takes every
    token of its corpus documents). Forget batches over the epochs, each paired with the next
    retain batch.

    Published defaults (WMDP, Zephyr-7B): ℓ = 7 of 32, blocks 5-7 (their down projections
    only), c 6.5, α 1200, AdamW lr 5e-5, 150 steps. Chosen: ℓ = 7/32 of the depth (the last
    block for models of 1-2 blocks), all MLP weights of ℓ−2..ℓ, c 6.5, α 1200, lr 5e-5, 5
    epochs; c and α depend on the scale of the activations, so tiny models take tuned values
    from ``benchmarks.language.TINY_METHOD_PARAMS``."""
    task = ctx.task
    ref = reference(ctx)
    model = ctx.copy_original()
    name, blocks = decoder_layers(model)
    _, ref_blocks = decoder_layers(ref)
    layer = pick_layer(len(blocks), params.layer)
    updated = range(max(0, layer - params.n_updated + 1), layer + 1)
    prefixes = tuple(f"{name}.{i}.mlp." for i in updated)
    trainable = []
    for param_name, parameter in model.named_parameters():
        keep = parameter.requires_grad and param_name.startswith(prefixes)
        parameter.requires_grad_(keep)
        if keep:
            trainable.append(parameter)
    if not trainable:
        raise UserError(f"rmu: no MLP parameters found in blocks {list(updated)}")
    hidden = model.get_input_embeddings().weight.shape[1]
    generator = torch.Generator().manual_seed(ctx.seed)
    u = torch.rand(hidden, generator=generator)
    control = (params.steering * u / u.norm()).to(task.device)
    optimizer = make_optimizer(trainable, "adamw", params.lr)
    retain = retain_stream(ctx, params.batch_size)

    def loss(forget_batch):
        acts = block_output(model, blocks[layer], task, forget_batch)
        value = activation_mse(acts, control.expand_as(acts), answer_mask(forget_batch))
        retain_batch = next(retain, None)
        if retain_batch is not None and params.alpha != 0:
            with torch.no_grad():
                frozen = block_output(ref, ref_blocks[layer], task, retain_batch)
            acts = block_output(model, blocks[layer], task, retain_batch)
            value = value + params.alpha * activation_mse(acts, frozen, answer_mask(retain_batch))
        return value

    optimise(model, optimizer, task.epochs(ctx.forget, params.batch_size, params.epochs,
                                           ctx.seed), loss, ctx.budget)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model
