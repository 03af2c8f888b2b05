"""Skill unlearning (``skills-mini``): exact-answer accuracy on held-out questions of the
forgotten skill and of the kept one. A skill is a rule, so questions the model never trained
on tell whether it still has the skill, not whether it remembers its training questions."""
from __future__ import annotations

from ..registry import metrics
from .answers import exact_answers
from .evaluation import Evaluation, MetricResult


@metrics.register("skill_forget_accuracy", tasks=("language",), splits=("forget_test",),
                  goal="lower", unit="%", title="Forget skill", group="forget")
def skill_forget_accuracy(ev: Evaluation) -> MetricResult:
    """Percent of the forget skill's held-out questions answered exactly (greedy decoding);
    a model never trained on the skill answers few or none."""
    return exact_answers(ev, "forget_test")


@metrics.register("skill_retain_accuracy", tasks=("language",), splits=("retain_test",),
                  goal="higher", unit="%", title="Retain skill", group="utility")
def skill_retain_accuracy(ev: Evaluation) -> MetricResult:
    """Percent of the kept skill's held-out questions answered exactly (greedy decoding)."""
    return exact_answers(ev, "retain_test")
