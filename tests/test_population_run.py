"""Population mode on digits-random10 with 4 models per population: records, resume, and the
scores' direction (retraining against retraining beats doing nothing)."""
from __future__ import annotations

import numpy as np
import pytest

from unlearnbench.studies import population
from unlearnbench.cache import ModelCache
from unlearnbench.errors import UserError
from unlearnbench.studies.population import (
    POPULATION_SEED,
    UNLEARN_SEED_OFFSET,
    population_name,
    run_population,
)
from unlearnbench.store import Store
from unlearnbench.tasks.classification import ClassificationTask

N = 4
# sisa: values in range, yet more shards x slices than digits has examples (found inside).
PARAMS = {"finetune": {"epochs": 1}, "sisa": {"shards": 1000, "slices": 1000}}


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """One population run: retrain, finetune (one epoch), original, and sisa with a bad value."""
    root = tmp_path_factory.mktemp("population")
    store, cache = Store(root / "runs.db"), ModelCache(root / "cache")
    counts = run_population("digits-random10", ["retrain", "finetune", "original", "sisa"], N,
                            store, cache, PARAMS)
    runs = {run["method"]: run for run in store.runs()}
    return store, cache, counts, runs


@pytest.fixture
def counted(monkeypatch):
    """Counts scenario builds, unlearning runs and model trainings (task.fit)."""
    calls = {"scenario": 0, "unlearn": 0, "fit": 0}

    def counting(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper
    monkeypatch.setattr(population, "build_scenario",
                        counting("scenario", population.build_scenario))
    monkeypatch.setattr(population, "unlearn", counting("unlearn", population.unlearn))
    monkeypatch.setattr(ClassificationTask, "fit", counting("fit", ClassificationTask.fit))
    return calls


def test_one_record_per_method_under_the_population_name(populated):
    store, _, counts, runs = populated
    assert counts["finished"] == 3 and counts["failed"] == 1 and counts["skipped"] == 0
    assert set(runs) == {"retrain", "finetune", "original", "sisa"}
    name = population_name("digits-random10", N)
    assert name == "digits-random10 population N=4"
    for run in runs.values():
        assert run["benchmark"] == name and run["seed"] == POPULATION_SEED
    finetune = runs["finetune"]
    assert finetune["params"]["epochs"] == 1 and finetune["unlearn_seconds"] > 0
    assert finetune["metrics"]["population_models"] == N
    for key in ("challenge_score", "challenge_forget_quality", "ulira_forget", "ulira_retain",
                "ulira_test", "klom_forget_mean", "klom_forget_median", "klom_forget_p99",
                "klom_retain_p99", "klom_test_mean", "population_seconds", "ra", "ta"):
        assert np.isfinite(finetune["metrics"][key]), key
    split, ids, eps = store.per_example(finetune["id"], "challenge_epsilon")
    assert split == "forget" and len(ids) == len(eps) > 0 and ((eps >= 0) & (eps <= 50)).all()


def test_a_failing_method_is_recorded_with_its_seed(populated):
    sisa = populated[3]["sisa"]
    assert sisa["status"] == "failed" and f"seed {UNLEARN_SEED_OFFSET}" in sisa["error"]
    assert "cannot fill" in sisa["error"]


def test_retraining_scores_above_doing_nothing(populated):
    """Retrained models (new seeds) against the retrained references: the same distribution,
    so the attack is near chance and forget quality is positive. The no-op `original` gives
    one model N times: a constant population, ε at the cap (F = 0), told apart every time."""
    runs = populated[3]
    retrain, original = runs["retrain"]["metrics"], runs["original"]["metrics"]
    assert retrain["challenge_forget_quality"] > original["challenge_forget_quality"] == 0.0
    assert original["ulira_forget"] >= 0.9
    assert retrain["ulira_forget"] < 0.75
    assert retrain["klom_forget_mean"] < original["klom_forget_mean"]


def test_a_rerun_trains_and_unlearns_nothing(populated, counted):
    store, cache, _, _ = populated
    counts = run_population("digits-random10", ["retrain", "finetune", "original", "sisa"], N,
                            store, cache, PARAMS)
    assert counts["skipped"] == 4 and counts["finished"] == counts["failed"] == 0
    assert counted == {"scenario": 0, "unlearn": 0, "fit": 0}
    assert len(store.runs()) == 4


def test_a_new_method_reuses_the_cached_references(populated, counted):
    store, cache, _, _ = populated
    counts = run_population("digits-random10", ["original", "ga"], N, store, cache)
    assert counts["finished"] == 1 and counts["skipped"] == 1
    # GA trains nothing with task.fit, so every fit would be a reference retrained
    assert counted == {"scenario": 1, "unlearn": N, "fit": 0}


def test_refusals_before_any_training(tmp_path):
    store = Store(tmp_path / "runs.db")
    with pytest.raises(UserError, match="language benchmark"):
        run_population("entities-forget05", ["ga"], N, store)
    with pytest.raises(UserError, match="at least 3"):
        run_population("digits-random10", ["ga"], 2, store)
    with pytest.raises(UserError, match="not among the methods"):
        run_population("digits-random10", ["ga"], N, store, params={"finetune": {"epochs": 1}})
    with pytest.raises(UserError, match="no hyperparameter"):
        run_population("digits-random10", ["ga"], N, store, params={"ga": {"nope": 1}})
    assert store.runs() == []
