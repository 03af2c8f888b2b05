"""Every registered classification metric at once: on the hand-made scenario of
``metric_fixtures.py`` they share one inference pass per model and split; on real (small)
scenarios every classification and language metric is checked with
``unlearnbench.testing.check_metric``, so that a newly registered metric is checked
automatically."""
from __future__ import annotations

import copy

import pytest

from unlearnbench import registry, testing
from unlearnbench.cache import ModelCache
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.metrics.inference import InferenceCache
from unlearnbench.unlearning import Scenario

from metric_fixtures import U_ROWS, TableModel, classification_metric_names, make_scenario

# --------------------------------------------------------------------------------------------
# Shared inference cache
# --------------------------------------------------------------------------------------------
def test_all_metrics_make_one_pass_per_model_and_split():
    scenario = make_scenario()
    model = TableModel(U_ROWS)
    cache = InferenceCache(scenario.task)
    results = evaluate(scenario, model, cache=cache,
                       timings={"unlearn_seconds": 0.5, "unlearn_cpu_seconds": 0.5})
    assert set(results) == set(classification_metric_names())
    # The classification metrics read forget, retain and test (never validation), for the
    # model and for the reference (Avg. Gap): 2 models x 3 splits = 6 distinct pairs, plus
    # ZRF's randomly initialised model on the forget set: 7.
    assert cache.passes == 7
    assert model.calls == 3            # one batch per split (splits are far below 512)
    assert scenario.reference.calls == 3
    assert scenario.original.calls == 0

    # Evaluating again, or evaluating another object holding the same weights, adds nothing.
    evaluate(scenario, model, cache=cache)
    evaluate(scenario, copy.deepcopy(model), cache=cache)
    assert cache.passes == 7
    assert model.calls == 3

    # A second model sharing the cache adds passes for that model only (the reference's
    # and the random model's logits are reused).
    other = TableModel(dict(U_ROWS, forget=["wrong"] * 4))
    results = evaluate(scenario, other, cache=cache)
    assert cache.passes == 10
    assert other.calls == 3
    assert scenario.reference.calls == 3
    assert results["forget_accuracy"].value == 0.0  # not the first model's stale logits


def test_each_metric_alone_passes_only_over_the_splits_it_needs():
    """Every metric alone with a fresh cache passes only over the model's and the reference's
    forget/retain/test splits (never validation), plus ZRF's random model on forget."""
    for name in classification_metric_names():
        scenario = make_scenario()
        model = TableModel(U_ROWS)
        cache = InferenceCache(scenario.task)
        evaluate(scenario, model, names=[name], cache=cache,
                 timings={"unlearn_seconds": 0.5, "unlearn_cpu_seconds": 0.5})
        assert cache.passes == model.calls + scenario.reference.calls + (name == "zrf"), name
        assert model.calls <= 3 and scenario.reference.calls <= 3, name


# --------------------------------------------------------------------------------------------
# check_estimator-style sweep over every registered classification and language metric
# --------------------------------------------------------------------------------------------
def task_metrics(task: str) -> list[str]:
    """The metrics of ``task`` for any model (those with an ``applies`` test: test_moe.py)."""
    return [e.name for e in registry.metrics.entries() if task in e.attributes.get("tasks", ())
            and not e.attributes.get("applies")]


class Subjects:
    """Per scenario (the first small one of the task with the metric's splits): the finetuned
    model ``check_metric`` scores, its timings and one inference cache, made once a module."""

    def __init__(self, task: str, cache: ModelCache, first: Scenario | None = None):
        self.task, self.cache, self.first = task, cache, first
        self.made: dict[str, tuple] = {}

    def __call__(self, name: str) -> tuple:
        splits = registry.metrics.get(name).attributes.get("splits", ())
        scenario = self.first
        if scenario is None or not set(splits) <= set(scenario.splits):
            scenario = testing.small_scenario(self.task, splits, cache=self.cache)
        if scenario.spec.name not in self.made:
            model, timings = testing.scored_model(scenario)
            self.made[scenario.spec.name] = (scenario, model, timings,
                                             InferenceCache(scenario.task))
        return self.made[scenario.spec.name]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The real digits scenarios (trained once for this module) and their scored models."""
    return Subjects("classification", ModelCache(tmp_path_factory.mktemp("metrics-model-cache")))


@pytest.fixture(scope="module")
def language(language_scenario, language_cache):
    return Subjects("language", language_cache, language_scenario)


def test_some_classification_metrics_are_registered():
    names = classification_metric_names()
    for expected in ("forget_accuracy", "ua", "ra", "ta", "mia_efficacy", "avg_gap", "speedup",
                     "unlearn_seconds", "retrain_seconds"):
        assert expected in names


@pytest.mark.parametrize("name", task_metrics("classification"))
def test_check_metric(name, digits):
    scenario, model, timings, cache = digits(name)
    testing.check_metric(name, scenario, model, timings, cache)


@pytest.mark.parametrize("name", task_metrics("language"))
def test_check_language_metric(name, language):
    scenario, model, timings, cache = language(name)
    testing.check_metric(name, scenario, model, timings, cache)


def test_real_scenario_reference_sanity(digits):
    """On the real scenario the identities that hold by definition hold."""
    scenario, model, timings, _ = digits("ua")
    results = evaluate(scenario, model, timings=timings)
    assert results["ua"].value == pytest.approx(100.0 - results["forget_accuracy"].value)
    assert evaluate(scenario, scenario.reference, names=["avg_gap"])["avg_gap"].value == 0.0
    assert results["speedup"].value == pytest.approx(
        scenario.reference_meta["train_seconds"] / timings["unlearn_seconds"])
    for name in ("forget_accuracy", "ua", "ra", "ta", "mia_efficacy"):
        assert 0.0 <= results[name].value <= 100.0, name
