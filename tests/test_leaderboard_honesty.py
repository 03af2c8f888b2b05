"""What the leaderboard claims with few seeds: no "≈" from a paired test on 2 seeds (one
degree of freedom) but a footnote saying there are too few; rows in the order of the Rank
column; long tuned labels shortened in the terminal only. Stores written record by record (a
real SQLite file, no training), `show` run in process."""
import json

import pytest

from unlearnbench.cli import main
from unlearnbench.report.html import write_report
from unlearnbench.store import RunRecord, Store


def write(db, benchmark, rows):
    """rows: [(method, params, [Avg. Gap per seed, None where the seed was not run])]."""
    store = Store(db)
    for method, params, values in rows:
        for seed, value in enumerate(values):
            if value is not None:
                store.write(RunRecord(key=f"{benchmark}/{method}/{json.dumps(params)}/{seed}",
                                      benchmark=benchmark, method=method, params=params,
                                      seed=seed, status="finished", metrics={"avg_gap": value}))
    store.close()


def show(db, *flags, capsys):
    main(["show", "--db", str(db), *flags])
    return capsys.readouterr().out


def line_of(table: str, name: str) -> str:
    return next(line for line in table.splitlines() if f"│ {name} " in line)


# Two seeds: "near" differs from "best" by +0.5 and -0.1, a paired t-test on these two pairs
# gives p ≈ 0.6 (one degree of freedom), which used to mark it "≈".
TWO_SEEDS = [("best", {}, [1.0, 2.0]), ("near", {}, [1.5, 1.9]), ("far", {}, [9.0, 8.0])]


def test_two_seeds_mark_nothing_within_noise_and_say_why(tmp_path, capsys):
    db = tmp_path / "runs.db"
    write(db, "digits-random10", TWO_SEEDS)
    rows = {row["method"]: row for row in json.loads(show(db, "--json", capsys=capsys))}
    assert rows["best"]["within_noise_of_best"] is None and rows["best"]["paired_seeds"] is None
    for method in ("near", "far"):
        assert rows[method]["within_noise_of_best"] is None
        assert rows[method]["paired_seeds"] == 2
    table = show(db, capsys=capsys)
    assert "≈" not in line_of(table, "near")
    assert not any(line.strip().startswith("≈:") for line in table.splitlines())
    assert ("  Too few seeds to tell rows within noise of the best (≈): rows sharing fewer than "
            "3 seeds with it are not compared; run --seeds 3 or more.") in table.splitlines()


def test_three_seeds_are_judged_and_need_no_footnote(tmp_path, capsys):
    db = tmp_path / "runs.db"
    write(db, "digits-random10", [("best", {}, [1.0, 2.0, 3.0]), ("near", {}, [1.5, 1.9, 3.1])])
    rows = {row["method"]: row for row in json.loads(show(db, "--json", capsys=capsys))}
    assert rows["near"]["within_noise_of_best"] is True and rows["near"]["paired_seeds"] == 3
    table = show(db, capsys=capsys)
    assert "≈" in line_of(table, "near") and "Too few seeds" not in table


# Per seed, "steady" (1, 1, 1) loses two of three seeds to "spiky" (0.1, 0.1, 10): spiky ranks
# first with the worse mean. "lone" has no Avg. Gap: unranked, last.
RANKED = [("steady", {}, [1.0, 1.0, 1.0]), ("spiky", {}, [0.1, 0.1, 10.0]),
          ("partial", {}, [5.0, 5.0, None])]


@pytest.mark.parametrize("rank_by", ["kemeny", "borda", "mean"])
def test_rows_are_in_the_order_of_the_rank_column(tmp_path, capsys, rank_by):
    db = tmp_path / "runs.db"
    write(db, "digits-random10", RANKED)
    Store(db).write(RunRecord(key="lone", benchmark="digits-random10", method="lone", params={},
                              seed=0, status="finished", metrics={"ua": 3.0}))
    rows = json.loads(show(db, "--json", "--rank", rank_by, capsys=capsys))
    assert [(row["method"], row["rank"] and row["rank"]["position"]) for row in rows] == [
        ("spiky", 1), ("steady", 2), ("partial", 3), ("lone", None)]
    table = show(db, "--rank", rank_by, capsys=capsys)
    shown = [line.split("│")[1].strip() for line in table.splitlines()
             if line.startswith("│ ") and line.split("│")[1].strip()]
    assert shown == ["spiky", "steady", "partial", "lone"]
    assert [line_of(table, name).split("│")[3].strip() for name in shown] == [
        "1", "2 ≈", "3 (2/3)", "—"]
    assert "(mean ± std over seeds; sorted by Avg. Gap rank)" in " ".join(table.split())
    # the best row, against which "≈" is judged, is the first row: steady is compared to spiky
    assert rows[1]["paired_seeds"] == 3 and rows[1]["within_noise_of_best"] is True


# Tuned values: one lr differs from the other two in the 7th digit only, so rounding alone
# would make them one label; "wide" differs in five hyperparameters.
TUNED_LR = 0.0012345678912345


def test_long_tuned_labels_are_short_in_the_terminal_and_full_elsewhere(tmp_path, capsys):
    db = tmp_path / "runs.db"
    default = {"lr": 0.002, "epochs": 5, "momentum": 0.9, "batch_size": 64, "weight": 0.5}
    wide = {"lr": TUNED_LR, "epochs": 7, "momentum": 0.87654321, "batch_size": 48,
            "weight": 0.123456789}
    write(db, "digits-random10", [("ga", default, [1.0]), ("ga", wide, [2.0]),
                                  ("rl", {"lr": TUNED_LR}, [3.0]),
                                  ("rl", {"lr": TUNED_LR + 1e-9}, [4.0]),
                                  ("rl", {"lr": 0.01}, [5.0])])
    rows = json.loads(show(db, "--json", capsys=capsys))
    wide_label = ("ga[batch_size=48,epochs=7,lr=0.0012345678912345,momentum=0.87654321,"
                  "weight=0.123456789]")
    assert [row["label"] for row in rows] == [
        "ga[batch_size=64,epochs=5,lr=0.002,momentum=0.9,weight=0.5]", wide_label,
        f"rl[lr={TUNED_LR}]", f"rl[lr={TUNED_LR + 1e-9}]", "rl[lr=0.01]"]
    table = show(db, capsys=capsys)
    lines = table.splitlines()
    # rounding shortens the tuned value; what is still long, or ambiguous, gets an id
    assert "rl[lr=0.01]" in line_of(table, "rl[lr=0.01]")
    assert [line_of(table, name).split("│")[1].strip() for name in
            ("ga #1", "ga #2", "rl #1", "rl #2")] == ["ga #1", "ga #2", "rl #1", "rl #2"]
    assert f"  ga #2: {wide_label}" in lines
    assert f"  rl #1: rl[lr={TUNED_LR}]" in lines and f"  rl #2: rl[lr={TUNED_LR + 1e-9}]" in lines
    assert not any(str(TUNED_LR) in line for line in lines if line.startswith("│"))
    report = tmp_path / "report.html"
    write_report(db, report)
    assert wide_label in report.read_text()


def test_a_tuned_label_is_rounded_when_that_is_enough(tmp_path, capsys):
    db = tmp_path / "runs.db"
    write(db, "digits-random10", [("ga", {"lr": TUNED_LR}, [1.0]), ("ga", {"lr": 0.01}, [2.0])])
    table = show(db, capsys=capsys)
    assert line_of(table, "ga[lr=0.00123]") and f"lr={TUNED_LR}" not in table
    assert json.loads(show(db, "--json", capsys=capsys))[0]["label"] == f"ga[lr={TUNED_LR}]"
