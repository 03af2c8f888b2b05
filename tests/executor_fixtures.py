"""Fixtures and helpers shared by the executor tests (``test_executors.py``,
``test_executor_ray.py``): the command line, reading a store back and comparing two stores,
and finding the processes a sweep started.

A test module takes the fixture with ``from executor_fixtures import cache_dir as
cache_dir``: the redundant alias marks the import as used on purpose, since pytest finds a
fixture by the test's argument name and the linter sees no other use."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from unlearnbench.cache import ModelCache
from unlearnbench.sweep.grid import run_grid
from unlearnbench.store import Store

_SCRIPT = Path(sys.executable).with_name("unlearnbench")
CLI = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "unlearnbench.cli"]
TIMING = {"unlearn_seconds", "unlearn_cpu_seconds", "speedup", "retrain_seconds"}


def stored(db: Path) -> dict[str, dict]:
    """key -> status, metric values (timings left out) and per-example arrays."""
    con = sqlite3.connect(db)
    try:
        out = {}
        for run_id, key, status in con.execute("SELECT id, key, status FROM runs"):
            metrics = {n: v for n, v in con.execute(
                "SELECT name, value FROM metric_values WHERE run_id = ?", (run_id,))
                if n not in TIMING}
            per_example = {m: (s, np.frombuffer(i, np.int64), np.frombuffer(v, np.float64))
                           for m, s, i, v in con.execute(
                               'SELECT metric, split, ids, "values" FROM per_example '
                               "WHERE run_id = ?", (run_id,))}
            out[key] = {"status": status, "metrics": metrics, "per_example": per_example}
        assert len(out) == con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        return out
    finally:
        con.close()


def assert_same(runs: dict, expected: dict) -> None:
    assert runs.keys() == expected.keys()
    for key, run in runs.items():
        want = expected[key]
        assert run["status"] == want["status"] == "finished"
        assert run["metrics"].keys() == want["metrics"].keys()
        for name, value in run["metrics"].items():
            if value is None or want["metrics"][name] is None:
                assert value is want["metrics"][name], name
            else:
                assert abs(value - want["metrics"][name]) <= 1e-9, (name, value, want["metrics"][name])
        assert run["per_example"].keys() == want["per_example"].keys()
        for metric, (split, ids, values) in run["per_example"].items():
            assert split == want["per_example"][metric][0]
            np.testing.assert_array_equal(ids, want["per_example"][metric][1])
            np.testing.assert_allclose(values, want["per_example"][metric][2], rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """The model cache of one test module (so each module trains its scenarios itself)."""
    return tmp_path_factory.mktemp("executor-model-cache")


def run_serially(jobs, finished: int, cache_dir: Path, db: Path) -> dict:
    """The jobs run serially, in this process, all ``finished``: what every other executor
    must reproduce, as ``stored`` reads it."""
    counts = run_grid(jobs, Store(db), ModelCache(cache_dir))
    assert counts == {"skipped": 0, "finished": finished, "failed": 0}
    return stored(db)


def child_pids(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _read_only(db: Path, query: str) -> list[tuple]:
    """Rows of ``query``, read while a sweep may still be writing ([] before the schema)."""
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(query).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:  # the schema is not there yet
        return []


def stored_run_count(db: Path) -> int:
    """Runs stored so far."""
    rows = _read_only(db, "SELECT COUNT(*) FROM runs")
    return rows[0][0] if rows else 0


def busy_pids(db: Path) -> set[int]:
    """Processes holding a lease on a job whose record is not stored yet: at work on it."""
    return {pid for (pid,) in _read_only(
        db, "SELECT pid FROM leases WHERE key NOT IN (SELECT key FROM runs)")}


def kill_a_worker_mid_sweep(command: list[str], env: dict, cwd: Path, db: Path,
                            find_workers: Callable[[subprocess.Popen], list[int]]
                            ) -> tuple[list[int], int, subprocess.CompletedProcess]:
    """Start the sweep ``command``; once the first record is stored, SIGKILL one of
    ``find_workers(parent)`` that is at work on a job not stored yet (a worker killed between
    writing a record and reporting it would lose nothing), and let the parent finish.
    Returns the workers found, the one killed and the result."""
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=cwd)
    try:
        deadline = time.monotonic() + 240
        workers: list[int] = []
        victims: list[int] = []
        while not victims and parent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
            if stored_run_count(db):
                workers = find_workers(parent)
                victims = [pid for pid in workers if pid in busy_pids(db)]
        assert victims, parent.communicate(timeout=60)
        os.kill(victims[0], signal.SIGKILL)
        stdout, stderr = parent.communicate(timeout=240)  # no hang
    finally:
        if parent.poll() is None:
            parent.kill()
    return workers, victims[0], subprocess.CompletedProcess(command, parent.returncode, stdout,
                                                            stderr)


def assert_rerun_finishes(command: list[str], env: dict, cwd: Path, db: Path,
                          before: dict, expected: dict) -> None:
    """Running the same sweep again runs only the missing jobs: afterwards the store holds
    each job exactly once, with the values ``expected`` (a serial run's)."""
    rerun = subprocess.run(command, check=False, capture_output=True, text=True, env=env,
                           cwd=cwd, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines()[-1] == \
        f"{len(expected) - len(before)} finished, 0 failed, {len(before)} already in {db}"
    assert_same(stored(db), expected)
