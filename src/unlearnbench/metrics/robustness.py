"""Robustness probes any run can request (``--metrics robustness``), on question-answer
forget sets:

- relearning attack: fine-tune a copy of the model for ``RELEARN_STEPS`` steps on the first
  half of the forget set and measure the answer probability on the other half. Unlearning
  that only hid the answers lets them come back; compare with the retain model under the
  same attack (the metric's reference value);
- in-context reintroduction (UnUnlearning): the forget fact is given in the prompt before
  its question; a model that cannot use a fact it is handed is damaged, not unlearned."""
from __future__ import annotations

import copy

import numpy as np
import torch

from ..data.text import QUESTION_TEMPLATE, TextSplit
from ..registry import metrics
from ..train import StepBudget, make_optimizer, optimise
from .evaluation import Evaluation, MetricResult

RELEARN_STEPS = 10
RELEARN_BATCH = 8


def is_qa(split: TextSplit) -> bool:
    return bool(split.records) and all("question" in r for r in split.records)


@metrics.register("relearn_forget_prob", tasks=("language",), splits=("forget",),
                  goal="retrain", suite="robustness", unit="fraction",
                  title="Relearned forget P", group="forget")
def relearn_forget_prob(ev: Evaluation) -> MetricResult:
    """Relearning attack: answer probability on half the forget set after training on the rest."""
    forget, task = ev.scenario.splits["forget"], ev.scenario.task
    if not is_qa(forget) or len(forget) < 2:
        return MetricResult(None)
    half = len(forget) // 2
    attack, probe = forget.subset(np.arange(half)), forget.subset(np.arange(half, len(forget)))
    torch.manual_seed(0)
    model = copy.deepcopy(ev.model)
    recipe = ev.scenario.spec.recipe
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], "adamw",
                               recipe.lr)
    batches = task.epochs(attack, RELEARN_BATCH, RELEARN_STEPS, seed=0)
    with torch.enable_grad():
        optimise(model, optimizer, batches, lambda b: task.nll(model, b).mean(),
                 StepBudget(RELEARN_STEPS))
    values = np.exp(-task.answer_nll(model, probe).numpy().astype(np.float64))
    return MetricResult(float(values.mean()), "forget", probe.ids, values)


@metrics.register("incontext_forget_prob", tasks=("language",), splits=("forget",),
                  goal="higher", suite="robustness", unit="fraction",
                  title="In-context forget P", group="utility")
def incontext_forget_prob(ev: Evaluation) -> MetricResult:
    """In-context reintroduction: forget answer probability with the fact stated in the prompt."""
    forget = ev.scenario.splits["forget"]
    if not is_qa(forget):
        return MetricResult(None)
    records = tuple({"prefix": f"{r['question']} {r['answer']}\n"
                               + QUESTION_TEMPLATE.format(question=r["question"]),
                     "continuation": " " + r["answer"]} for r in forget.records)
    text_set = TextSplit("forget~incontext", records, forget.ids)
    values = np.exp(-ev.cache.output(ev.model, text_set, "token_statistics").mean_nll())
    return MetricResult(float(values.mean()), "forget", forget.ids, values)
