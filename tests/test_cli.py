"""The command line, end to end: real ``unlearnbench`` processes, a real SQLite store in
tmp_path, real (small) digits training. What goes wrong (bad input, a diverging method, a
killed run) is in test_cli_errors.py, which uses the helpers here.

The trained models are shared between tests through one model cache per session. Every
process runs with one torch thread: the digits MLP is tiny, and on a small busy machine
thread spinning makes training several times slower."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import sqlite3
import subprocess
import sys
import typing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from unlearnbench.registry import benchmarks, datasets, methods, metrics, type_name
from unlearnbench.scenarios import get_spec

_SCRIPT = Path(sys.executable).with_name("unlearnbench")
CLI = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "unlearnbench.cli"]

TIMING_METRICS = {"unlearn_seconds", "unlearn_cpu_seconds", "speedup", "retrain_seconds"}
TIMEOUT = 300


def cli_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        env.pop(name, None)
    env.update(UNLEARNBENCH_CACHE=str(cache), PYTHONUNBUFFERED="1", NO_COLOR="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def ub(*args: str, cache: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=cli_env(cache),
                          cwd=cwd, timeout=TIMEOUT)


def ub_many(commands: list[list[str]], cache: Path,
            cwd: Path) -> list[subprocess.CompletedProcess]:
    """Run independent commands side by side (most of their time is importing torch)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda args: ub(*args, cache=cache, cwd=cwd), commands))


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def runs_in(db: Path) -> list[dict]:
    """Every run in the store, read with sqlite3 directly: row, metric values, per-example."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY id")]
        for row in rows:
            row["metrics"] = {n: v for n, v in con.execute(
                "SELECT name, value FROM metric_values WHERE run_id = ?", (row["id"],))}
            row["per_example"] = {m: (s, bytes(i), bytes(v)) for m, s, i, v in con.execute(
                'SELECT metric, split, ids, "values" FROM per_example WHERE run_id = ?',
                (row["id"],))}
            row["params"] = json.loads(row["params"])
    finally:
        con.close()
    return rows


def default_params(method: str, benchmark: str = "digits-random10") -> dict:
    """A method's hyperparameters as a run stores them: its defaults, then the benchmark's
    tuned values."""
    params = dataclasses.asdict(methods.get(method).params())
    return {**params, **get_spec(benchmark).method_params.get(method, {})}


def cache_files(cache: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(cache)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(cache.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One model cache for every command-line test (each digits scenario is trained once)."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def background():
    """One extra process at a time, beside the tests: the short commands (the listings) run
    on the core the one-thread training leaves idle, and their tests collect them."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


@pytest.fixture(scope="module", autouse=True)
def start_short_commands(request, background, model_cache, tmp_path_factory):
    """Submit the listings as the module starts; their fixture waits for the results."""
    request.getfixturevalue("listings")


# --------------------------------------------------------------------------- run + show

GRID = ["run", "-b", "digits-random10", "-m", "retrain,finetune,ga", "--seeds", "2",
        "--no-progress"]


@pytest.fixture(scope="module")
def grid(model_cache, tmp_path_factory):
    """The store after one run of retrain, finetune and ga over 2 seeds."""
    work = tmp_path_factory.mktemp("grid")
    db = work / "grid.db"
    result = ok(ub(*GRID, "--db", str(db), cache=model_cache, cwd=work))
    shows = ub_many([["show", *flags, "--db", str(db)] for flags in (["--json"], ["--csv"], [])],
                    model_cache, work)
    return {"db": db, "work": work, "stdout": result.stdout, "json": shows[0], "csv": shows[1],
            "table": shows[2]}


@pytest.mark.slow
def test_run_writes_every_job(grid):
    lines = grid["stdout"].splitlines()
    assert lines[-1] == f"6 finished, 0 failed, 0 already in {grid['db']}"
    for method in ("retrain", "finetune", "ga"):
        for seed in (0, 1):
            assert any(line.startswith(f"digits-random10 {method} seed={seed}: finished avg_gap=")
                       for line in lines), lines
    runs = runs_in(grid["db"])
    assert sorted((r["method"], r["seed"]) for r in runs) == sorted(
        (m, s) for m in ("retrain", "finetune", "ga") for s in (0, 1))
    for run in runs:
        assert run["status"] == "finished" and run["error"] is None
        assert {"ua", "ra", "ta", "mia_efficacy", "avg_gap"} <= set(run["metrics"])
        assert run["per_example"]
        assert run["finished_at"] >= run["started_at"]
    assert next(r for r in runs if r["method"] == "ga")["params"] == default_params("ga")


@pytest.mark.slow
def test_show_json(grid):
    rows = json.loads(ok(grid["json"]).stdout)
    by_method = {row["method"]: row for row in rows}
    assert set(by_method) == {"retrain", "finetune", "ga"}
    for row in rows:
        assert row["benchmark"] == "digits-random10"
        assert row["seeds"] == [0, 1] and row["failed"] == 0 and row["errors"] == []
        assert row["metrics"]["avg_gap"]["n"] == 2
    # Retraining with the scenario's seed reproduces the reference bit for bit.
    assert by_method["retrain"]["metrics"]["avg_gap"] == {"mean": 0.0, "std": 0.0,
                                                          "std_of_mean": 0.0, "n": 2,
                                                          "low": 0.0, "high": 0.0}
    assert by_method["ga"]["metrics"]["avg_gap"]["mean"] > 0
    # Sorted by Avg. Gap.
    gaps = [row["metrics"]["avg_gap"]["mean"] for row in rows]
    assert gaps == sorted(gaps)


@pytest.mark.slow
def test_show_csv(grid):
    text = ok(grid["csv"]).stdout
    records = list(csv.DictReader(io.StringIO(text)))
    assert {r["method"] for r in records} == {"retrain", "finetune", "ga"}
    for record in records:
        assert record["benchmark"] == "digits-random10"
        assert record["seeds"] == "2" and record["failed"] == "0"
        float(record["avg_gap_mean"]), float(record["avg_gap_std"])
        assert float(record["avg_gap_ci_low"]) <= float(record["avg_gap_mean"]) <= \
            float(record["avg_gap_ci_high"])
    retrain = next(r for r in records if r["method"] == "retrain")
    assert float(retrain["avg_gap_mean"]) == 0.0
    assert json.loads(next(r for r in records if r["method"] == "ga")["params"]) == \
        default_params("ga")


@pytest.mark.slow
def test_show_table(grid):
    out = ok(grid["table"]).stdout
    assert "digits-random10 (mean ± std over seeds; sorted by Avg. Gap" in out
    for method in ("retrain", "finetune", "ga"):
        assert f" {method} " in out
    assert "Avg. Gap" in out and "0.00±0.00" in out
    # retrain reproduces the reference on both seeds: a zero-width interval, rank 1
    assert "[0.00, 0.00]" in out and "95% bootstrap interval of the mean over seeds" in out
    retrain_line = next(line for line in out.splitlines() if " retrain " in line)
    assert retrain_line.split("│")[3].strip() == "1"  # Method │ Seeds │ Rank


@pytest.mark.slow
def test_second_run_does_no_work(grid, model_cache):
    before_runs = runs_in(grid["db"])
    before_cache = cache_files(model_cache)
    result = ok(ub(*GRID, "--db", str(grid["db"]), cache=model_cache, cwd=grid["work"]))
    assert result.stdout.splitlines() == [f"0 finished, 0 failed, 6 already in {grid['db']}"]
    assert cache_files(model_cache) == before_cache  # no model trained, loaded or written
    assert runs_in(grid["db"]) == before_runs


# --------------------------------------------------------------------------- determinism

@pytest.mark.slow
def test_same_job_same_results_in_fresh_stores(grid, model_cache, tmp_path):
    """ga on seed 0 in two fresh stores: in the grid (shared cache, after retrain and finetune ran
    in the same process) and alone, with a fresh cache (so both models are trained
    again). Everything but the timings is identical."""
    job = ["run", "-b", "digits-random10", "-m", "ga", "--seeds", "1", "--no-progress"]
    ok(ub(*job, "--db", str(tmp_path / "s.db"), cache=tmp_path / "fresh-cache", cwd=tmp_path))
    [a] = [r for r in runs_in(grid["db"]) if r["method"] == "ga" and r["seed"] == 0]
    [b] = runs_in(tmp_path / "s.db")
    assert a["key"] == b["key"] and a["params"] == b["params"] and a["steps"] == b["steps"]
    assert a["metrics"].keys() == b["metrics"].keys()
    assert TIMING_METRICS <= set(a["metrics"])
    deterministic = set(a["metrics"]) - TIMING_METRICS
    assert {"ua", "ra", "ta", "mia_efficacy", "avg_gap", "forget_accuracy"} <= deterministic
    assert {n: a["metrics"][n] for n in deterministic} == \
        {n: b["metrics"][n] for n in deterministic}
    assert a["per_example"] == b["per_example"]
    # The fresh cache trained the same models, byte for byte.
    fresh = sorted((tmp_path / "fresh-cache" / "models").glob("*.safetensors"))
    assert len(fresh) == 2
    for weights in fresh:
        assert weights.read_bytes() == (model_cache / "models" / weights.name).read_bytes()


# --------------------------------------------------------------------------- config

@pytest.mark.slow
def test_yaml_config(model_cache, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("benchmarks: [digits-random10]\nmethods: [ga, original]\nseeds: 1\n"
                      "params: {ga: {lr: 0.001, epochs: 2}}\n")
    db = tmp_path / "c.db"
    result = ok(ub("run", "--config", str(config), "--db", str(db), "--no-progress",
                   cache=model_cache, cwd=tmp_path))
    assert result.stdout.splitlines()[-1] == f"2 finished, 0 failed, 0 already in {db}"
    expected = dict(default_params("ga"), lr=0.001, epochs=2)
    runs = {run["method"]: run for run in runs_in(db)}
    assert runs["ga"]["params"] == expected
    assert runs["original"]["params"] == {}

    # A flag wins over the config, and --set adds to its params: a new variant, not a rerun.
    result = ok(ub("run", "--config", str(config), "-m", "ga", "--set", "ga.lr=0.0005",
                   "--db", str(db), "--no-progress", cache=model_cache, cwd=tmp_path))
    assert result.stdout.splitlines()[-1] == f"1 finished, 0 failed, 0 already in {db}"
    lrs = sorted(r["params"]["lr"] for r in runs_in(db) if r["method"] == "ga")
    assert lrs == [0.0005, 0.001]
    assert {r["params"]["epochs"] for r in runs_in(db) if r["method"] == "ga"} == {2}
    # The table tells the two variants apart by the hyperparameter that differs.
    table = ok(ub("show", "--db", str(db), cache=model_cache, cwd=tmp_path)).stdout
    assert "ga[lr=0.0005]" in table and "ga[lr=0.001]" in table


# --------------------------------------------------------------------------- list

@pytest.fixture(scope="module")
def listings(background, model_cache, tmp_path_factory):
    work = tmp_path_factory.mktemp("list")
    kinds = ["methods", "benchmarks", "datasets", "metrics"]
    futures = {kind: background.submit(ub, "list", kind, cache=model_cache, cwd=work)
               for kind in kinds}

    class Outputs(dict):
        def __missing__(self, kind):
            self[kind] = ok(futures[kind].result()).stdout
            return self[kind]

    return Outputs()


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.slow
def test_list_methods_shows_hyperparameters(listings):
    out = listings["methods"]
    assert out.splitlines()[0] == "methods"
    for entry in methods.entries():
        assert f"  {entry.name}  " in out
        assert flat(entry.description) in flat(out)
        if entry.params is None:
            continue
        hints = typing.get_type_hints(entry.params)
        for field in dataclasses.fields(entry.params):
            assert f"      {field.name}: {type_name(hints[field.name])} = {field.default!r}" in out
    for name in ("original", "retrain", "finetune", "ga", "rl"):
        assert f"  {name}  " in out
    assert f"lr: float = {methods.get('ga').params().lr!r}" in out


@pytest.mark.slow
@pytest.mark.parametrize("kind, registry, names", [
    ("benchmarks", benchmarks,
     ["digits-random10", "digits-class", "mnist-random10", "mnist-class"]),
    ("datasets", datasets, ["digits", "mnist"]),
    ("metrics", metrics, ["ua", "ra", "ta", "mia_efficacy", "avg_gap"]),
])
def test_list_components(listings, kind, registry, names):
    out = listings[kind]
    assert out.splitlines()[0] == kind
    for name in names:
        assert f"  {name}  " in out
    for entry in registry.entries():
        assert f"  {entry.name}  " in out
        assert flat(entry.description) in flat(out)
