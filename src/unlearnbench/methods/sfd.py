"""Score Forgetting Distillation (SFD; Chen et al., "Score Forgetting Distillation: A Swift,
Data-Free Method for Machine Unlearning in Diffusion Models", ICLR 2025), for class-conditional
diffusion models."""
from dataclasses import dataclass

import torch

from ..data import Split
from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from ._diffusion import forgotten_class, other_class
from .base import UnlearnContext


@dataclass
class SFDParams:
    override: int = param(-1, ge=-2)
    forget_weight: float = param(1.0, ge=0)
    samples_per_class: int = param(64, ge=1)
    epochs: int = param(5, ge=1)
    lr: float = param(1e-3, gt=0)
    batch_size: int = param(64, ge=1)


@methods.register("sfd", params=SFDParams, tasks=("generation",), needs=("forget",))
def sfd(ctx: UnlearnContext, params: SFDParams):
    """SFD: distil the frozen original's scores into a student, the forgotten class's from another.

    Data-free: the original draws ``samples_per_class`` DDIM samples (the task's steps and
    guidance) for every class but the forgotten c_f and as many for the override condition
    c_o; those drawn for c_o are labelled c_f. The student (a copy of the original) is
    trained on them, noised at seeded random timesteps, to minimise w(c)·‖ε_θ(x_t, c) −
    sg ε₀(x_t, teacher(c))‖², teacher(c_f) = c_o and teacher(c) = c otherwise, w(c_f) =
    ``forget_weight``, 1 for the rest: the remaining classes' scores are kept and the
    forgotten class's score becomes the override's, on samples of what it should draw.
    ``override``: −1 the next class (the reference fixes one class, ``label_to_override``
    1, or draws one at random), −2 the null condition, or a class. Reference code:
    tqch/score-forgetting-distillation (DDPM/). Deviations: SFD distils into a one-step
    generator with score identity distillation (SiD: a fake-score network trained on the
    generator's samples, generator loss ((p_x − sg_x)·((p_x − x0) − α(p_x − sg_x)))/ω, α 1.2,
    forget weight 0.01, Adam 1e-5 for 50k iterations); here the student keeps the multi-step
    denoiser and matches the teacher's score directly on samples the teacher drew once, so
    there is no fake-score network and sampling stays DDIM. Adam 1e-3, 5 epochs of the
    replayed set: on digits-gen-class (seed 0, 20 samples per class) UA 100%, IRA 99.4%, UA
    under ``attack_ua`` 25%."""
    forgotten = forgotten_class(ctx, "sfd")
    override = (ctx.task.null_condition if params.override == -2
                else other_class(ctx, forgotten, params.override, "sfd", "override"))
    original = ctx.original
    drawn = [c for c in range(ctx.task.num_classes) if c != forgotten] + [override]
    images = ctx.task.sample(original, drawn, params.samples_per_class, seed=ctx.seed)
    labels = torch.tensor([forgotten if i == len(drawn) - 1 else c for i, c in enumerate(drawn)])
    replay = Split("replay", images, labels.repeat_interleave(params.samples_per_class),
                   torch.arange(len(images)).numpy())
    model = ctx.copy_original()
    optimizer = make_optimizer(model.parameters(), "adam", params.lr)

    def loss(batch):
        x_t, t, _ = ctx.task.noised(batch)
        is_forget = batch.targets == forgotten
        with torch.no_grad():
            target = original(x_t, t, torch.where(is_forget, override, batch.targets))
        weight = torch.where(is_forget, params.forget_weight, 1.0)
        per_example = (model(x_t, t, batch.targets) - target).pow(2).flatten(1).mean(1)
        return (weight * per_example).mean()

    batches = ctx.task.epochs(replay, params.batch_size, params.epochs, ctx.seed)
    optimise(model, optimizer, batches, loss, ctx.budget)
    return model
