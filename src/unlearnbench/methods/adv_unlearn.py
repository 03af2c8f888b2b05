"""AdvUnlearn (Zhang et al., "Defensive Unlearning with Adversarial Training for Robust Concept
Erasure in Diffusion Models", NeurIPS 2024), for class-conditional diffusion models."""
from dataclasses import dataclass

import torch
from torch import nn

from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from ._diffusion import forgotten_class, paired_batches
from .base import UnlearnContext


@dataclass
class AdvUnlearnParams:
    eta: float = param(1.0, ge=0)
    retain_weight: float = param(1.0, ge=0)
    attack_steps: int = param(5, ge=1)
    attack_step: float = param(0.1, gt=0)
    attack_radius: float = param(3.0, gt=0)
    epochs: int = param(20, ge=1)
    lr: float = param(1e-4, gt=0)
    batch_size: int = param(64, ge=1)


def predict_with(model: nn.Module, x_t: torch.Tensor, t: torch.Tensor,
                 vector: torch.Tensor) -> torch.Tensor:
    """The model's noise prediction with the condition embedding ``vector`` for every example
    (the instance's ``embed_condition`` is shadowed for this one call)."""
    model.embed_condition = lambda conditions: vector.expand(len(conditions), -1)
    try:
        return model(x_t, t, torch.zeros_like(t))
    finally:
        del model.embed_condition


@methods.register("adv_unlearn", params=AdvUnlearnParams, tasks=("generation",),
                  needs=("forget", "retain"))
def adv_unlearn(ctx: UnlearnContext, params: AdvUnlearnParams):
    """AdvUnlearn: ESD's objective on the forgotten class and on an embedding PGD finds for it.

    Each step (a forget batch with a retain batch): the attack takes ``attack_steps`` signed
    gradient steps on a free condition embedding v, minimising the current model's DDPM loss
    of the forget images under v, inside an L∞ ball of ``attack_radius`` around the forgotten
    class's row (step and radius in units of the embedding table's root-mean-square entry, as
    ``attack_ua``), warm-started from the previous step's v (AdvUnlearn's "latest" init). The
    model then steps on ESD's loss ‖ε_θ(x_t, c) − [ε₀(x_t, ∅) − η(ε₀(x_t, c_f) − ε₀(x_t, ∅))]‖²
    for c = c_f and for c = v (the frozen original's target under the real class for both),
    plus ``retain_weight`` × ‖ε_θ(x_r, c_r) − ε₀(x_r, c_r)‖² on the noised retain images (the
    utility regulariser). Reference code: OPTML-Group/AdvUnlearn: η = 1, 30 PGD steps at lr
    1e-3 on one adversarial token, retain weight 1 (0.3 in its README's example), lr 1e-5 for
    1000 steps. Deviations: the published method trains Stable Diffusion's text encoder
    against adversarial prompt tokens; this U-Net has no text encoder, so the attack is on the
    class embedding itself and every weight of the denoiser is trained (ESD's defaults here:
    Adam 1e-4, 20 epochs of the forget set); x_t is a noised forget image, not a partial
    sample; the clean ESD term is kept beside the adversarial one; fewer attack steps
    (signed, with a scale-relative radius) to keep a step cheap. On digits-gen-class (seed 0,
    20 samples per class) UA / IRA / UA under ``attack_ua``: 90% / 93.3% / 75% (ESD's 100% /
    82.8% / 70%); retain weight 0.3: 100% / 85.6% / 70%; 10 or 20 attack steps: 75% and 65%
    under attack, no gain for the cost."""
    forgotten = forgotten_class(ctx, "adv_unlearn")
    model = ctx.copy_original()
    original = ctx.original
    optimizer = make_optimizer(model.parameters(), "adam", params.lr)
    device = next(model.parameters()).device
    with torch.no_grad():
        table = original.embed_condition(torch.arange(ctx.task.num_classes + 1, device=device))
    scale = float(table.pow(2).mean().sqrt())
    start, radius = table[forgotten], params.attack_radius * scale
    adversary = start.clone()

    def attack(x_t, t, noise):
        nonlocal adversary
        vector = adversary.clone().requires_grad_(True)
        for _ in range(params.attack_steps):
            loss = (predict_with(model, x_t, t, vector) - noise).pow(2).mean()
            (gradient,) = torch.autograd.grad(loss, [vector])
            with torch.no_grad():
                moved = vector - params.attack_step * scale * gradient.sign()
                vector.copy_(start + (moved - start).clamp(-radius, radius))
        adversary = vector.detach()

    def loss(pair):
        forget, kept = pair
        x_t, t, noise = ctx.task.noised(forget)
        attack(x_t, t, noise)
        with torch.no_grad():
            null = torch.full_like(forget.targets, ctx.task.null_condition)
            conditional = original(x_t, t, forget.targets)
            unconditional = original(x_t, t, null)
            target = unconditional - params.eta * (conditional - unconditional)
            x_r, t_r, _ = ctx.task.noised(kept)
            kept_target = original(x_r, t_r, kept.targets)
        erase = ((model(x_t, t, forget.targets) - target).pow(2).mean()
                 + (predict_with(model, x_t, t, adversary) - target).pow(2).mean())
        return erase + params.retain_weight * (model(x_r, t_r, kept.targets)
                                               - kept_target).pow(2).mean()

    optimise(model, optimizer, paired_batches(ctx, ctx.forget, ctx.retain, params.batch_size,
                                              params.epochs), loss, ctx.budget)
    return model
