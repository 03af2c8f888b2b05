"""``unlearnbench.testing`` catches broken components: deliberately broken methods, a metric
returning NaN and a benchmark with a typo in its method_params, each registered for one test
and unregistered afterwards; a well-behaved plugin method passes ``check_method`` on the
default scenario, and the registered digits benchmarks pass ``check_benchmark``."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

import unlearnbench
from unlearnbench import registry, testing
from unlearnbench.cache import ModelCache
from unlearnbench.metrics.evaluation import MetricResult
from unlearnbench.scenarios import get_spec
from unlearnbench.train import make_optimizer

# What a metric's registration declares (the registry refuses a metric without them).
METRIC_DECLARATION = {"tasks": ("classification",), "goal": "higher", "unit": "fraction",
                      "title": "Broken", "group": "utility"}


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return ModelCache(tmp_path_factory.mktemp("testing-model-cache"))


@pytest.fixture(scope="module")
def scenario(model_cache):
    return unlearnbench.scenario("digits-random10", seed=testing.SEED, cache=model_cache)


@pytest.fixture
def register():
    """``register(registry, name, obj, **attributes)``: registered for this test only."""
    added = []

    def add(where, name, obj, **attributes):
        where.register(name, **attributes)(obj)
        added.append((where, name))

    yield add
    for where, name in added:
        where._entries.pop(name)  # the registry has no unregistering of its own


def error_of(check, *args) -> str:
    with pytest.raises(AssertionError) as info:
        check(*args)
    return str(info.value)


def test_a_method_that_changes_the_original_fails(scenario, register):
    def mutates(ctx, params):
        """Scales the original's weights in place, then returns a copy."""
        with torch.no_grad():
            next(ctx.original.parameters()).mul_(0.5)
        return ctx.copy_original()

    register(registry.methods, "broken_mutates", mutates, tasks=("classification",), needs=())
    before = testing.snapshot(scenario.original)
    try:
        message = error_of(testing.check_method, "broken_mutates", scenario)
    finally:
        scenario.original.load_state_dict(before)  # the other tests share the scenario
    assert message.startswith("method 'broken_mutates': leaves the original untouched: changed ")


def test_a_method_that_is_not_deterministic_fails(scenario, register):
    def noisy(ctx, params):
        """Adds noise from an unseeded generator."""
        model = ctx.copy_original()
        with torch.no_grad():
            for p in model.parameters():
                noise = np.random.default_rng().normal(0, 1e-3, tuple(p.shape))
                p.add_(torch.from_numpy(noise).to(p.dtype))
        return model

    register(registry.methods, "broken_noisy", noisy, tasks=("classification",), needs=())
    message = error_of(testing.check_method, "broken_noisy", scenario)
    assert message.startswith("method 'broken_noisy': deterministic under a seed: ")


def test_a_method_that_ignores_max_steps_fails(scenario, register):
    def unbudgeted(ctx, params):
        """Five steps of gradient ascent on the forget set, none charged to the budget."""
        model = ctx.copy_original()
        optimizer = make_optimizer(model.parameters(), "sgd", 0.01, 0.0)
        for batch in list(ctx.task.batches(ctx.forget, 16, True, ctx.seed))[:5]:
            optimizer.zero_grad()
            (-ctx.task.nll(model, batch).mean()).backward()
            optimizer.step()
        return model

    register(registry.methods, "broken_unbudgeted", unbudgeted, tasks=("classification",),
             needs=("forget",))
    message = error_of(testing.check_method, "broken_unbudgeted", scenario)
    assert message == ("method 'broken_unbudgeted': respects the step budget: 5 optimizer "
                       "steps with max_steps=3")


def test_a_metric_returning_nan_fails(scenario, register):
    def nan_metric(ev):
        """Always NaN."""
        return MetricResult(float("nan"))

    register(registry.metrics, "broken_nan", nan_metric, **METRIC_DECLARATION)
    message = error_of(testing.check_metric, "broken_nan", scenario)
    assert message == ("metric 'broken_nan': returns a finite value of its declared kind: nan "
                       "is not finite")


def test_a_metric_outside_its_unit_fails(scenario, register):
    def above_one(ev):
        """A 'fraction' of 1.5."""
        return MetricResult(1.5)

    register(registry.metrics, "broken_range", above_one, **METRIC_DECLARATION)
    message = error_of(testing.check_metric, "broken_range", scenario)
    assert "broken_range" in message and "1.5 is outside [0.0, 1.0] (fraction)" in message


def test_a_gap_to_the_reference_must_be_zero_for_the_reference_itself(scenario, register):
    def off_by_one(ev):
        """A gap to the reference's forget accuracy that is 1 where it should be 0."""
        ours, theirs = ev.value("forget_accuracy").value, ev.reference.value("forget_accuracy").value
        return MetricResult(abs(ours - theirs) + 1.0)

    register(registry.metrics, "broken_gap", off_by_one,
             **dict(METRIC_DECLARATION, goal="lower", unit="%"))
    message = error_of(testing.check_metric, "broken_gap", scenario)
    assert message == ("metric 'broken_gap': the original against itself is at its goal "
                       "(lower): 1.0, not 0")


def test_a_benchmark_naming_an_unknown_method_fails(register):
    def typo():
        """digits-random10 with a misspelt method in method_params."""
        return dataclasses.replace(get_spec("digits-random10"), name="broken-typo",
                                   method_params={"finetun": {"epochs": 2}})

    def bad_value():
        """digits-random10 with a learning rate its method does not allow."""
        return dataclasses.replace(get_spec("digits-random10"), name="broken-value",
                                   method_params={"ga": {"lr": -1.0}})

    register(registry.benchmarks, "broken-typo", typo, dataset="digits")
    register(registry.benchmarks, "broken-value", bad_value, dataset="digits")
    assert error_of(testing.check_benchmark, "broken-typo") == (
        "benchmark 'broken-typo': method_params name unknown method 'finetun'")
    message = error_of(testing.check_benchmark, "broken-value")
    assert message.startswith("benchmark 'broken-value': method_params: ga") and "lr" in message


def test_a_benchmark_whose_forget_and_retain_overlap_fails(scenario):
    overlapping = dataclasses.replace(scenario, splits=dict(scenario.splits,
                                                            retain=scenario.splits["forget"]))
    message = error_of(testing.check_benchmark, "digits-random10", overlapping)
    assert re.fullmatch(r"benchmark 'digits-random10': splits: \d+ examples in forget and "
                        r"retain", message)


DIGITS_BENCHMARKS = [name for name in registry.benchmarks.names()
                     if get_spec(name).dataset == "digits"]


@pytest.mark.parametrize("name", DIGITS_BENCHMARKS)
def test_the_digits_benchmarks_build_with_disjoint_splits(name, model_cache):
    testing.check_benchmark(name, cache=model_cache)


def test_the_language_scenario_has_disjoint_splits(language_scenario):
    testing.check_benchmark("entities-forget05", language_scenario)


def test_a_good_plugin_method_passes_on_the_default_scenario(register, tmp_path, monkeypatch):
    """No scenario given: the built-in digits one, built through the default model cache."""
    monkeypatch.setenv("UNLEARNBENCH_CACHE", str(tmp_path))

    def retrain_again(ctx, params):
        """Retrains from scratch on the retain set (the built-in retrain, as a plugin)."""
        return registry.methods.get("retrain").obj(ctx, params)

    register(registry.methods, "good_retrain", retrain_again, tasks=("classification",),
             needs=("retain",))
    testing.check_method("good_retrain")
    assert (tmp_path / "models").is_dir()
