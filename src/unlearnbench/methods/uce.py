"""Unified Concept Editing (UCE; Gandikota et al., "Unified Concept Editing in Diffusion
Models", WACV 2024), for class-conditional diffusion models."""
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..models.diffusion import timestep_embedding
from ..params import param
from ..registry import methods
from ._diffusion import anchor_conditions, erased_conditions
from .base import UnlearnContext


@dataclass
class UCEParams:
    guide: int = param(-2, ge=-2)
    erase_scale: float = param(1.0, ge=0)
    preserve_scale: float = param(1.0, ge=0)
    lamb: float = param(0.5, gt=0)
    timesteps: int = param(50, ge=1)


def condition_inputs(model: nn.Module, classes: list[int], times: torch.Tensor) -> torch.Tensor:
    """What the conditioning maps read for each class at each of ``times``: the time MLP's
    output plus the class embedding, (len(classes) · len(times), embedding)."""
    from_time = model.time(timestep_embedding(times, model.embedding))
    rows = model.embed_condition(torch.tensor(classes, device=times.device))
    return (rows[:, None, :] + from_time[None]).flatten(0, 1)


def edited(weight: torch.Tensor, erase: torch.Tensor, guide: torch.Tensor,
           preserve: torch.Tensor, params: UCEParams) -> torch.Tensor:
    """UCE's closed form W = (λW₀ + s_e Σ v*cᵀ + s_p Σ (W₀c_p)c_pᵀ)(λI + s_e Σ ccᵀ + s_p Σ c_pc_pᵀ)⁻¹
    with v* = W₀c_guide; rows of ``erase``, ``guide`` and ``preserve`` are the c's."""
    weight = weight.double()
    erase, guide, preserve = erase.double(), guide.double(), preserve.double()
    left = (params.lamb * weight + params.erase_scale * (weight @ guide.T) @ erase
            + params.preserve_scale * (weight @ preserve.T) @ preserve)
    right = (params.lamb * torch.eye(weight.shape[1], dtype=torch.float64, device=weight.device)
             + params.erase_scale * erase.T @ erase + params.preserve_scale * preserve.T @ preserve)
    return torch.linalg.solve(right, left, left=False)


@methods.register("uce", params=UCEParams, tasks=("generation",), needs=("forget",))
def uce(ctx: UnlearnContext, params: UCEParams):
    """UCE: a closed-form edit of every linear map reading the condition, erase → guide.

    UCE edits Stable Diffusion's cross-attention K/V projections W (d_out × d_text), the
    maps that read the prompt: W = (λW₀ + s_e Σ_{i∈E} v*_i c_iᵀ + s_p Σ_{j∈P} (W₀c_j)c_jᵀ) ·
    (λI + s_e Σ_{i∈E} c_i c_iᵀ + s_p Σ_{j∈P} c_j c_jᵀ)⁻¹, v*_i = W₀ c_guide. In this U-Net
    the condition is read by each residual block's ``embed`` linear map, whose input is the
    class embedding plus the time MLP's output; so c runs over (class, t) pairs, t on
    ``timesteps`` evenly spaced steps: E the forgotten class's, the guide's inputs at the
    same t as targets, P every other class's and the null condition's (the time part is
    preserved with them). ``guide``: -2 the null condition (UCE's "" guide), -1 the next
    class, or a class. Reference code: rohitgandikota/unified-concept-editing, s_e = s_p = 1,
    λ = 0.5 (its defaults, kept). No gradient steps; the class embedding table and the biases
    are left as they are.

    On a style × object grid a style (object) request erases every pair with that style
    (object), each onto the null condition or (``guide`` ≥ -1 naming a style, or object)
    onto the same pair in the guide style (object)."""
    erased = erased_conditions(ctx, "uce")
    null = ctx.task.null_condition
    guides = ([null] * len(erased) if params.guide == -2
              else anchor_conditions(ctx, erased, params.guide, "uce", "guide"))
    model = ctx.copy_original()
    if not all(hasattr(model, name) for name in ("time", "embed_condition", "embedding")):
        raise UserError("uce edits the class-conditional U-Net (ddpm_unet); this model has no "
                        "class embedding added to a time embedding")
    device = next(model.parameters()).device
    times = torch.linspace(0, ctx.task.schedule.timesteps - 1, params.timesteps,
                           device=device).round().long()
    kept = ([c for c in range(ctx.task.num_classes + 1) if c not in erased and c not in guides]
            + sorted(set(guides)))
    with torch.no_grad():
        erase = condition_inputs(model, erased, times)
        target = condition_inputs(model, guides, times)
        preserve = condition_inputs(model, kept, times)
        for module in model.modules():
            if isinstance(getattr(module, "embed", None), nn.Linear):
                layer = module.embed
                layer.weight.copy_(edited(layer.weight, erase, target, preserve, params)
                                   .to(layer.weight.dtype))
    return model
