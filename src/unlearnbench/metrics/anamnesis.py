"""The Anamnesis Index (AIN; Tarun et al., ICML 2023, "Deep Regression Unlearning"): how fast
the forgotten knowledge comes back, relative to a model that never had it.

A copy of the model is trained on the whole training set (forget ∪ retain) with the
benchmark's training recipe (its optimizer and batch size, at its rate held constant), and
the optimizer steps until its mean forget loss (the task's per-example loss: cross-entropy,
or the regression loss) first falls to (1 + α) times the original model's (α = 0.05) are
counted; likewise for the retrained reference. AIN = steps(unlearned) / steps(retrained):
near 1, the unlearned model relearns like one that never saw the forget set; near 0, the
knowledge was hidden, not removed. A model already at the threshold (the original) takes 0
steps: AIN 0. No value where the retrained model is already at the threshold (no scale) or
the model has no weights to train. Every parameter is trained; buffers (O3's adapters) are
not.

Deviations: the paper relearns at its own training setting (Adam, lr 0.01); Adam at 0.01
from a converged digits MLP throws the forget loss about in the first steps (to 0 and back
up to 34), so the first crossing is noise, hence the benchmark's own recipe. The paper
reads the loss on a held-out "forget-val" cohort; here on the forget examples themselves
(the first ``PROBE``), which every benchmark has. Steps are capped at ``MAX_STEPS``;
relearning is seeded (the same model always takes the same count). Computed on request
(``--metrics anamnesis_index``): it trains two models per evaluation."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..registry import metrics
from ..specs import Recipe
from ..train import make_optimizer
from .evaluation import Evaluation, MetricResult

ALPHA = 0.05     # the paper's tolerance on the original's forget loss
MAX_STEPS = 200    # a model still above the threshold then counts as MAX_STEPS
# The forget loss is read before every step: on the first PROBE forget examples (all of a
# digits or diabetes request), so that a class of MNIST costs no more than a small request.
PROBE = 512


@torch.no_grad()
def forget_loss(task, model: nn.Module, forget) -> float:
    model.eval()
    total = sum(float(task.nll(model, batch).double().sum())
                for batch in task.batches(forget, 512))
    return total / len(forget)


def relearn_steps(task, model: nn.Module, forget, train, threshold: float, recipe: Recipe,
                  max_steps: int = MAX_STEPS) -> int:
    """Optimizer steps of ``recipe`` (its optimizer, constant rate, batch size; seeded
    batches of ``train``) until the forget loss of a copy of ``model`` is ≤ ``threshold``:
    0 if it already is, ``max_steps`` if never."""
    torch.manual_seed(0)
    model = copy.deepcopy(model)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    optimizer = make_optimizer(model.parameters(), recipe.optimizer, recipe.lr, recipe.momentum,
                               recipe.weight_decay)
    epochs = -(-max_steps * recipe.batch_size // len(train))
    batches = task.epochs(train, recipe.batch_size, epochs, seed=0)
    for step, batch in zip(range(max_steps), batches):
        if forget_loss(task, model, forget) <= threshold:
            return step
        model.train()
        with torch.enable_grad():
            loss = task.nll(model, batch).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        optimizer.step()
    return max_steps


@metrics.register("anamnesis_index", tasks=("classification", "regression"), goal=1.0,
                  unit="ratio", title="Anamnesis index", group="forget", on_request=True)
def anamnesis_index(ev: Evaluation) -> MetricResult:
    """Anamnesis Index: steps to relearn the forget set, unlearned over retrained (1: like retrain)."""
    scenario, task = ev.scenario, ev.scenario.task
    if not any(True for _ in ev.model.parameters()):
        return MetricResult(None)  # nothing to train: relearning is not defined
    forget = scenario.splits["forget"]
    train = task.join("train", [forget, scenario.splits["retain"]])
    probe = forget.subset(np.arange(min(len(forget), PROBE)))
    threshold = (1 + ALPHA) * forget_loss(task, scenario.original, probe)
    recipe = scenario.spec.recipe
    gold = relearn_steps(task, scenario.reference, probe, train, threshold, recipe)
    if gold == 0:
        return MetricResult(None)  # the retrained model is already there: no scale
    return MetricResult(relearn_steps(task, ev.model, probe, train, threshold, recipe) / gold)
