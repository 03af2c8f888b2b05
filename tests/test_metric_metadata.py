"""Each metric's goal (how it is ranked), title, unit and group live in its registration, and
the leaderboard, the HTML report and tuning read them from there: on real SQLite stores
written record by record (no training), through the command line run in process."""
from __future__ import annotations

import json

import pytest

from unlearnbench.cli import main
from unlearnbench.errors import UserError
from unlearnbench.metrics.evaluation import MetricResult
from unlearnbench.registry import metrics
from unlearnbench.report.across import across
from unlearnbench.report.html import leaderboard_table
from unlearnbench.report.leaderboard import leaderboard
from unlearnbench.store import RunRecord, Store
from unlearnbench.studies.tune import objective_for

GOALS = {"higher", "lower", "retrain"}  # or a number: the best value
UNITS = {"%", "fraction", "ratio", "nats", "bits", "s", "score"}
GROUPS = {"forget", "privacy", "utility", "overall", "cost"}
TEMPORARY = "tmp_metadata_metric"


def write(db, benchmark, values_by_method, metric):
    """One finished run per (method, seed) with ``metric`` = the value (None: not run)."""
    store = Store(db)
    for method, values in values_by_method.items():
        for seed, value in enumerate(values):
            if value is not None:
                store.write(RunRecord(key=f"{benchmark}/{method}/{seed}", benchmark=benchmark,
                                      method=method, params={}, seed=seed, status="finished",
                                      metrics={metric: value}))
    store.close()


def order(db, benchmark=None):
    rows = leaderboard(Store(db).runs(benchmark))
    return [row["method"] for row in rows], {row["method"]: row["rank"] for row in rows}


def show(db, capsys, *flags):
    main(["show", "--db", str(db), *flags])
    return " ".join(capsys.readouterr().out.split())  # rich wraps long lines


@pytest.fixture
def temporary_metric():
    """Register a metric from outside the package (as a plugin would) with the given
    attributes; it is unregistered afterwards."""
    def register(**attributes):
        def tmp_metadata_metric(ev):
            """A metric registered by a test."""
            return MetricResult(0.0)

        metrics.register(TEMPORARY, tasks=("classification",), **attributes)(tmp_metadata_metric)

    yield register
    metrics._entries.pop(TEMPORARY, None)  # the registry has no unregistering of its own


def test_every_registered_metric_says_its_goal_title_unit_and_group():
    for entry in metrics.entries():
        attributes = entry.attributes
        goal = attributes.get("goal")
        assert goal in GOALS or (isinstance(goal, float) and not isinstance(goal, bool)) \
            or type(goal) is int, (entry.name, goal)
        assert isinstance(attributes.get("title"), str) and attributes["title"].strip(), entry.name
        assert attributes.get("unit") in UNITS, (entry.name, attributes.get("unit"))
        assert attributes.get("group") in GROUPS, (entry.name, attributes.get("group"))
    # the leaderboard's columns are among them, the population statistics included
    for name in ("ua", "avg_gap", "challenge_score", "ulira_forget", "forget_quality",
                 "privleak", "unlearn_seconds"):
        assert metrics.get(name).attributes.get("column") is not None, name


@pytest.mark.parametrize("attributes, wrong", [
    ({"goal": "better", "title": "T", "unit": "%", "group": "forget"}, "goal='better'"),
    ({"goal": "lower", "title": "T", "group": "forget"}, "unit=None"),
    ({"goal": "lower", "title": "T", "unit": "%", "group": "quality"}, "group='quality'"),
    ({"goal": "lower", "unit": "%", "group": "forget"}, "without a title"),
    ({"goal": "lower", "title": "T", "unit": "%", "group": "forget", "headline": True},
     "headline without a column"),
    ({"goal": "lower", "title": "T", "unit": "%", "group": "forget", "exact": True},
     "exact, which nothing reads"),
])
def test_a_registration_missing_or_misspelling_an_attribute_is_refused(temporary_metric,
                                                                       attributes, wrong):
    with pytest.raises(UserError, match=f"registers the metric '{TEMPORARY}' .*{wrong}") as error:
        temporary_metric(**attributes)
    assert "\n" not in str(error.value)
    assert TEMPORARY not in metrics


@pytest.mark.parametrize("goal, first", [("lower", "b"), ("higher", "a"), (1.2, "b"),
                                         (1.8, "a")])
def test_the_leaderboard_ranks_by_the_registered_goal(temporary_metric, tmp_path, capsys,
                                                      goal, first):
    temporary_metric(goal=goal, title="Temp", unit="nats", group="forget", column=1,
                     headline=True)
    db = tmp_path / "runs.db"
    write(db, "digits-random10", {"a": [2.0, 2.1], "b": [1.0, 1.1]}, TEMPORARY)
    methods, ranks = order(db)
    assert methods[0] == first and ranks[first]["position"] == 1
    table = show(db, capsys)
    assert "Temp (nats)" in table  # the column: title and unit
    words = f"{goal} is better" if isinstance(goal, str) else f"closer to {goal:g} is better"
    assert f"per-seed rankings on Temp ({words})" in table
    assert 'Temp (nats)</th>' in leaderboard_table(leaderboard(Store(db).runs()))


def test_a_column_that_is_no_headline_is_shown_but_not_ranked(temporary_metric, tmp_path,
                                                              capsys):
    temporary_metric(goal="lower", title="Temp", unit="%", group="cost", column=1)
    db = tmp_path / "runs.db"
    write(db, "digits-random10", {"a": [2.0], "b": [1.0]}, TEMPORARY)
    assert order(db)[1] == {"a": None, "b": None}
    table = show(db, capsys)
    assert "Temp (%)" in table and "Rank" not in table


def test_without_its_registration_a_stored_metric_is_no_column(tmp_path, capsys):
    db = tmp_path / "runs.db"
    write(db, "digits-random10", {"a": [2.0], "b": [1.0]}, TEMPORARY)
    table = show(db, capsys)
    assert "Rank" not in table and TEMPORARY not in table
    rows = json.loads(show(db, capsys, "--json"))  # JSON keeps every stored value
    assert {row["method"]: row["metrics"][TEMPORARY]["mean"] for row in rows} == {"a": 2.0,
                                                                                  "b": 1.0}


def test_privleak_is_best_near_zero(tmp_path):
    # MUSE's PrivLeak is already relative to the retain model: 0 is ideal whether or not the
    # table has a retrain run; strongly negative still leaks, positive is over-unlearned.
    assert metrics.get("privleak").attributes["goal"] == 0
    db = tmp_path / "runs.db"
    write(db, "news-mini", {"target": [-80.0], "over": [10.0], "near": [-5.0]}, "privleak")
    assert order(db)[0] == ["near", "over", "target"]
    assert objective_for("privleak", "language").score({"privleak": -5.0}, None) == 5.0
    assert objective_for("privleak", "language").direction == "minimize"


def test_verbmem_forget_is_best_at_the_retrain_value(tmp_path, capsys):
    # VerbMem on forget text: the retrained model's value is the goal, below the target's;
    # unlearning past it (GA's 0) is no better than stopping short of it.
    assert metrics.get("verbmem_forget").attributes["goal"] == "retrain"
    assert metrics.get("knowmem_forget").attributes["goal"] == "retrain"
    db = tmp_path / "runs.db"
    write(db, "news-mini", {"retrain": [20.0, 24.0], "ga": [0.0, 0.0], "npo": [26.0, 27.0],
                            "original": [58.0, 60.0]}, "verbmem_forget")
    methods, ranks = order(db)
    assert methods == ["retrain", "npo", "ga", "original"]
    assert ranks["npo"] == {"by": "kemeny", "position": 2, "criteria": 2, "of": 2}
    assert "closer to retrain is better" in show(db, capsys)
    # a goal of "retrain" cannot be a tuning objective
    with pytest.raises(UserError, match="cannot be a language objective"):
        objective_for("verbmem_forget", "language")


def test_without_a_retrain_run_verbmem_forget_is_not_ranked_and_the_table_says_so(tmp_path,
                                                                                   capsys):
    db = tmp_path / "runs.db"
    write(db, "news-mini", {"ga": [0.0], "npo": [26.0]}, "verbmem_forget")
    assert order(db)[1] == {"ga": None, "npo": None}
    table = show(db, capsys)
    assert "Not ranked on VerbMem (closer to retrain is better): no retrain run" in table
    assert across(leaderboard(Store(db).runs())) == []  # nor across benchmarks


def test_the_report_judges_approximate_methods_by_their_registered_exactness():
    from unlearnbench.report.views import approximate

    assert [approximate(m) for m in ("original", "retrain", "retrain_independent", "sisa",
                                     "analytic", "ga", "eu_k", "not-registered-here")] == \
        [False, False, False, False, False, True, True, True]
