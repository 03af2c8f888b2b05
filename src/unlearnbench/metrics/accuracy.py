"""Accuracy metrics of the SalUn / l1-sparse family, in percent: UA = 100 − accuracy on the
forget set, RA on retain, TA on test (and forget accuracy itself)."""
import numpy as np

from ..registry import metrics
from .evaluation import Evaluation, MetricResult


def split_accuracy(ev: Evaluation, split: str) -> MetricResult:
    correct = (ev.logits(split).argmax(dim=1) == ev.targets(split)).numpy().astype(np.float64)
    value = 100.0 * float(correct.mean()) if len(correct) else float("nan")
    return MetricResult(value, split, ev.ids(split), correct)


@metrics.register("forget_accuracy", tasks=("classification",), goal="retrain", unit="%",
                  title="Forget accuracy", group="forget")
def forget_accuracy(ev: Evaluation) -> MetricResult:
    """Accuracy on the forget set, percent (per example: 1 if classified correctly)."""
    return split_accuracy(ev, "forget")


@metrics.register("ua", tasks=("classification",), goal="retrain", unit="%", title="UA",
                  group="forget", column=10)
def unlearning_accuracy(ev: Evaluation) -> MetricResult:
    """UA: 100 − accuracy on the forget set, percent (SalUn's unlearning accuracy)."""
    accuracy = ev.value("forget_accuracy")
    return MetricResult(100.0 - accuracy.value, accuracy.split, accuracy.ids,
                        1.0 - accuracy.per_example)


@metrics.register("ra", tasks=("classification",), goal="higher", unit="%", title="RA",
                  group="utility", column=11)
def retain_accuracy(ev: Evaluation) -> MetricResult:
    """RA: accuracy on the retain set, percent."""
    return split_accuracy(ev, "retain")


@metrics.register("ta", tasks=("classification",), goal="higher", unit="%", title="TA",
                  group="utility", column=12)
def test_accuracy(ev: Evaluation) -> MetricResult:
    """TA: accuracy on the test set, percent."""
    return split_accuracy(ev, "test")
