"""Every registered classification metric at once: on the hand-made scenario of
``metric_fixtures.py`` they share one inference pass per model and split; on a real (small)
scenario each is checked in the spirit of sklearn's ``check_estimator``, so that a newly
registered metric is checked automatically."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import unlearnbench
from unlearnbench import registry
from unlearnbench.cache import ModelCache
from unlearnbench.metrics.evaluation import MetricResult, evaluate
from unlearnbench.metrics.inference import InferenceCache

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
# check_estimator-style sweep over every registered classification metric
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The real digits-random10 scenario (trained once for this module) and a finetuned
    model with its timings."""
    cache = ModelCache(tmp_path_factory.mktemp("metrics-model-cache"))
    scenario = unlearnbench.scenario("digits-random10", seed=0, cache=cache)
    model, timings = unlearnbench.unlearn(scenario, "finetune", {"epochs": 1}, seed=0)
    return scenario, model, timings


def test_some_classification_metrics_are_registered():
    names = classification_metric_names()
    for expected in ("forget_accuracy", "ua", "ra", "ta", "mia_efficacy", "avg_gap", "speedup",
                     "unlearn_seconds", "retrain_seconds"):
        assert expected in names


@pytest.mark.parametrize("name", classification_metric_names())
def test_check_metric(name, digits):
    scenario, model, timings = digits
    entry = registry.metrics.get(name)
    # A one-line description (shown by `unlearnbench list metrics`).
    assert isinstance(entry.description, str) and entry.description.strip()
    assert "\n" not in entry.description

    with_timings = evaluate(scenario, model, names=[name], timings=timings)[name]
    without_timings = evaluate(scenario, model, names=[name])[name]
    for result, has_timings in ((with_timings, True), (without_timings, False)):
        assert isinstance(result, MetricResult)
        if result.value is None:
            # Only a timing metric, only without timings, may have no value.
            assert not has_timings, f"{name} returned None even with timings"
            assert isinstance(with_timings.value, float), \
                f"{name} is None without timings but not a timing metric"
            continue
        assert isinstance(result.value, float) and not isinstance(result.value, bool), \
            f"{name}: value {result.value!r} is not a float"
        assert math.isfinite(result.value), f"{name}: value {result.value} is not finite"
        if result.per_example is not None:
            assert result.split in scenario.splits, name
            assert result.ids is not None, name
            per_example = np.asarray(result.per_example)
            assert per_example.ndim == 1
            assert len(per_example) == len(result.ids) == len(scenario.splits[result.split])
            np.testing.assert_array_equal(result.ids, scenario.splits[result.split].ids)
            assert np.isfinite(per_example.astype(float)).all(), name
        elif result.ids is not None:
            assert result.split in scenario.splits, name


def test_real_scenario_reference_sanity(digits):
    """On the real scenario the identities that hold by definition hold."""
    scenario, model, timings = digits
    results = evaluate(scenario, model, timings=timings)
    assert results["ua"].value == pytest.approx(100.0 - results["forget_accuracy"].value)
    assert evaluate(scenario, scenario.reference, names=["avg_gap"])["avg_gap"].value == 0.0
    assert results["speedup"].value == pytest.approx(
        scenario.reference_meta["train_seconds"] / timings["unlearn_seconds"])
    for name in ("forget_accuracy", "ua", "ra", "ta", "mia_efficacy"):
        assert 0.0 <= results[name].value <= 100.0, name
