"""Avg. Gap to the retrained reference (SalUn), and the mean gap every task's version of it
takes (regression's MSE Gap, the generative gaps)."""
from ..registry import metrics
from .evaluation import Evaluation, MetricResult

GAP_METRICS = ("ua", "ra", "ta", "mia_efficacy")


@metrics.register("avg_gap", tasks=("classification",), goal="lower", unit="%", title="Avg. Gap",
                  group="overall", column=14, headline=True)
def average_gap(ev: Evaluation) -> MetricResult:
    """Avg. Gap: mean |value − retrained value| over UA, RA, TA and MIA-efficacy (0 = retrain)."""
    return mean_gap(ev, GAP_METRICS)


def mean_gap(ev: Evaluation, names) -> MetricResult:
    """The mean over ``names`` of |value − the retrained reference's value|."""
    gaps = [abs(ev.value(name).value - ev.reference.value(name).value) for name in names]
    return MetricResult(sum(gaps) / len(gaps))
