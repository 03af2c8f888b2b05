"""The leaderboard's intervals, rank column and within-noise marks, and `show --across`, on
stores written record by record (a real SQLite file, no training), through the command line
run in process."""
import csv
import io
import json

import pytest

from unlearnbench.cli import main
from unlearnbench.report.leaderboard import leaderboard
from unlearnbench.stats.uncertainty import bootstrap_interval
from unlearnbench.store import RunRecord, Store

# Avg. Gap per seed. "best" has the lowest mean; "close" differs from it by +0.2, -0.1,
# +0.2, -0.1 (paired p ≈ 0.4: within noise); "apart" by about +1 with little noise (p < 0.001).
TIES = {"best": [1.0, 2.0, 3.0, 4.0], "close": [1.2, 1.9, 3.2, 3.9],
        "apart": [2.1, 2.9, 4.05, 4.95]}


def write(db, benchmark, values_by_method, metric="avg_gap", extra=None):
    store = Store(db)
    for method, values in values_by_method.items():
        for seed, value in enumerate(values):
            if value is None:
                continue  # this seed was not run
            store.write(RunRecord(key=f"{benchmark}/{method}/{seed}", benchmark=benchmark,
                                  method=method, params={}, seed=seed, status="finished",
                                  metrics={metric: value, **(extra or {})}))
    store.close()


def show(db, *flags, capsys):
    """The output of `unlearnbench show` (errors exit through SystemExit and fail the test)."""
    main(["show", "--db", str(db), *flags])
    return capsys.readouterr().out


def test_json_carries_the_bootstrap_interval_of_the_stored_seeds(tmp_path, capsys):
    db = tmp_path / "runs.db"
    write(db, "digits-random10", TIES, extra={"ua": 7.0})
    rows = {row["method"]: row for row in json.loads(show(db, "--json", capsys=capsys))}
    for method, values in TIES.items():
        stat = rows[method]["metrics"]["avg_gap"]
        assert (stat["low"], stat["high"]) == bootstrap_interval(values)
        assert stat["n"] == 4 and stat["low"] <= stat["mean"] <= stat["high"]
        assert rows[method]["metrics"]["ua"] == {"mean": 7.0, "std": 0.0, "std_of_mean": 0.0,
                                                 "n": 4, "low": 7.0, "high": 7.0}
    text = show(db, "--csv", capsys=capsys)
    records = {r["method"]: r for r in csv.DictReader(io.StringIO(text))}
    low, high = bootstrap_interval(TIES["apart"])
    assert float(records["apart"]["avg_gap_ci_low"]) == low
    assert float(records["apart"]["avg_gap_ci_high"]) == high


def test_a_tie_within_noise_is_flagged_and_a_clear_difference_is_not(tmp_path, capsys):
    db = tmp_path / "runs.db"
    write(db, "digits-random10", TIES)
    rows = {row["method"]: row for row in json.loads(show(db, "--json", capsys=capsys))}
    assert rows["best"]["within_noise_of_best"] is None
    assert rows["close"]["within_noise_of_best"] is True
    assert rows["apart"]["within_noise_of_best"] is False
    table = show(db, capsys=capsys)
    lines = table.splitlines()
    assert "≈" in next(line for line in lines if " close " in line)
    assert "≈" not in next(line for line in lines if " apart " in line)
    assert "≈" not in next(line for line in lines if " best " in line)
    assert any(line.strip().startswith("≈: within noise of the best row on Avg. Gap")
               for line in lines)
    # the interval sits on the line under mean ± std
    best_line = lines.index(next(line for line in lines if " best " in line))
    assert "2.50±1.29" in lines[best_line]
    low, high = bootstrap_interval(TIES["best"])
    assert f"[{low:.2f}, {high:.2f}]" in lines[best_line + 1]


# Per seed, "steady" (1, 1, 1) loses seeds 0 and 1 to "spiky" (0.1, 0.1, 10) and wins seed 2,
# so every aggregation of the per-seed rankings puts spiky first, although its mean Avg. Gap
# (3.4) is worse than steady's (1.0): rows follow the rank. "partial" (5, 5, missing) is last
# on the two seeds it has.
RANKED = {"steady": [1.0, 1.0, 1.0], "spiky": [0.1, 0.1, 10.0], "partial": [5.0, 5.0, None]}


@pytest.mark.parametrize("rank_by", ["kemeny", "borda", "mean"])
def test_rank_column_follows_the_per_seed_rankings(tmp_path, capsys, rank_by):
    db = tmp_path / "runs.db"
    write(db, "digits-random10", RANKED)
    rows = json.loads(show(db, "--json", "--rank", rank_by, capsys=capsys))
    assert [row["method"] for row in rows] == ["spiky", "steady", "partial"]  # sorted by rank
    ranks = {row["method"]: row["rank"] for row in rows}
    assert ranks == {"spiky": {"by": rank_by, "position": 1, "criteria": 3, "of": 3},
                     "steady": {"by": rank_by, "position": 2, "criteria": 3, "of": 3},
                     "partial": {"by": rank_by, "position": 3, "criteria": 2, "of": 3}}
    lines = show(db, "--rank", rank_by, capsys=capsys).splitlines()
    assert "│ 3 (2/3) │" in next(line for line in lines if " partial " in line)


def test_rank_uses_every_headline_metric_with_its_orientation(tmp_path):
    # Forget quality higher is better, PrivLeak closer to 0 is better: b wins both.
    db = tmp_path / "runs.db"
    store = Store(db)
    for method, (quality, leak) in {"a": (0.1, -40.0), "b": (0.9, 5.0)}.items():
        store.write(RunRecord(key=method, benchmark="entities-forget05", method=method,
                              params={}, seed=0, status="finished",
                              metrics={"forget_quality": quality, "privleak": leak}))
    rows = leaderboard(store.runs())
    assert [(row["method"], row["rank"]["position"], row["rank"]["of"]) for row in rows] == [
        ("b", 1, 2), ("a", 2, 2)]
    # one seed each: too few to judge noise
    assert rows[1]["within_noise_of_best"] is None and rows[1]["paired_seeds"] == 1


def test_a_table_without_headline_metrics_has_no_rank_column(tmp_path, capsys):
    db = tmp_path / "runs.db"
    write(db, "digits-class", {"x": [90.0, 91.0], "y": [50.0, 52.0]}, metric="ua")
    rows = json.loads(show(db, "--json", capsys=capsys))
    assert all(row["rank"] is None and row["within_noise_of_best"] is None for row in rows)
    assert "Rank" not in show(db, capsys=capsys)


def test_across_ranks_methods_over_benchmarks_with_missing_cells(tmp_path, capsys):
    # digits: a 1, b 2, c 3 (Avg. Gap). fashion: b 1, a 2 (c not run there).
    db = tmp_path / "runs.db"
    write(db, "digits-random10", {"a": [1.0], "b": [2.0], "c": [3.0]})
    write(db, "fashion-random10", {"a": [4.0], "b": [1.0]})
    rows = json.loads(show(db, "--across", "--rank", "mean", "--json", capsys=capsys))
    assert rows == [
        {"method": "a", "position": 1, "cells": 2, "of": 2, "mean_rank": 1.5, "borda": 2 / 3},
        {"method": "b", "position": 2, "cells": 2, "of": 2, "mean_rank": 1.5, "borda": 2 / 3},
        {"method": "c", "position": 3, "cells": 1, "of": 2, "mean_rank": 3.0, "borda": 0.0}]
    table = show(db, "--across", capsys=capsys)
    assert "All benchmarks (Kemeny consensus of 2" in table
    assert "1/2" in next(line for line in table.splitlines() if " c " in line)


def test_bracketed_names_are_printed_as_written(tmp_path, capsys):
    """Variant names look like rich markup ("[requests=4]"); the table must print them."""
    db = tmp_path / "runs.db"
    write(db, "news-mini[requests=4]", {"ga[x]": [1.0, 2.0]})
    text = show(db, capsys=capsys)
    assert "news-mini[requests=4]" in text and "ga[x]" in text
