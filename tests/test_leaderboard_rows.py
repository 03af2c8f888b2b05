"""What a leaderboard row is: runs of one method, hyperparameters and run settings (step cap,
metrics, learning curve), one run per seed; and summaries that depend on the runs alone, not
on the order the store holds them in. Real SQLite stores; the command line end to end (real
digits training) where marked slow."""
from __future__ import annotations

import json
import random
import sqlite3

import pytest

from unlearnbench.cli import main
from unlearnbench.report.leaderboard import leaderboard
from unlearnbench.sweep.jobs import Job
from unlearnbench.store import RunRecord, Store

from test_cli import model_cache as model_cache  # the command-line tests' model cache fixture
from test_cli import ok, ub


def record(job: Job, value: float, finished_at: float = 1000.0, **changes) -> RunRecord:
    fields = dict(key=job.key, benchmark=job.benchmark, method=job.method, params=job.params,
                  seed=job.seed, status="finished", finished_at=finished_at,
                  metrics={"avg_gap": value, "ua": value + 1.0}, settings=job.settings)
    fields.update(changes)
    return RunRecord(**fields)


def rows_of(store: Store) -> dict[str, dict]:
    return {row["label"]: row for row in leaderboard(store.runs())}


def test_runs_of_other_settings_are_rows_of_their_own(tmp_path):
    store = Store(tmp_path / "runs.db")
    # the label names the settings that differ, in the order of their names
    variants = {"ga (curve_every=none, max_steps=none, metrics=all)": {},
                "ga (curve_every=none, max_steps=5, metrics=all)": {"max_steps": 5},
                "ga (curve_every=none, max_steps=none, metrics=avg_gap+ua)":
                    {"metrics": ("avg_gap", "ua")},
                "ga (curve_every=10, max_steps=none, metrics=all)": {"curve_every": 10}}
    for offset, changes in enumerate(variants.values()):
        for seed in (0, 1):
            store.write(record(Job("digits-random10", "ga", {"lr": 0.01}, seed, **changes),
                               10.0 * offset + seed))
    rows = rows_of(store)
    assert set(rows) == set(variants)
    for offset, label in enumerate(variants):
        row = rows[label]
        assert row["seeds"] == [0, 1] and row["metrics"]["avg_gap"]["n"] == 2
        assert row["metrics"]["avg_gap"]["mean"] == pytest.approx(10.0 * offset + 0.5)
    assert rows["ga (curve_every=none, max_steps=5, metrics=all)"]["settings"]["max_steps"] == 5


def test_only_the_differing_settings_label_a_row(tmp_path):
    store = Store(tmp_path / "runs.db")
    for max_steps in (None, 5):
        for seed in (0, 1):
            store.write(record(Job("digits-random10", "ga", {}, seed, max_steps), 1.0))
    store.write(record(Job("digits-random10", "finetune", {}, 0), 2.0))
    assert set(rows_of(store)) == {"ga (max_steps=none)", "ga (max_steps=5)", "finetune"}


def test_a_seed_counts_once_in_a_row_and_the_latest_run_is_kept(tmp_path):
    # Runs stored before their settings were recorded: two of seed 0 under other keys.
    store = Store(tmp_path / "runs.db")
    job = Job("digits-random10", "ga", {}, 0)
    store.write(record(job, 3.0, finished_at=2000.0, key="later", settings=None))
    store.write(record(job, 1.0, finished_at=1000.0, key="earlier", settings=None))
    store.write(record(Job("digits-random10", "ga", {}, 1), 5.0, key="one", settings=None))
    (row,) = leaderboard(store.runs())
    assert row["label"] == "ga" and row["seeds"] == [0, 1]
    assert row["metrics"]["avg_gap"]["n"] == 2
    assert row["metrics"]["avg_gap"]["mean"] == pytest.approx((3.0 + 5.0) / 2)


def test_runs_without_recorded_settings_are_kept_apart_from_recorded_ones(tmp_path):
    store = Store(tmp_path / "runs.db")
    store.write(record(Job("digits-random10", "ga", {}, 0), 1.0))
    store.write(record(Job("digits-random10", "ga", {}, 0, 5), 2.0, key="old", settings=None))
    assert set(rows_of(store)) == {"ga", "ga (settings not recorded)"}


def test_a_store_written_before_settings_were_recorded_opens_and_shows(tmp_path):
    db = tmp_path / "old.db"
    Store(db).close()
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE runs DROP COLUMN settings")
    con.close()
    store = Store(db)  # adds the column
    store.write(record(Job("digits-random10", "ga", {}, 0), 1.0))
    (row,) = leaderboard(store.runs())
    assert row["label"] == "ga" and row["settings"] == Job("digits-random10", "ga", {}, 0).settings


# --------------------------------------------------------------------------- storage order

def show(db, *flags, capsys) -> str:
    main(["show", "--db", str(db), *flags])
    return capsys.readouterr().out


def test_show_is_the_same_whatever_order_the_runs_were_written_in(tmp_path, capsys):
    values = {"ga": [4.1, 2.7, 3.3, 5.9, 1.2], "finetune": [2.2, 2.5, 1.9, 2.8, 2.0],
              "rl": [2.2, 2.5, 1.9, 2.8, 2.0],  # tied with finetune on every seed
              "retrain": [0.3, 0.1, 0.6, 0.2, 0.4]}
    records = [record(Job(benchmark, method, {}, seed, max_steps), value + (max_steps or 0),
                      finished_at=1000.0 + seed)
               for benchmark in ("digits-random10", "digits-class")
               for method, seeds in values.items() for seed, value in enumerate(seeds)
               for max_steps in (None, 5)]
    outputs = []
    for order in range(3):
        shuffled = records[::-1] if order == 1 else list(records)
        if order == 2:
            random.Random(0).shuffle(shuffled)
        db = tmp_path / f"order{order}.db"
        store = Store(db)
        for run in shuffled:
            store.write(run)
        store.close()
        outputs.append([show(db, *flags, capsys=capsys) for flags in (
            ["--json"], ["--csv"], ["--json", "--across"], ["--json", "--rank", "borda"])])
    assert outputs[1] == outputs[0]
    assert outputs[2] == outputs[0]
    rows = json.loads(outputs[0][0])
    assert len(rows) == 2 * 4 * 2 and all(row["seeds"] == [0, 1, 2, 3, 4] for row in rows)


# --------------------------------------------------------------------------- command line

@pytest.mark.slow
def test_runs_with_other_step_caps_are_shown_apart(model_cache, tmp_path):
    db = tmp_path / "runs.db"
    for cap in ("3", "6"):
        ok(ub("run", "-b", "digits-random10", "-m", "ga", "--seeds", "2", "--max-steps", cap,
              "--no-progress", "--db", str(db), cache=model_cache, cwd=tmp_path))
    rows = json.loads(ok(ub("show", "--json", "--db", str(db), cache=model_cache,
                            cwd=tmp_path)).stdout)
    assert sorted(row["label"] for row in rows) == ["ga (max_steps=3)", "ga (max_steps=6)"]
    store = Store(db)
    for row in rows:
        assert row["seeds"] == [0, 1] and row["metrics"]["avg_gap"]["n"] == 2
        mine = [run["metrics"]["avg_gap"] for run in store.runs()
                if run["settings"]["max_steps"] == row["settings"]["max_steps"]]
        # the float64 mean of the same two values: only rounding can differ
        assert row["metrics"]["avg_gap"]["mean"] == pytest.approx(sum(mine) / 2, rel=1e-12)
    table = ok(ub("show", "--db", str(db), cache=model_cache, cwd=tmp_path)).stdout
    assert "ga (max_steps=3)" in table and "ga (max_steps=6)" in table
