"""Blindspot unlearning (Tarun et al., ICML 2023, "Deep Regression Unlearning")."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.inspect import layers
from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from .base import UnlearnContext


@dataclass
class BlindspotParams:
    proxy_epochs: int = param(10, ge=1)
    proxy_lr: float = param(0.01, gt=0)
    epochs: int = param(5, ge=1)
    lr: float = param(1e-3, gt=0)
    batch_size: int = param(32, ge=1)
    # The weight of the activation-matching term (the paper's AT_beta).
    beta: float = param(50.0, ge=0)


def attention_map(activation: torch.Tensor) -> torch.Tensor:
    """A(x) = normalize(mean_c x²) per example, flattened: the attention-transfer map of a
    convolutional activation (N, C, H, W); for a vector activation (N, D), normalize(x²)."""
    energy = activation.pow(2).mean(1) if activation.dim() > 2 else activation.pow(2)
    return F.normalize(energy.flatten(1), dim=1)


class Activations:
    """Records the outputs of a model's hidden weight layers (all but the last) on each
    forward pass."""

    def __init__(self, model: nn.Module):
        self.outputs: list[torch.Tensor] = []
        self.hooks = [layer.register_forward_hook(
            lambda module, inputs, output: self.outputs.append(output))
            for layer in layers(model)[:-1]]

    def take(self) -> list[torch.Tensor]:
        outputs, self.outputs = self.outputs, []
        return outputs

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


def train_proxy(ctx: UnlearnContext, params: BlindspotParams) -> nn.Module:
    """The blindspot model: a fresh model trained briefly on the retain set (Adam,
    ``proxy_lr``, ``proxy_epochs``), so it has never seen the forget examples."""
    proxy = ctx.task.fresh_model(ctx.seed)
    optimizer = make_optimizer(proxy.parameters(), "adam", params.proxy_lr)
    batches = ctx.task.epochs(ctx.retain, params.batch_size, params.proxy_epochs, ctx.seed + 1)
    optimise(proxy, optimizer, batches, lambda b: ctx.task.nll(proxy, b).mean(), ctx.budget,
             observed=False)
    return proxy.eval()


@methods.register("blindspot", params=BlindspotParams, tasks=("regression",),
                  needs=("forget", "retain"))
def blindspot(ctx: UnlearnContext, params: BlindspotParams):
    """Blindspot: pull forget outputs and layer attention maps toward a retain-only proxy model.

    Tarun et al. (ICML 2023), reference code ayushkumartarun/deep-regression-unlearning
    (``unlearn.py``: ``forget_loss``, ``fit_one_forget_cycle``). A blindspot model g is
    trained from scratch on the retain set for a few epochs; the original f is then
    fine-tuned on forget ∪ retain: per batch, L = p·L_forget + (1 − p)·L_retain with p the
    batch's share of forget examples, L_retain = loss(f(x_r), y_r) and L_forget =
    loss(f(x_f), g(x_f)) + β Σ_l mean (A(f_l(x_f)) − A(g_l(x_f)))² over the hidden weight
    layers l, A the attention-transfer map (``attention_map``), β = 50. Paper: 2 proxy
    epochs at lr 0.01 (AgeDB; 10 for STS-B), then 1 epoch (AgeDB; 5 for STS-B) at Adam lr
    1e-3, L1 loss. Deviations: 10 proxy epochs and 5 epochs (STS-B's), as the diabetes pool
    is ten batches an epoch; the task's loss (MSE by default); a vector activation's map is
    normalize(x²) over its units (the paper's channel mean would leave one constant value);
    the layers matched are the outputs of every weight layer but the last."""
    proxy = train_proxy(ctx, params)
    model = ctx.copy_original()
    forget_ids = set(np.asarray(ctx.forget.ids).tolist())
    training = ctx.task.join("blindspot", [ctx.forget, ctx.retain])
    student, teacher = Activations(model), Activations(proxy)

    def loss(batch):
        flags = torch.as_tensor([i in forget_ids for i in batch.ids.tolist()],
                                device=batch.inputs.device)
        outputs = ctx.task.logits(model, batch)
        student_maps = student.take()
        with torch.no_grad():
            proxy_outputs = ctx.task.logits(proxy, batch)
        proxy_maps = teacher.take()
        share = float(flags.float().mean())
        total = torch.zeros((), device=outputs.device)
        if share < 1:
            total = total + (1 - share) * ctx.task.nll_from_logits(
                outputs[~flags], _rows(batch, ~flags)).mean()
        if share > 0:
            toward_proxy = dataclasses.replace(_rows(batch, flags),
                                               targets=proxy_outputs[flags, 0])
            matching = sum((attention_map(s[flags]) - attention_map(t[flags])).pow(2).mean()
                           for s, t in zip(student_maps, proxy_maps))
            total = total + share * (ctx.task.nll_from_logits(outputs[flags], toward_proxy).mean()
                                     + params.beta * matching)
        return total

    optimizer = make_optimizer(model.parameters(), "adam", params.lr)
    try:
        optimise(model, optimizer,
                 ctx.task.epochs(training, params.batch_size, params.epochs, ctx.seed), loss,
                 ctx.budget)
    finally:
        student.remove()
        teacher.remove()
    return model


def _rows(batch, keep: torch.Tensor):
    """The batch restricted to the rows ``keep`` marks."""
    return dataclasses.replace(batch, inputs=batch.inputs[keep], targets=batch.targets[keep],
                               ids=batch.ids[keep.cpu().numpy()])
