"""The runner keeps going when a job fails for any reason, and records why."""
from unlearnbench.cache import ModelCache
from unlearnbench.sweep.jobs import plan
from unlearnbench.sweep.grid import run_grid
from unlearnbench.store import Store


def test_a_bad_value_inside_a_method_fails_that_job_only(tmp_path):
    store = Store(tmp_path / "runs.db")
    # In range, yet more shards x slices than the data set has examples: found inside sisa.
    jobs = plan(["digits-random10"], ["sisa", "finetune"], [0],
                {"sisa": {"shards": 1000, "slices": 1000}, "finetune": {"epochs": 1}})
    counts = run_grid(jobs, store, ModelCache(tmp_path / "cache"))
    assert counts == {"skipped": 0, "finished": 1, "failed": 1}
    runs = {run["method"]: run for run in store.runs()}
    assert runs["sisa"]["status"] == "failed" and "cannot fill" in runs["sisa"]["error"]
    assert runs["finetune"]["status"] == "finished" and runs["finetune"]["metrics"]["ta"] > 80


def test_names_given_twice_are_planned_once():
    jobs = plan(["digits-random10", "digits-random10"], ["ga", "finetune", "ga"], [0, 1, 0])
    assert len(jobs) == len({job.key for job in jobs}) == 4


def test_learning_curve_points_leave_the_run_unchanged(tmp_path):
    """Evaluating every 2 steps records points at 0, 2, 4... and the final step, while the
    unlearned model and its final metrics equal those of an unobserved run."""
    store = Store(tmp_path / "runs.db")
    cache = ModelCache(tmp_path / "cache")
    plain = plan(["digits-random10"], ["ga"], [0], {"ga": {"epochs": 3}})
    observed = plan(["digits-random10"], ["ga"], [0], {"ga": {"epochs": 3}},
                    curve_every=2, metric_names=["ua", "ta", "ra"], curve_metrics=["ua", "ta"])
    assert plain[0].key != observed[0].key
    run_grid(plain + observed, store, cache)
    first, second = store.runs()
    # --metrics: the observed run computed only those asked for, with the same values
    assert set(second["metrics"]) == {"ua", "ta", "ra"}
    assert {k: first["metrics"][k] for k in ("ua", "ta", "ra")} == second["metrics"]
    assert first["steps"] == second["steps"]
    points = store.curves()
    steps = sorted({p["step"] for p in points})
    assert steps == list(range(0, first["steps"], 2)) + [first["steps"]]
    assert {p["metric"] for p in points} == {"ua", "ta"}
    final = {p["metric"]: p["value"] for p in points if p["step"] == first["steps"]}
    assert final == {"ua": first["metrics"]["ua"], "ta": first["metrics"]["ta"]}
    # Step 0 is the original model: all of its forget set is still recognised.
    assert [p["value"] for p in points if p["step"] == 0 and p["metric"] == "ua"] == [0.0]


def test_a_method_that_needs_retain_data_is_refused_where_it_is_withheld(tmp_path):
    import pytest

    from unlearnbench import unlearn
    from unlearnbench.errors import UserError
    from unlearnbench.scenarios import build_scenario

    with pytest.raises(UserError, match="needs retain data"):
        plan(["digits-random10[retain=none]"], ["finetune"], [0])
    scenario = build_scenario("digits-random10[retain=none]", 0, ModelCache(tmp_path / "cache"))
    assert scenario.available_data() == {"forget"}
    with pytest.raises(UserError, match="choose one that does without it: .*ga"):
        unlearn(scenario, "finetune")
    model, timings = unlearn(scenario, "ga", {"epochs": 1})  # forget-only methods still run
    assert timings["steps"] > 0
