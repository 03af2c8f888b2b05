"""Avg. Gap to the retrained reference (SalUn)."""
from ..registry import metrics
from .evaluation import Evaluation, MetricResult

GAP_METRICS = ("ua", "ra", "ta", "mia_efficacy")


@metrics.register("avg_gap", tasks=("classification",), goal="lower", unit="%", title="Avg. Gap",
                  group="overall", column=14, headline=True)
def average_gap(ev: Evaluation) -> MetricResult:
    """Avg. Gap: mean |value − retrained value| over UA, RA, TA and MIA-efficacy (0 = retrain)."""
    gaps = [abs(ev.value(name).value - ev.reference.value(name).value) for name in GAP_METRICS]
    return MetricResult(sum(gaps) / len(gaps))
