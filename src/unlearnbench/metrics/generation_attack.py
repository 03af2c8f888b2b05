"""An embedding-space attack on class forgetting in a conditional diffusion model: can a
continuous condition, found by a few PGD steps, still make the model draw the forgotten class?

Methods that only change how the forgotten class's embedding is read (UCE's closed-form edit,
or overwriting its row of the embedding table) leave the images of that class in the
denoiser, reachable through another condition vector; UA alone scores them as perfect (the
motivation of RECE and AdvUnlearn, and of UnlearnDiffAtk's prompt attacks). The attack here
is in the spirit of textual inversion: starting from the forgotten class's embedding row, PGD
with signed gradient steps inside an L∞ ball minimises the DDPM loss of the real forget-set
images under that vector; the model then samples the scenario's prompts of the forgotten
class (the starting noise ``gen_ua`` reads) with it, guided against the null condition as
usual, and the same judge reads them.

- ``attack_ua`` (UA under attack): the share of those images the judge does not assign to
  the forgotten class, percent; higher is better. On a model that has truly lost the class
  it stays near its UA; an edit that hid the class falls toward the original's 0%."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..data import Split
from ..registry import metrics
from .evaluation import Evaluation, MetricResult
from .generation import forgotten

ATTACK_STEPS = 50
ATTACK_BATCH = 64
# Step and radius relative to the root-mean-square entry of the embedding table, so that the
# ball has the same meaning whatever scale training gave the table.
STEP_SIZE = 0.1
RADIUS = 3.0


class AdversarialCondition:
    """A model's condition embedding with one class's vector replaced by a free one; set as
    the model copy's ``embed_condition``, which its forward pass reads the conditions with."""

    def __init__(self, embed, label: int, vector: torch.Tensor):
        self.embed, self.label = embed, label
        self.vector = vector.requires_grad_(True)

    def __call__(self, conditions: torch.Tensor) -> torch.Tensor:
        rows = self.embed(conditions)
        return torch.where((conditions == self.label)[:, None], self.vector[None], rows)


def attacked_model(model: nn.Module, label: int, forget: Split, task) -> nn.Module:
    """A copy of ``model`` whose condition ``label`` reads the vector PGD found on ``forget``."""
    attacked = copy.deepcopy(model).eval()
    for parameter in attacked.parameters():
        parameter.requires_grad_(False)
    device = next(attacked.parameters()).device
    with torch.no_grad():
        table = attacked.embed_condition(torch.arange(attacked.num_classes + 1, device=device))
    scale = float(table.pow(2).mean().sqrt())
    start = table[label].clone()
    attacked.embed_condition = condition = AdversarialCondition(attacked.embed_condition, label,
                                                                start.clone())
    with torch.enable_grad():
        for step in range(ATTACK_STEPS):
            batch = next(task.batches(forget, ATTACK_BATCH, shuffle=True, seed=step))
            loss = task.nll(attacked, batch).mean()
            (gradient,) = torch.autograd.grad(loss, [condition.vector])
            with torch.no_grad():
                moved = condition.vector - STEP_SIZE * scale * gradient.sign()
                condition.vector.copy_(start + (moved - start).clamp(-RADIUS * scale,
                                                                     RADIUS * scale))
    return attacked


def not_recognised(predicted: torch.Tensor, label: int, ids: np.ndarray) -> MetricResult:
    """The percentage of ``predicted`` classes other than ``label``, per example."""
    missed = (predicted.numpy() != label).astype(np.float64)
    return MetricResult(100.0 * float(missed.mean()), "prompts", ids, missed)


@metrics.register("attack_ua", tasks=("generation",), splits=("prompts", "forget"),
                  goal="higher", unit="%", title="UA (attack)", group="forget", column=54)
def attack_ua(ev: Evaluation) -> MetricResult:
    """UA under an embedding-space PGD attack: forgotten-class images still not recognised."""
    task, label = ev.scenario.task, forgotten(ev)
    prompts = ev.scenario.splits["prompts"]
    rows = np.flatnonzero(prompts.targets.numpy() == label)
    attacked = attacked_model(ev.model, label, ev.scenario.splits["forget"], task)
    images = task.denoise(attacked, prompts.subset(rows), task.sample_steps, task.guidance)
    judge_task, judge = task.judges[0]
    generated = Split("attacked", images, prompts.targets[rows], prompts.ids[rows])
    predicted = judge_task.predict_logits(judge, generated).argmax(1)
    return not_recognised(predicted, label, prompts.ids[rows])
