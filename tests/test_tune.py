"""Fair tuning: the same trial budget for every method, seeded trials, a validation forget
request disjoint from the evaluation one, and `run --tuned` running the stored choice.

One tuning of finetune, ga and original on digits-random10 (3 trials, 5 optimizer steps
each) is shared by the module's tests through one model cache."""
from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from unlearnbench.cache import ModelCache
from unlearnbench.requests.validation import select_validation
from unlearnbench.errors import UserError
from unlearnbench.scenarios import build_scenario, get_spec, load_data
from unlearnbench.store import Store
from unlearnbench.studies.tune import Objective, objective_for, search_space, tune, tuned_overrides

BENCHMARK = "digits-random10"
METHODS = ["finetune", "ga", "original"]
TRIALS = 3


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ModelCache(tmp_path_factory.mktemp("tune-cache"))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, cache):
    """A store holding the tuning, and what ``tune`` returned."""
    store = Store(tmp_path_factory.mktemp("tune-store") / "tuned.db")
    return store, tune(BENCHMARK, METHODS, TRIALS, store, seed=0, max_steps=5, cache=cache)


def without_seconds(history):
    return [{k: v for k, v in trial.items() if k != "seconds"} for trial in history]


def test_every_method_gets_the_same_trial_budget(tuned):
    store, results = tuned
    rows = {row["method"]: row for row in store.tunings(BENCHMARK)}
    assert set(rows) == set(METHODS)
    for method in ("finetune", "ga"):
        assert rows[method]["trials"] == TRIALS
        assert [t["number"] for t in rows[method]["history"]] == list(range(TRIALS))
        assert all(t["state"] == "complete" for t in rows[method]["history"])
    # Nothing to search: one trial at the defaults (no hyperparameters at all here).
    assert [t["params"] for t in rows["original"]["history"]] == [{}]
    assert rows["original"]["params"] == {}


def test_the_choice_is_the_best_trial_and_holds_every_hyperparameter(tuned):
    store, _ = tuned
    for row in store.tunings(BENCHMARK):
        if row["method"] == "original":
            continue
        values = [t["value"] for t in row["history"]]
        best = row["history"][int(np.argmin(values))]  # avg_gap: lower is better
        assert row["objective"] == "avg_gap" and row["value"] == min(values)
        assert row["params"] == {**row["params"], **best["params"]}
        assert row["params"]["momentum"] == 0.9  # not searched: the default
        assert set(best["params"]) == {"epochs", "lr", "batch_size"}


def test_the_same_seed_proposes_the_same_trials_and_makes_the_same_choice(tuned, cache,
                                                                          tmp_path):
    store, _ = tuned
    again = Store(tmp_path / "again.db")
    tune(BENCHMARK, ["finetune", "ga"], TRIALS, again, seed=0, max_steps=5, cache=cache)
    first = {row["method"]: row for row in store.tunings(BENCHMARK)}
    for row in again.tunings(BENCHMARK):
        assert without_seconds(row["history"]) == without_seconds(first[row["method"]]["history"])
        assert (row["params"], row["value"]) == (first[row["method"]]["params"],
                                                 first[row["method"]]["value"])
    other = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1)).ask(
        search_space(get_spec(BENCHMARK), "finetune")).params
    assert other != first["finetune"]["history"][0]["params"]  # the seed matters


def test_a_method_tuned_with_the_same_budget_is_skipped_and_another_budget_retunes(tuned, cache):
    store, _ = tuned
    before = {row["method"]: row["created_at"] for row in store.tunings(BENCHMARK)}
    results = tune(BENCHMARK, ["finetune", "original"], TRIALS, store, seed=0, max_steps=5,
                   cache=cache)
    assert all(r["skipped"] for r in results.values())
    results = tune(BENCHMARK, ["original"], TRIALS, store, seed=0, max_steps=4, cache=cache)
    assert not results["original"]["skipped"]
    rows = {row["method"]: row for row in store.tunings(BENCHMARK)}
    assert rows["finetune"]["created_at"] == before["finetune"]
    assert rows["original"]["options"]["max_steps"] == 4  # replaced, still one row
    assert len(rows) == len(METHODS)


def test_the_validation_forget_set_is_disjoint_from_the_evaluation_one(cache):
    evaluation = build_scenario(BENCHMARK, 0, cache)
    validation = build_scenario(f"{BENCHMARK}[validation=1]", 0, cache)
    ours, theirs = validation.forget.ids, evaluation.forget.ids
    assert len(ours) == len(theirs) and not set(ours) & set(theirs)
    assert set(ours) <= set(evaluation.retain.ids)
    # The same original (the cache shares it); its own retrained reference.
    assert validation.original_meta == evaluation.original_meta
    assert validation.reference_meta["examples"] == len(validation.retain)
    assert set(validation.retain.ids) >= set(theirs)


def test_a_class_request_is_validated_on_the_next_class():
    data = load_data(get_spec("digits-class"))
    spec = get_spec("digits-class").forget
    evaluation = np.flatnonzero(data.train.targets.numpy() == 3)
    positions = select_validation(spec, data.train, data.num_classes, 0, evaluation)
    assert np.array_equal(positions, np.flatnonzero(data.train.targets.numpy() == 4))


def test_entities_validation_forgets_other_people_of_the_same_number():
    from unlearnbench.data.entities import load_entities

    evaluation = load_entities("forget05", n_entities=40)
    validation = load_entities("forget05", n_entities=40, validation=True)
    people = {name: {r["entity"] for r in bundle.splits["forget"].records}
              for name, bundle in (("evaluation", evaluation), ("validation", validation))}
    assert people == {"evaluation": {38, 39}, "validation": {36, 37}}
    trained = [set(b.training_split(True).ids.tolist()) for b in (evaluation, validation)]
    assert trained[0] == trained[1]  # the same people are trained
    assert get_spec("entities-forget05[validation=1]").dataset_options["validation"] is True
    with pytest.raises(UserError, match="cannot be tuned"):
        get_spec("hazard-mini[validation=1]")


def test_run_tuned_writes_runs_whose_params_are_the_stored_choice(tuned, cache, tmp_path,
                                                                  monkeypatch):
    from click.testing import CliRunner

    from unlearnbench.cli import cli

    store, _ = tuned
    monkeypatch.setenv("UNLEARNBENCH_CACHE", str(cache.root))
    result = CliRunner().invoke(cli, ["run", "-b", BENCHMARK, "-m", "finetune,ga", "--tuned",
                                      "--max-steps", "5", "--metrics", "ua", "--db",
                                      str(store.path), "--cache-dir", str(cache.root),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    chosen = {row["method"]: row["params"] for row in store.tunings(BENCHMARK)}
    runs = store.runs(BENCHMARK)
    assert sorted(run["method"] for run in runs) == ["finetune", "ga"]
    assert all(run["params"] == chosen[run["method"]] for run in runs)
    # --set still wins over the tuned value
    result = CliRunner().invoke(cli, ["run", "-b", BENCHMARK, "-m", "ga", "--tuned", "--set",
                                      "ga.epochs=1", "--max-steps", "5", "--metrics", "ua",
                                      "--db", str(store.path), "--cache-dir", str(cache.root),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    latest = store.runs(BENCHMARK)[-1]
    assert latest["params"] == dict(chosen["ga"], epochs=1)


def test_a_method_without_tuning_is_a_user_error(tuned):
    store, _ = tuned
    with pytest.raises(UserError, match=r"no avg_gap tuning of rl .*unlearnbench tune "
                                        r"--benchmark digits-random10 --methods rl"):
        tuned_overrides(store, BENCHMARK, ["finetune", "rl"])
    with pytest.raises(UserError, match="no forget_quality_at_utility tuning"):
        tuned_overrides(store, BENCHMARK, ["finetune"], "forget_quality_at_utility")


def test_the_search_space_follows_the_benchmark_defaults():
    digits = get_spec(BENCHMARK)
    space = search_space(digits, "finetune")  # epochs 5, lr 0.01, batch 64, momentum 0.9
    assert set(space) == {"epochs", "lr", "batch_size"}
    assert (space["epochs"].low, space["epochs"].high) == (2, 10)
    assert space["lr"].log and math.isclose(space["lr"].low, 1e-3) and math.isclose(
        space["lr"].high, 0.1)
    assert (space["batch_size"].low, space["batch_size"].high) == (32, 128)
    # The benchmark's tuned default is the centre: MNIST's ga lr is 1e-4.
    mnist = search_space(get_spec("mnist-random10"), "ga")["lr"]
    assert math.isclose(mnist.low, 1e-5) and math.isclose(mnist.high, 1e-3)
    # A fraction stays at most 1; a field's own range wins; nothing to search: empty.
    fraction = search_space(digits, "bad_teacher")["retain_fraction"]  # default 0.6
    assert math.isclose(fraction.low, 0.06) and fraction.high == 1.0
    beta = search_space(digits, "neggrad_plus")["beta"]
    assert (beta.low, beta.high) == (0.9, 0.999)
    assert search_space(digits, "retrain") == {}


def test_forget_quality_at_utility_ranks_feasible_trials_above_infeasible_ones():
    goal = objective_for(None, "language", utility_fraction=0.9)
    assert goal == Objective("forget_quality_at_utility", ("forget_quality", "model_utility"),
                             "higher", 0.9)
    assert goal.direction == "maximize"
    original = 0.5  # the bar is 0.45
    feasible = goal.score({"forget_quality": 0.01, "model_utility": 0.45}, original)
    infeasible = goal.score({"forget_quality": 0.9, "model_utility": 0.36}, original)
    assert feasible == 0.01
    assert math.isclose(infeasible, 0.36 / 0.45 - 1)  # -0.2
    assert goal.score({"forget_quality": 0.0, "model_utility": 0.5}, original) > infeasible
    assert objective_for(None, "classification") == Objective("avg_gap", ("avg_gap",), "lower")
    assert objective_for(None, "classification").direction == "minimize"
    with pytest.raises(UserError, match="cannot be a classification objective"):
        objective_for("forget_quality", "classification")


def test_a_metric_at_a_utility_ranks_by_its_goal_among_feasible_trials():
    # PrivLeak (a percentage, best at 0) among trials keeping 0.9 of the retain probability.
    goal = objective_for("privleak@retain_prob", "language", utility_fraction=0.9)
    assert (goal.metrics, goal.goal, goal.scale, goal.direction) == (
        ("privleak", "retain_prob"), 0.0, 100.0, "maximize")
    reference = 0.8  # the bar is 0.72
    exact = goal.score({"privleak": 0.0, "retain_prob": 0.75}, reference)
    near = goal.score({"privleak": -5.0, "retain_prob": 0.9}, reference)
    far = goal.score({"privleak": 100.0, "retain_prob": 0.9}, reference)
    collapsed = goal.score({"privleak": 0.0, "retain_prob": 0.36}, reference)
    assert (exact, far) == (1.0, 0.5)  # 1 / (1 + 100 / 100)
    assert math.isclose(near, 1 / 1.05)
    assert math.isclose(collapsed, -0.5)
    assert exact > near > far > 0 > collapsed
    # a "lower" fraction: one minus it; the named default is forget_quality@model_utility
    lower = Objective("error@accuracy", ("error", "accuracy"), "lower", 0.9)
    assert lower.score({"error": 0.25, "accuracy": 1.0}, reference) == 0.75
    assert objective_for("forget_quality@model_utility", "language").score(
        {"forget_quality": 0.3, "model_utility": 0.9}, 1.0) == 0.3
    for name, message in (("privleak@forget_prob", "not a language utility"),
                          ("retain_nll@retain_prob", "no bounded range"),
                          ("forget_prob@retain_prob", "cannot be a language objective"),
                          ("privleak@nothing", "unknown metric 'nothing'")):
        with pytest.raises(UserError, match=message):
            objective_for(name, "language")


def test_benchmarks_without_a_validation_request_are_refused(tmp_path):
    store = Store(tmp_path / "t.db")
    with pytest.raises(UserError, match="no validation request"):
        tune("digits-labelswap", ["ga"], 2, store)
    with pytest.raises(UserError, match="sequential requests"):
        tune("digits-sequential", ["ga"], 2, store)
    with pytest.raises(UserError, match="cannot be tuned"):
        tune("hazard-mini", ["ga"], 2, store)
    # news-mini has a validation request, but not TOFU's utility splits: refused untrained
    with pytest.raises(UserError, match="real_entities.*--objective privleak@retain_prob"):
        tune("news-mini", ["ga"], 2, store)
    assert store.tunings() == []
