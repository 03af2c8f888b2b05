"""The language tuning objective's utility bar is the retain model's utility: a method should
match the model retrained without the forget set, not keep the original's utility.

A tiny entities benchmark (20 people, one-layer tiny Llama) is registered for the module, and
``original`` and ``retrain`` are tuned on its validation request with a bar of 1.0 × the
retain model's utility: the retain model always meets a bar set at its own utility, and the
original meets it only if its utility is at least the retain model's."""
from __future__ import annotations

import math

import pytest

from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.registry import benchmarks
from unlearnbench.scenarios import build_scenario
from unlearnbench.store import Store
from unlearnbench.studies.tune import tune
from unlearnbench.testing import tiny_language_spec

BENCHMARK = "entities-tunetest"


@pytest.fixture(scope="module")
def tiny_benchmark():
    def entities_tunetest():
        """entities-forget05 cut to 20 people and a one-layer tiny Llama."""
        return tiny_language_spec(BENCHMARK)

    benchmarks.register(BENCHMARK, dataset="entities")(entities_tunetest)
    yield BENCHMARK
    benchmarks._entries.pop(BENCHMARK)  # the registry has no unregistering of its own


def test_the_utility_bar_is_the_retain_models_utility(tiny_benchmark, language_cache, tmp_path):
    validation = build_scenario(f"{tiny_benchmark}[validation=1]", 0, language_cache)
    original, reference = (evaluate(validation, model, names=["model_utility"])
                           ["model_utility"].value
                           for model in (validation.original, validation.reference))
    # The two must differ for the test to tell the bars apart (the 20 people's models differ by
    # a few hundredths; equal utilities would make the bars the same).
    assert abs(original - reference) > 1e-3

    store = Store(tmp_path / "tune.db")
    tuned = tune(tiny_benchmark, ["original", "retrain"], 1, store, seed=0,
                 utility_fraction=1.0, cache=language_cache)
    trials = {name: tuned[name]["history"][0] for name in ("original", "retrain")}
    assert all(t["state"] == "complete" for t in trials.values())

    # retrain reproduces the retain model (same seed, CPU): feasible at its own utility.
    kept = trials["retrain"]
    assert kept["value"] == kept["metrics"]["forget_quality"]
    # The original is scored against the retain model's utility: feasible (its forget
    # quality) if it reaches it, else utility / bar − 1 < 0. Its utility here and inside tune
    # come from the same weights through float32 forward passes that may batch differently:
    # equal to about 1e-6, far inside the 1e-3 that separates the two utilities.
    start = trials["original"]
    assert math.isclose(start["metrics"]["model_utility"], original, abs_tol=1e-4)
    if original >= reference:
        assert start["value"] == start["metrics"]["forget_quality"]
    else:
        assert math.isclose(start["value"], original / reference - 1.0, abs_tol=1e-4)


def test_privleak_at_the_retain_probability_is_stored_under_its_own_name(tiny_benchmark,
                                                                        language_cache, tmp_path):
    store = Store(tmp_path / "tune.db")
    tuned = tune(tiny_benchmark, ["retrain"], 1, store, seed=0,
                 objective="privleak@retain_prob", utility_fraction=1.0, cache=language_cache)
    trial = tuned["retrain"]["history"][0]
    assert trial["state"] == "complete" and set(trial["metrics"]) == {"privleak", "retain_prob"}
    # retrain reproduces the retain model, so it meets a bar at the retain model's own
    # probability and scores PrivLeak's preference, 1 / (1 + |PrivLeak| / 100)
    privleak = trial["metrics"]["privleak"]
    assert trial["value"] == pytest.approx(1.0 / (1.0 + abs(privleak) / 100.0))
    assert abs(privleak) < 5.0
    (row,) = store.tunings(tiny_benchmark)
    assert (row["objective"], row["method"]) == ("privleak@retain_prob", "retrain")
