"""Compute budgets and the cost frontier: ``run --budget`` caps every method at a fraction of
the retrained reference's cost (examples passed forward and backward), the store keeps the
budget and the measured cost, and ``show --frontier`` marks the Pareto-optimal rows.

Real parts throughout: a digits scenario trained once for the module, real SQLite stores,
real ``unlearnbench`` processes."""
from __future__ import annotations

import json
import math
import sqlite3

import pytest
from test_cli import model_cache as model_cache  # the session's model cache (fixture)
from test_cli import ok, runs_in, ub

import unlearnbench
from unlearnbench.cache import ModelCache
from unlearnbench.errors import UserError
from unlearnbench.report.frontier import pareto
from unlearnbench.store import RunRecord, Store
from unlearnbench.sweep.jobs import plan
from unlearnbench.unlearning import unlearn

# Methods that take optimizer steps, with defaults costing more than 5% of the retrain on
# digits-random10 (so that the budget has to stop them), of several shapes: one batch a step
# (finetune), forget and retain batches in one step (neggrad_plus), two loops (scrub,
# unsir), the retrain recipe itself, and an independent retrain (cached when unbudgeted: a
# budgeted one must train, not load the full model).
STEPPED = ["finetune", "neggrad_plus", "scrub", "unsir", "retrain", "retrain_independent"]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return unlearnbench.scenario("digits-random10", seed=0,
                                 cache=ModelCache(tmp_path_factory.mktemp("budget-cache")))


def test_the_retrain_cost_is_its_recipe_over_the_retain_set(scenario):
    assert scenario.retrain_examples == scenario.spec.recipe.epochs * len(scenario.retain)
    _, timings = unlearn(scenario, "retrain")  # the unit, measured on the recipe it prices
    assert timings["examples"] == scenario.retrain_examples
    assert timings["cost_fraction"] == 1.0
    _, timings = unlearn(scenario, "original")
    assert (timings["examples"], timings["cost_fraction"]) == (0, 0.0)
    for _ in range(2):  # trained, then loaded from the cache: the same cost
        _, timings = unlearn(scenario, "retrain_independent")
        assert timings["cost_fraction"] == 1.0


@pytest.mark.parametrize("method", STEPPED)
def test_a_budget_caps_the_examples_a_method_passes(scenario, method):
    budget = 0.05
    cap = math.floor(budget * scenario.retrain_examples)
    _, free = unlearn(scenario, method)
    _, capped = unlearn(scenario, method, budget=budget)
    assert free["examples"] > cap  # the default would pass the budget...
    assert 0 < capped["examples"] <= cap  # ...and the budget stops it
    assert capped["steps"] > 0  # (an unbudgeted independent retrain may be a cache hit)
    assert capped["cost_fraction"] == pytest.approx(capped["examples"] / scenario.retrain_examples,
                                                    rel=1e-12)  # one float division apart


def test_a_step_costs_its_batch(scenario):
    """Fine-tuning passes one retain batch a step: examples = steps × batch size while the
    batches are full (the retain set holds more than the budget allows)."""
    _, timings = unlearn(scenario, "finetune", params={"batch_size": 50}, budget=0.04)
    cap = math.floor(0.04 * scenario.retrain_examples)
    assert cap < len(scenario.retain)  # within the first epoch: no partial batch
    assert timings["steps"] == cap // 50
    assert timings["examples"] == 50 * timings["steps"]


def test_methods_without_steps_report_what_they_pass(scenario):
    """The Fisher diagonal takes no optimizer step but one per-example gradient (vmap) for
    every retain example: counted as the retain set, once."""
    _, timings = unlearn(scenario, "fisher")
    assert timings["steps"] == 0
    assert timings["examples"] == len(scenario.retain)


def test_each_budget_is_a_job_of_its_own():
    plain = plan(["digits-random10"], ["ga"], [0])
    jobs = plan(["digits-random10"], ["ga"], [0], budgets=[0.25, "0.1", 0.1])
    assert [job.budget for job in jobs] == [0.1, 0.25]  # each once, "0.1" read as 0.1
    assert len({job.key for job in [*plain, *jobs]}) == 3
    assert [job.settings.get("budget") for job in jobs] == [0.1, 0.25]
    assert "budget" not in plain[0].settings  # a run without a budget keeps its old key
    ends = plan(["digits-random10"], ["original", "retrain"], [0], budgets=[0.1])
    assert [(job.method, job.budget) for job in ends] == [("original", None), ("retrain", 0.1),
                                                          ("retrain", None)]


def test_a_config_file_gives_budgets(tmp_path):
    from unlearnbench.cli.config import load_config
    from unlearnbench.cli.run import run

    path = tmp_path / "run.yaml"
    path.write_text("budget: [0.05, 0.1]\n")
    assert load_config(path, run) == {"budgets": ("0.05", "0.1")}


@pytest.mark.parametrize("budget", [0, -0.5, "a lot"])
def test_a_budget_must_be_a_positive_fraction(budget):
    with pytest.raises(UserError, match="--budget") as info:
        plan(["digits-random10"], ["ga"], [0], budgets=[budget])
    assert "\n" not in str(info.value)


def test_an_older_store_gets_the_budget_columns(tmp_path):
    path = tmp_path / "old.db"
    Store(path).write(RunRecord("k", "digits-random10", "ga", {}, 0, "finished",
                                timings={"steps": 3}))
    con = sqlite3.connect(path)  # the store as written before budgets were recorded
    for column in ("budget", "examples", "cost_fraction"):
        con.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    con.commit()
    con.close()
    [run] = Store(path).runs()
    assert (run["budget"], run["examples"], run["cost_fraction"]) == (None, None, None)
    assert run["steps"] == 3


# --------------------------------------------------------------------------- Pareto

def test_pareto_marks_the_known_frontier():
    # (cost, score), higher score better. The frontier: the original-like point at cost 0,
    # the cheapest best-so-far points, and the reference at cost 1 with the best score.
    points = [(0.0, -2.0), (0.05, -1.5), (0.1, -1.8), (0.1, -1.2), (0.25, -1.2),
              (0.3, -0.4), (0.5, -0.9), (1.0, 0.0), (1.0, -0.1)]
    assert pareto(points) == [True, True, False, True, False, True, False, True, False]


def test_pareto_keeps_ties_and_single_points():
    assert pareto([(0.1, 1.0), (0.1, 1.0)]) == [True, True]  # neither beats the other
    assert pareto([(0.2, 0.5)]) == [True]
    assert pareto([]) == []


# --------------------------------------------------------------------------- end to end

@pytest.mark.slow
def test_run_with_budgets_and_show_the_frontier(model_cache, tmp_path):
    db = tmp_path / "b.db"
    result = ok(ub("run", "-b", "digits-random10", "-m", "original,retrain,finetune",
                   "--budget", "0.1,0.25", "--metrics", "avg_gap",
                   "--no-progress", "--db", str(db), cache=model_cache, cwd=tmp_path))
    # the frontier's ends run once without a budget beside the budgeted runs
    assert result.stdout.strip().splitlines()[-1] == f"6 finished, 0 failed, 0 already in {db}"
    runs = {(run["method"], run["budget"]): run for run in runs_in(db)}
    assert set(runs) == {("original", None), ("retrain", None), ("retrain", 0.1),
                         ("retrain", 0.25), ("finetune", 0.1), ("finetune", 0.25)}
    retrain_examples = runs[("retrain", None)]["examples"]
    assert runs[("retrain", None)]["cost_fraction"] == 1.0
    assert runs[("original", None)]["examples"] == 0
    for (method, budget), run in runs.items():
        if budget is not None:
            assert run["examples"] <= math.floor(budget * retrain_examples), (method, budget)
            assert json.loads(run["settings"])["budget"] == budget
    assert runs[("finetune", 0.1)]["examples"] < runs[("finetune", 0.25)]["examples"]

    shown = ok(ub("show", "--frontier", "--db", str(db), cache=model_cache, cwd=tmp_path))
    assert "cost frontier" in shown.stdout and "Avg. Gap" in shown.stdout
    points = json.loads(ok(ub("show", "--frontier", "--json", "--db", str(db),
                              cache=model_cache, cwd=tmp_path)).stdout)
    by_label = {p["label"]: p for p in points}
    assert by_label["original"]["cost"] == 0.0 and by_label["original"]["pareto"]
    assert by_label["retrain"]["cost"] == 1.0 and by_label["retrain"]["pareto"]
    assert by_label["retrain"]["value"] == 0.0  # the reference's gap with itself
    assert by_label["finetune (budget=0.1)"]["budget"] == 0.1
    assert [p["cost"] for p in points] == sorted(p["cost"] for p in points)

    report = tmp_path / "report.html"
    ok(ub("report", "--out", str(report), "--db", str(db), cache=model_cache, cwd=tmp_path))
    page = report.read_text()
    assert '<h3>Cost frontier</h3><img alt="cost frontier" src="data:image/png;base64,' in page

    # the same command again: every (method, budget) is already stored
    again = ok(ub("run", "-b", "digits-random10", "-m", "original,retrain,finetune",
                  "--budget", "0.25,0.1", "--metrics", "avg_gap",
                  "--no-progress", "--db", str(db), cache=model_cache, cwd=tmp_path))
    assert again.stdout.strip().splitlines()[-1] == f"0 finished, 0 failed, 6 already in {db}"


@pytest.mark.slow
def test_a_bad_budget_is_one_line(model_cache, tmp_path):
    result = ub("run", "-b", "digits-random10", "-m", "ga", "--budget", "0.1,zero",
                "--db", str(tmp_path / "x.db"), cache=model_cache, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--budget" in result.stderr
