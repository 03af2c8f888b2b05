"""KL minimisation (TOFU's "KL" baseline): gradient ascent on the forget set while the retain
set's next-token distributions are held to the original model's."""
from __future__ import annotations

from dataclasses import dataclass

from ..params import param
from ..registry import methods
from .base import UnlearnContext
from .lm_objectives import forget_then_retain, reference


@dataclass
class KLParams:
    epochs: int = param(5, ge=1)
    lr: float = param(1e-4, gt=0)
    batch_size: int = param(32, ge=1)
    forget_weight: float = param(1.0, ge=0)
    retain_weight: float = param(1.0, ge=0)


@methods.register("kl", params=KLParams, tasks=("language",), needs=("forget", "retain"))
def kl(ctx: UnlearnContext, params: KLParams):
    """KL: L = −w_f·NLL(forget) + w_r·KL(p_θ₀ ‖ p_θ) on retain batches.

    NLL is the task's per-example mean answer NLL (as GA / GradDiff); the KL is taken per
    answer token between the next-token distributions of the frozen original θ₀ and the model
    (``task.logits`` of both) and averaged over the batch's answer tokens. (open-unlearning
    averages it over every position, prompt and padding included; here only the scored answer
    positions count, as everywhere in the language task.) Forget batches over the epochs, each
    paired with the next retain batch, as GradDiff. Published defaults (TOFU, 7B): weights 1,
    AdamW lr 1e-5, 5 epochs, batch 32. Chosen: the same, lr 1e-4 as GradDiff's default (tiny
    models: ``benchmarks.language.TINY_METHOD_PARAMS``)."""
    task = ctx.task
    ref = reference(ctx)
    model = ctx.copy_original()
    return forget_then_retain(
        ctx, model, task.epochs(ctx.forget, params.batch_size, params.epochs, ctx.seed),
        lambda batch: -task.nll(model, batch).mean(), lr=params.lr,
        batch_size=params.batch_size, retain_term="kl", retain_weight=params.retain_weight,
        forget_weight=params.forget_weight, reference_model=ref)
