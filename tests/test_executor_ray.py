"""The Ray executor: a sweep on a local Ray instance (started here, ``ray.init(num_cpus=2)``)
stores what the serial run stores; a Ray worker killed mid-sweep loses its job only, the
command says which jobs are missing in one line and exits 2, and the same command then
finishes them, each job stored once with the serial run's numbers. Skipped when Ray is not
installed (``pip install 'unlearnbench[ray]'``); the checks of the executor choice run
without it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnbench.cache import ModelCache
from unlearnbench.errors import UserError
from unlearnbench.sweep.executors.serial import SerialExecutor
from unlearnbench.sweep.executors import make_executor
from unlearnbench.sweep.executors.pool import ProcessPool
from unlearnbench.sweep.jobs import plan
from unlearnbench.sweep.grid import run_grid
from unlearnbench.store import Store

from executor_fixtures import (
    CLI,
    assert_rerun_finishes,
    assert_same,
    child_pids,
    kill_a_worker_mid_sweep,
    run_serially,
    stored,
)
from executor_fixtures import cache_dir as cache_dir  # a fixture: see there

METHODS, SEEDS, STEPS = ["finetune", "ga"], [0, 1], 5


def grid():
    """digits-random10: 2 cheap methods x 2 seeds, a few optimizer steps each."""
    return plan(["digits-random10"], METHODS, SEEDS, max_steps=STEPS)


# ------------------------------------------------------------- the choice (no Ray needed)

def test_the_executor_choice_and_its_mistakes():
    assert isinstance(make_executor(), SerialExecutor)
    assert isinstance(make_executor(None, 1), SerialExecutor)
    pool = make_executor(None, 3, threads=2)  # --workers N alone: the pool, as before
    assert isinstance(pool, ProcessPool) and (pool.workers, pool.threads) == (3, 2)
    assert isinstance(make_executor("pool"), ProcessPool)  # one worker per core, at least 2
    assert make_executor("pool").workers >= 2
    with pytest.raises(UserError, match="--executor ray"):
        make_executor(None, address="auto")
    with pytest.raises(UserError, match="one job at a time"):
        make_executor("serial", 2)
    with pytest.raises(UserError, match="unknown executor 'dask'"):
        make_executor("dask")


def test_without_ray_the_ray_executor_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    with pytest.raises(UserError, match=r"pip install 'unlearnbench\[ray\]'"):
        make_executor("ray")
    # The command line, with a `ray` module first on the path that fails to import:
    (tmp_path / "ray.py").write_text("raise ImportError('No module named ray')\n")
    result = subprocess.run([*CLI, "run", "-b", "digits-random10", "--executor", "ray"],
                            check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: the Ray executor needs Ray") and "unlearnbench[ray]" in line
    assert not (tmp_path / "unlearnbench.db").exists()  # refused before anything was done


# ------------------------------------------------------------------ on a local Ray instance

@pytest.fixture(scope="module")
def ray_address():
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'unlearnbench[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def serial(cache_dir, tmp_path_factory) -> dict:
    """The sweep run serially, in this process: what the Ray executor must reproduce."""
    return run_serially(grid(), 4, cache_dir, tmp_path_factory.mktemp("serial") / "serial.db")


@pytest.mark.slow
def test_ray_tasks_store_what_the_serial_run_stores(ray_address, serial, cache_dir, tmp_path):
    db = tmp_path / "ray.db"
    seen = []
    executor = make_executor("ray")
    counts = run_grid(grid(), Store(db), ModelCache(cache_dir), executor=executor,
                      on_done=lambda job, record: seen.append((job.key, record.status)))
    assert counts == {"skipped": 0, "finished": 4, "failed": 0}
    assert sorted(seen) == sorted((key, "finished") for key in serial)
    assert_same(stored(db), serial)  # keys and every metric value to 1e-9
    # Everything is stored: a second run submits nothing.
    assert run_grid(grid(), Store(db), ModelCache(cache_dir), executor=executor) == \
        {"skipped": 4, "finished": 0, "failed": 0}


def _running_tasks() -> list[int]:
    """The Ray workers of this test's instance (children of its raylet, a child of this
    process) running a unit now: their process title is ``ray::run_unit``."""
    out = []
    for daemon in child_pids(os.getpid()):
        for pid in child_pids(daemon):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::run_unit"):
                    out.append(pid)
            except OSError:
                pass
    return out


@pytest.mark.slow
def test_a_killed_ray_worker_loses_its_job_only_and_a_rerun_finishes_the_sweep(
        ray_address, serial, cache_dir, tmp_path):
    db = tmp_path / "killed.db"
    command = [*CLI, "run", "-b", "digits-random10", "-m", ",".join(METHODS), "--seeds",
               str(len(SEEDS)), "--max-steps", str(STEPS), "--executor", "ray", "--address",
               ray_address, "--no-progress", "--db", str(db)]
    env = dict(os.environ, UNLEARNBENCH_CACHE=str(cache_dir), NO_COLOR="1")
    # both seeds' scenarios start at once: one task is still at work after the first record
    _, _, killed = kill_a_worker_mid_sweep(command, env, tmp_path, db, lambda _: _running_tasks())
    assert killed.returncode == 2, (killed.stdout, killed.stderr)
    errors = [line for line in killed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == killed.stderr.strip().splitlines()[-1]  # one line
    (message,) = errors
    assert "the Ray task running digits-random10" in message and "WorkerCrashedError" in message
    assert "jobs not done" in message and "run the same command again" in message
    before = stored(db)
    assert 1 <= len(before) < 4
    assert_same(before, {key: serial[key] for key in before})  # complete records only
    assert_rerun_finishes(command, env, tmp_path, db, before, serial)
