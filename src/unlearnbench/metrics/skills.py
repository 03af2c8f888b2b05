"""Skill unlearning (``skills-mini``, ``skills-smol``): accuracy on held-out questions of the
forgotten skill and of the kept one. A skill is a rule, so questions the model never trained
on tell whether it still has the skill, not whether it remembers its training questions."""
from __future__ import annotations

import numpy as np

from ..data.text import prompt_and_answer
from ..registry import metrics
from .evaluation import Evaluation, MetricResult


def normalise(text: str) -> str:
    """An answer as scored: its first line, whitespace collapsed, a final full stop dropped. A
    pretrained chat model ends "63" as "63." or goes on after a blank line; the one-line
    answers of skills-mini are scored exactly."""
    first = text.strip().split("\n")[0]
    return " ".join(first.split()).removesuffix(".")


def skill_answers(ev: Evaluation, split: str) -> MetricResult:
    """Percent of ``split``'s greedy answers equal to the reference after ``normalise``. Not
    ``answers.exact_answers``, which reads question records only: skills-smol's are prompts in
    the model's chat template (prefix and continuation)."""
    records = ev.scenario.splits[split].records
    answers = ev.output(split, "generate")
    values = np.array([normalise(a) == normalise(prompt_and_answer(r)[1])
                       for a, r in zip(answers, records)], dtype=np.float64)
    return MetricResult(100.0 * float(values.mean()), split, ev.ids(split), values)


@metrics.register("skill_forget_accuracy", tasks=("language",), splits=("forget_test",),
                  goal="lower", unit="%", title="Forget skill", group="forget")
def skill_forget_accuracy(ev: Evaluation) -> MetricResult:
    """Percent of the forget skill's held-out questions answered right (greedy decoding,
    answers compared after ``normalise``); a model without the skill answers few or none."""
    return skill_answers(ev, "forget_test")


@metrics.register("skill_retain_accuracy", tasks=("language",), splits=("retain_test",),
                  goal="higher", unit="%", title="Retain skill", group="utility")
def skill_retain_accuracy(ev: Evaluation) -> MetricResult:
    """Percent of the kept skill's held-out questions answered right (greedy decoding,
    answers compared after ``normalise``)."""
    return skill_answers(ev, "retain_test")
