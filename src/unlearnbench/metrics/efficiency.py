"""Cost of the unlearning step alone (metrics are timed separately), and speed-up versus
retraining (the retrained reference's training time, from the model cache's metadata), and
the cost in examples passed forward and backward (``train.counting_examples``) as a fraction
of the retrained reference's: the unit of ``run --budget``."""
from ..registry import metrics
from .evaluation import Evaluation, MetricResult

TASKS = ("classification", "language", "generation", "regression")  # every run has timings


def _timing(ev: Evaluation, key: str) -> MetricResult:
    return MetricResult(ev.timings.get(key))


@metrics.register("unlearn_seconds", tasks=TASKS, goal="lower", unit="s",
                  title="Unlearn", group="cost", column=90)
def unlearn_seconds(ev: Evaluation) -> MetricResult:
    """Wall-clock seconds of the unlearning step alone (RTE)."""
    return _timing(ev, "unlearn_seconds")


@metrics.register("unlearn_cpu_seconds", tasks=TASKS, goal="lower",
                  unit="s", title="Unlearn CPU", group="cost")
def unlearn_cpu_seconds(ev: Evaluation) -> MetricResult:
    """CPU seconds (all threads) of the unlearning step alone."""
    return _timing(ev, "unlearn_cpu_seconds")


@metrics.register("retrain_seconds", tasks=TASKS, goal="lower", unit="s",
                  title="Retrain", group="cost")
def retrain_seconds(ev: Evaluation) -> MetricResult:
    """Wall-clock seconds it took to train the retrained reference (the cost unlearning saves)."""
    return MetricResult(ev.scenario.retrain_seconds)


@metrics.register("speedup", tasks=TASKS, goal="higher", unit="ratio",
                  title="Speed-up", group="cost", column=91)
def speedup(ev: Evaluation) -> MetricResult:
    """Speed-up versus retraining: retrain seconds / unlearning seconds."""
    seconds = ev.timings.get("unlearn_seconds")
    if not seconds:
        return MetricResult(None)
    return MetricResult(ev.scenario.retrain_seconds / seconds)


@metrics.register("cost_fraction", tasks=TASKS, goal="lower", unit="fraction",
                  title="Cost / retrain", group="cost")
def cost_fraction(ev: Evaluation) -> MetricResult:
    """The examples the unlearning step passed forward with gradients (a step on B examples
    costs B; the store's ``examples`` column) as a fraction of the retrained reference's
    (its epochs × its training set): 0 for the original, 1 for retraining."""
    return _timing(ev, "cost_fraction")
