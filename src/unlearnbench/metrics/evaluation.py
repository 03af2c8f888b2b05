"""An Evaluation scores one model against a scenario: metrics ask it for logits (through the
shared inference cache) and for other metrics' values (memoised), and metrics that compare
with the retrained reference evaluate ``ev.reference`` with the same cache."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..registry import metrics
from .inference import InferenceCache


@dataclass
class MetricResult:
    """A metric's value (None when it does not apply, e.g. timings of the reference) and,
    optionally, per-example values over one split."""

    value: float | None
    split: str | None = None
    ids: np.ndarray | None = None
    per_example: np.ndarray | None = None


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

    def output(self, split: str, what: str):
        """A task output over a split (``answer_nll``, ``generate``...), from the cache."""
        return self.cache.output(self.model, self.scenario.splits[split], what)

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
    ``splits`` attribute: a corrective scenario's triggered test set, say) it has."""
    return [e.name for e in metrics.entries()
            if scenario.task.name in e.attributes.get("tasks", ())
            and all(split in scenario.splits for split in e.attributes.get("splits", ()))]


def evaluate(scenario, model: nn.Module, names: list[str] | None = None,
             timings: dict | None = None, cache: InferenceCache | None = None
             ) -> dict[str, MetricResult]:
    """Every requested metric (default: all that apply to the scenario) of ``model``."""
    cache = cache or InferenceCache(scenario.task)
    ev = Evaluation(scenario, model, cache, timings or {})
    names = names or metric_names_for(scenario)
    return {name: ev.value(name) for name in names}
