"""An Evaluation scores one model against a scenario: metrics ask it for logits (through the
shared inference cache) and for other metrics' values (memoised), and metrics that compare
with the retrained reference evaluate ``ev.reference`` with the same cache."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..data.text import answer_variants
from ..registry import metrics
from .inference import InferenceCache


@dataclass
class MetricResult:
    """A metric's value (None when it does not apply, e.g. timings of the reference) and,
    optionally, per-example values over one split and a confidence interval (low, high),
    stored beside the value as ``<name>_low`` and ``<name>_high``."""

    value: float | None
    split: str | None = None
    ids: np.ndarray | None = None
    per_example: np.ndarray | None = None
    interval: tuple[float, float] | None = None


@dataclass
class Evaluation:
    scenario: object
    model: nn.Module
    cache: InferenceCache
    timings: dict = field(default_factory=dict)
    is_reference: bool = False
    _results: dict = field(default_factory=dict)
    _reference: "Evaluation | None" = None

    def logits(self, split: str) -> torch.Tensor:
        return self.cache.logits(self.model, self.scenario.splits[split])

    def output(self, split: str, what: str, answers: str | None = None):
        """A task output over a split (``token_statistics``, ``generate``...), from the cache;
        ``answers="paraphrased"`` / ``"perturbed"``: over the split's questions with those
        answers instead (a text set of its own; None where the split has none)."""
        text_set = self.scenario.splits[split]
        if answers is not None:
            text_set = answer_variants(text_set, answers)
            if text_set is None:
                return None
        return self.cache.output(self.model, text_set, what)

    def targets(self, split: str) -> torch.Tensor:
        return self.scenario.splits[split].targets

    def ids(self, split: str) -> np.ndarray:
        return self.scenario.splits[split].ids

    def value(self, name: str) -> MetricResult:
        if name not in self._results:
            self._results[name] = metrics.get(name).obj(self)
        return self._results[name]

    @property
    def reference(self) -> "Evaluation":
        """The retrained reference, evaluated with the same inference cache."""
        if self.is_reference:
            return self
        if self._reference is None:
            self._reference = Evaluation(self.scenario, self.scenario.reference, self.cache,
                                         is_reference=True)
        return self._reference


def metric_names_for(scenario) -> list[str]:
    """The metrics that apply to a scenario: those of its task whose required splits (the
    ``splits`` attribute: a corrective scenario's triggered test set, say) it has, and whose
    ``applies`` test, where they register one, it passes (the routing metrics: an MoE model)."""
    return [e.name for e in metrics.entries()
            if scenario.task.name in e.attributes.get("tasks", ())
            and all(split in scenario.splits for split in e.attributes.get("splits", ()))
            and e.attributes.get("applies", lambda _: True)(scenario)]


def evaluate(scenario, model: nn.Module, names: list[str] | None = None,
             timings: dict | None = None, cache: InferenceCache | None = None
             ) -> dict[str, MetricResult]:
    """Every requested metric of ``model`` (default: all that apply to the scenario, less those
    computed on request only)."""
    cache = cache or InferenceCache(scenario.task)
    ev = Evaluation(scenario, model, cache, timings or {})
    if names is None:
        names = [n for n in metric_names_for(scenario)
                 if not metrics.get(n).attributes.get("on_request")]
    return {name: ev.value(name) for name in names}
