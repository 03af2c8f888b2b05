"""Corrective-unlearning metrics (Goel et al.): does removing the known part of a training-data
manipulation undo its effect? Scored with clean labels on the inputs the manipulation
targets; they apply only to corrective scenarios (which carry those splits)."""
import numpy as np

from ..registry import metrics
from .accuracy import split_accuracy
from .evaluation import Evaluation, MetricResult


@metrics.register("affected_accuracy", tasks=("classification",), splits=("affected_test",),
                  goal="higher", unit="%", title="Affected accuracy", group="utility")
def affected_accuracy(ev: Evaluation) -> MetricResult:
    """Clean-label test accuracy on the two classes whose training labels were swapped, percent."""
    return split_accuracy(ev, "affected_test")


@metrics.register("trigger_accuracy", tasks=("classification",), splits=("triggered_test",),
                  goal="higher", unit="%", title="Trigger accuracy", group="forget")
def trigger_accuracy(ev: Evaluation) -> MetricResult:
    """Clean-label accuracy on test inputs carrying the backdoor trigger, percent."""
    return split_accuracy(ev, "triggered_test")


@metrics.register("attack_success", tasks=("classification",), splits=("triggered_test",),
                  goal="lower", unit="%", title="Attack success", group="forget")
def attack_success(ev: Evaluation) -> MetricResult:
    """Backdoor attack success: % of triggered test inputs classified as the target class."""
    target = ev.scenario.spec.forget.classes[0]
    hit = (ev.logits("triggered_test").argmax(dim=1) == target).numpy().astype(np.float64)
    return MetricResult(100.0 * float(hit.mean()), "triggered_test", ev.ids("triggered_test"), hit)
