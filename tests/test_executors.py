"""Executors: the serial loop and the local process pool store the same records; a worker
killed mid-sweep stops nothing but its own job, the parent says which jobs are missing and a
rerun finishes them; several processes writing one SQLite store lose nothing.

Small grids (digits, a few optimizer steps); the runs in spawned processes are marked slow."""
from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from unlearnbench.cache import ModelCache
from unlearnbench.sweep.executors.base import Unit, Schedule, make_units
from unlearnbench.sweep.jobs import plan
from unlearnbench.sweep.grid import run_grid
from unlearnbench.store import RunRecord, Store

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

METHODS, SEEDS, STEPS = ["finetune", "ga", "rl"], [0, 1], 5


def grid():
    """digits-random10: 3 methods x 2 seeds; digits-sequential: one chain of 3 requests."""
    return (plan(["digits-random10"], METHODS, SEEDS, max_steps=STEPS)
            + plan(["digits-sequential"], ["ga"], [0], max_steps=STEPS))


@pytest.fixture(scope="module")
def serial(cache_dir, tmp_path_factory) -> dict:
    """The grid run serially, in this process: what every other executor must reproduce."""
    return run_serially(grid(), 9, cache_dir, tmp_path_factory.mktemp("serial") / "serial.db")


# ------------------------------------------------------------------------- units, schedule

def test_units_are_jobs_in_grid_order_and_chains_stay_whole():
    jobs = grid()
    units = make_units(jobs, jobs)
    assert [len(u.jobs) for u in units] == [1] * 6 + [3]
    assert [u.group for u in units] == [("digits-random10", 0)] * 3 + \
        [("digits-random10", 1)] * 3 + [("digits-sequential", 0)]
    chain = units[-1]
    assert [j.request for j in chain.jobs] == [1, 2, 3] and chain.chain == chain.jobs
    # A chain whose first stage is stored runs whole (its model is needed) but lists the
    # stored stage apart, so it is not written again.
    pending = [j for j in jobs if j.request != 1]
    (chain,) = [u for u in make_units(jobs, pending) if u.chain]
    assert [j.request for j in chain.jobs] == [2, 3] and len(chain.chain) == 3


def test_a_free_worker_stays_on_its_group_then_starts_a_fresh_one():
    def unit(benchmark, seed, name):
        return Unit((benchmark, seed), (name,))  # the schedule never looks inside jobs
    schedule = Schedule([unit("b", 0, "a1"), unit("b", 0, "a2"), unit("b", 0, "a3"),
                          unit("b", 1, "b1"), unit("b", 1, "b2")])
    first = schedule.next(None, anywhere=False)
    second = schedule.next(None, anywhere=False)  # another worker: a fresh group, not seed 0
    assert (first.jobs, second.jobs) == (("a1",), ("b1",))
    assert schedule.next(("b", 0), anywhere=False).jobs == ("a2",)  # affinity
    assert schedule.next(("b", 1), anywhere=False).jobs == ("b2",)
    # Group 1 is done; seed 0's scenario is not built yet: wait rather than train it twice...
    assert schedule.next(("b", 1), anywhere=False) is None
    # ...unless nothing else is running, or once it is built (then it is loaded from the cache)
    schedule.built.add(("b", 0))
    assert schedule.next(("b", 1), anywhere=False).jobs == ("a3",)
    assert schedule.next(None, anywhere=True) is None and schedule.left() == []


# ---------------------------------------------------------------------------- the store

def _record(key: str, writer: int, n: int) -> RunRecord:
    record = RunRecord(key, "bench", "method", {"writer": writer}, n, "finished",
                       timings={"unlearn_seconds": 0.1, "steps": n})
    record.metrics = {f"m{i}": writer + n / 1000 + i for i in range(5)}
    ids = np.arange(200, dtype=np.int64) + n
    record.per_example = {"loss": ("forget", ids, ids * 0.5 + writer)}
    record.curve = [(0, {"m0": 1.0}), (n + 1, {"m0": 2.0})]
    return record


def _write_many(db: str, writer: int, count: int, start) -> None:
    store = Store(db, timeout=1.0)  # short: some writes wait in the retries
    start.wait()
    for n in range(count):
        store.write(_record(f"w{writer}-{n}", writer, n))
        store.write(_record("shared", writer, 0))  # everyone writes this one: stored once
    store.close()


@pytest.mark.slow
def test_parallel_writers_lose_nothing(tmp_path):
    db = str(tmp_path / "runs.db")
    Store(db).close()
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    writers = [context.Process(target=_write_many, args=(db, w, 40, start)) for w in range(3)]
    for process in writers:
        process.start()
    time.sleep(1.0)  # let them all import and open the store, then write at once
    start.set()
    for process in writers:
        process.join(120)
    assert [p.exitcode for p in writers] == [0] * 3
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    keys = [k for (k,) in con.execute("SELECT key FROM runs")]
    assert sorted(keys) == sorted([f"w{w}-{n}" for w in range(3) for n in range(40)] + ["shared"])
    assert con.execute("SELECT COUNT(*) FROM metric_values").fetchone()[0] == 5 * 121
    assert con.execute("SELECT COUNT(*) FROM per_example").fetchone()[0] == 121
    assert con.execute("SELECT COUNT(*) FROM curve").fetchone()[0] == 2 * 121
    con.close()
    runs = {run["key"]: run for run in Store(db).runs()}
    assert runs["w2-39"]["metrics"]["m4"] == 2 + 39 / 1000 + 4


def test_a_locked_write_waits_and_a_duplicate_write_is_a_no_op(tmp_path):
    db = tmp_path / "runs.db"
    store = Store(db, timeout=0.05)
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing for 0.6 s
    releaser = threading.Timer(0.6, lambda: holder.execute("COMMIT"))
    releaser.start()
    began = time.perf_counter()
    run_id = store.write(_record("k", 0, 1))  # 0.05 s busy timeout, then retries
    assert time.perf_counter() - began >= 0.5
    releaser.join()
    holder.close()
    assert store.write(_record("k", 9, 9)) == run_id  # the first complete result wins
    (run,) = store.runs()
    assert run["params"] == {"writer": 0} and len(run["metrics"]) == 5
    assert not store.db.in_transaction


# --------------------------------------------------------------------------- the pool

@pytest.mark.slow
def test_a_pool_of_two_workers_stores_what_the_serial_run_stores(serial, cache_dir, tmp_path):
    db = tmp_path / "pool.db"
    seen, spawned = [], []

    def on_done(job, record):
        seen.append((job.key, record.status))
        spawned.append(len(multiprocessing.active_children()))
    counts = run_grid(grid(), Store(db), ModelCache(cache_dir), workers=2, on_done=on_done)
    assert counts == {"skipped": 0, "finished": 9, "failed": 0}
    assert sorted(seen) == sorted((key, "finished") for key in serial)
    assert_same(stored(db), serial)
    assert max(spawned) == 1  # this process is the other worker
    # One job: the parent's thread runs it and nothing is spawned.
    one = tmp_path / "one.db"
    spawned.clear()
    assert run_grid(grid()[:1], Store(one), ModelCache(cache_dir), workers=2,
                    on_done=on_done)["finished"] == 1
    assert spawned == [0]
    assert_same(stored(one), {key: serial[key] for key in stored(one)})
    # Everything is stored: a second run starts no worker and skips it all.
    assert run_grid(grid(), Store(db), ModelCache(cache_dir), workers=2) == \
        {"skipped": 9, "finished": 0, "failed": 0}


def _is_worker(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"spawn_main" in command


@pytest.mark.slow
def test_a_killed_worker_loses_its_job_only_and_a_rerun_finishes_the_sweep(serial, cache_dir,
                                                                           tmp_path):
    db = tmp_path / "killed.db"
    command = [*CLI, "run", "-b", "digits-random10", "-m", ",".join(METHODS), "--seeds",
               str(len(SEEDS)), "--max-steps", str(STEPS), "--workers", "2", "--no-progress",
               "--db", str(db)]
    env = dict(os.environ, UNLEARNBENCH_CACHE=str(cache_dir), NO_COLOR="1", OMP_NUM_THREADS="1")
    workers, victim, killed = kill_a_worker_mid_sweep(
        command, env, tmp_path, db,
        lambda parent: [pid for pid in child_pids(parent.pid) if _is_worker(pid)])
    assert len(workers) == 1  # --workers 2: this process's thread and one spawned process
    assert killed.returncode == 2, (killed.stdout, killed.stderr)
    (message,) = killed.stderr.strip().splitlines()  # one line
    assert f"worker process {victim} died (killed by SIGKILL)" in message
    assert "jobs not done" in message and "run the same command again" in message
    before = stored(db)
    assert 1 <= len(before) < 6
    expected = {key: run for key, run in serial.items() if key in
                {job.key for job in plan(["digits-random10"], METHODS, SEEDS, max_steps=STEPS)}}
    assert_same(before, {key: expected[key] for key in before})  # complete records only
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # none left behind
    assert_rerun_finishes(command, env, tmp_path, db, before, expected)
