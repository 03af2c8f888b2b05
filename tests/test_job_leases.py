"""Job leases: several `unlearnbench run` processes on one store run each job once.

Two real CLI processes on one SQLite file share a grid; claims race from several processes
(SQLite and PostgreSQL) and one wins each key; a lease whose process died, or that was not
renewed, is taken over; a live one is respected (the grid waits for it, and does not run a
job its holder stores); an older store gets the table; an unwritable --db is one line."""
from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from unlearnbench.cache import ModelCache
from unlearnbench.errors import UserError
from unlearnbench.sweep.leases import Leases
from unlearnbench.sweep.jobs import plan
from unlearnbench.sweep.grid import run_grid
from unlearnbench.store import RunRecord, Store

from executor_fixtures import CLI
from executor_fixtures import cache_dir as cache_dir  # a fixture: see there
from test_store_postgres import postgres_server as postgres_server  # fixtures: see there
from test_store_postgres import postgres_url as postgres_url

HOST = socket.gethostname()


def cli_env(cache: Path) -> dict[str, str]:
    return {**os.environ, "UNLEARNBENCH_CACHE": str(cache), "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


# ----------------------------------------------------------------- two real CLI processes

@pytest.mark.slow
def test_two_concurrent_runs_on_one_sqlite_file_run_each_job_once(tmp_path):
    command = [*CLI, "run", "-b", "digits-random10", "-m", "finetune,ga,rl", "--seeds", "2",
               "--db", "same.db", "--cache-dir", str(tmp_path / "models")]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=cli_env(tmp_path / "data"), cwd=tmp_path)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
    # each process prints one line per job it ran: across both, every job once
    ran = Counter(line.split(":")[0] for stdout, _ in outputs for line in stdout.splitlines()
                  if re.match(r"digits-random10 \w+ seed=\d: finished", line))
    assert ran == {f"digits-random10 {method} seed={seed}": 1
                   for method in ("finetune", "ga", "rl") for seed in (0, 1)}, outputs
    # and each ends with the whole grid stored: what it ran, the rest "already in" the store
    for stdout, _ in outputs:
        finished = int(stdout.splitlines()[-1].split()[0])
        assert stdout.splitlines()[-1] == \
            f"{finished} finished, 0 failed, {6 - finished} already in same.db"
    with sqlite3.connect(tmp_path / "same.db") as con:
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM runs").fetchone() == (6, 6)
        assert con.execute("SELECT COUNT(*) FROM leases").fetchone() == (0,)  # all released


# ------------------------------------------------------------------------- claim races

# A claiming process: waits for the start file, claims each key and prints those it got; it
# holds them until its input closes (a claimer that had exited would leave its keys free).
CLAIMER = """
import os, sys, time
from unlearnbench.sweep.leases import Leases
location, start, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
leases = Leases(location)
while not os.path.exists(start):
    time.sleep(0.01)
print(" ".join(key for key in keys if leases.claim([key])), flush=True)
sys.stdin.read()
"""


def _race(location: str, start: Path, processes: int = 4, n: int = 20) -> list[list[str]]:
    """``processes`` processes claim the same ``n`` keys at once, each from its own first."""
    keys = [f"job{i}" for i in range(n)]
    children = [subprocess.Popen([sys.executable, "-c", CLAIMER, location, str(start),
                                  *keys[i:], *keys[:i]], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
                for i in range(processes)]
    time.sleep(2.0)  # let every child open the store, so that they start claiming together
    start.touch()
    claimed = [child.stdout.readline().split() for child in children]
    for child in children:
        child.communicate(timeout=60)
        assert child.returncode == 0
    return claimed


def _assert_each_key_once(claimed: list[list[str]]) -> None:
    every = [key for keys in claimed for key in keys]
    assert sorted(every) == sorted(f"job{i}" for i in range(20)), claimed


def test_concurrent_claims_on_sqlite_give_each_job_to_one_process(tmp_path):
    Store(tmp_path / "race.db").close()
    _assert_each_key_once(_race(str(tmp_path / "race.db"), tmp_path / "start"))


def test_concurrent_claims_on_postgresql_give_each_job_to_one_process(postgres_url, tmp_path):
    Store(postgres_url).close()
    _assert_each_key_once(_race(postgres_url, tmp_path / "start"))


# ------------------------------------------------------------------- taking over, or not

@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "leases.db")
    return request.getfixturevalue("postgres_url")


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over(location):
    store, leases = Store(location), Leases(location)
    pid = dead_pid()
    assert store.insert_lease("job", f"{HOST}:{pid}", HOST, pid, 3600)
    assert leases.claim(["job"])
    assert store.lease("job")["owner"] == f"{HOST}:{os.getpid()}"
    leases.release(["job"])
    assert store.lease("job") is None


def test_an_expired_lease_of_another_host_is_taken_over(location):
    store, leases = Store(location), Leases(location)
    assert store.insert_lease("job", "elsewhere:1", "elsewhere", 1, 0.5)
    assert not leases.claim(["job"])
    time.sleep(1.0)  # no heartbeat renewed it: expired
    assert leases.claim(["job"])
    assert store.lease("job")["owner"] == leases.owner


def test_a_live_lease_is_respected_and_a_unit_is_claimed_whole_or_not_at_all(location):
    store, leases = Store(location), Leases(location)
    sleeper = subprocess.Popen(["sleep", "60"])  # a live process of this host
    try:
        assert store.insert_lease("b", f"{HOST}:{sleeper.pid}", HOST, sleeper.pid, 3600)
        assert store.insert_lease("c", "elsewhere:1", "elsewhere", 1, 3600)
        assert not leases.claim(["a", "b"])
        assert not leases.claim(["c"])
        assert store.lease("a") is None  # released: all or nothing
        assert store.lease("b")["pid"] == sleeper.pid and leases.held == set()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert leases.claim(["a", "b"])  # its holder is gone now


def test_the_heartbeat_keeps_a_lease_alive(tmp_path):
    Store(tmp_path / "beat.db").close()
    leases = Leases(str(tmp_path / "beat.db"), seconds=0.8)  # renewed every 0.2 s
    assert leases.claim(["job"])
    time.sleep(2.0)
    lease = leases.store.lease("job")
    assert not lease["expired"] and lease["expires_at"] > lease["claimed_at"] + 1.5
    leases.close()
    assert Store(tmp_path / "beat.db").lease("job") is None


# --------------------------------------------------------------------- a grid waits

def _jobs():
    return plan(["digits-random10"], ["finetune", "ga"], [0], max_steps=3)


def test_a_grid_waits_for_a_held_job_and_runs_it_when_the_lease_expires(location, cache_dir):
    jobs, store = _jobs(), Store(location)
    store.insert_lease(jobs[0].key, "elsewhere:1", "elsewhere", 1, 4.0)  # never renewed
    expires = store.lease(jobs[0].key)["expires_at"]
    order, waited = [], []
    counts = run_grid(jobs, store, ModelCache(cache_dir),
                      on_done=lambda job, record: order.append(job.method),
                      on_wait=lambda held: waited.append([job.method for job in held]))
    assert counts == {"skipped": 0, "finished": 2, "failed": 0}
    assert waited == [["finetune"]] and order == ["ga", "finetune"]
    held = next(run for run in store.runs() if run["method"] == "finetune")
    assert held["started_at"] >= expires - 1.0  # started after the wait (clock read apart)
    assert store.lease(jobs[0].key) is None and store.lease(jobs[1].key) is None


def test_a_held_job_its_holder_stores_is_not_run_again(tmp_path, cache_dir):
    jobs, store = _jobs(), Store(tmp_path / "held.db")
    held = jobs[1]
    store.insert_lease(held.key, "elsewhere:1", "elsewhere", 1, 3600)

    def other_process():  # finishes the job a little later, then releases its lease
        time.sleep(3.0)
        other = Store(tmp_path / "held.db")
        other.write(RunRecord(held.key, held.benchmark, held.method, held.params, held.seed,
                              "failed", error="stored by the other process"))
        other.delete_leases([held.key], "elsewhere:1")
    thread = threading.Thread(target=other_process)
    thread.start()
    ran = []
    counts = run_grid(jobs, store, ModelCache(cache_dir),
                      on_done=lambda job, record: ran.append(job.method))
    thread.join()
    assert ran == ["finetune"] and counts == {"skipped": 1, "finished": 1, "failed": 0}
    assert {run["method"]: run["error"] for run in store.runs()} == {
        "finetune": None, "ga": "stored by the other process"}


@pytest.mark.slow
def test_a_process_pool_passes_over_a_held_job_and_takes_it_over(tmp_path, cache_dir):
    jobs, store = _jobs(), Store(tmp_path / "pool.db")
    pid = dead_pid()
    store.insert_lease(jobs[0].key, "elsewhere:1", "elsewhere", 1, 5.0)  # never renewed
    store.insert_lease(jobs[1].key, f"{HOST}:{pid}", HOST, pid, 3600)  # its process is gone
    counts = run_grid(jobs, store, ModelCache(cache_dir), workers=2)
    assert counts == {"skipped": 0, "finished": 2, "failed": 0}
    assert [run["status"] for run in store.runs()] == ["finished", "finished"]
    assert store.lease(jobs[0].key) is None and store.lease(jobs[1].key) is None


# ------------------------------------------------------------------ schema, unwritable

def test_an_older_sqlite_store_gets_the_leases_table(tmp_path):
    db = tmp_path / "old.db"
    store = Store(db)
    store.write(RunRecord("old-run", "bench", "ga", {}, 0, "finished", metrics={"ua": 0.5}))
    store.close()
    with sqlite3.connect(db) as con:  # the store as written before leases existed
        con.execute("DROP TABLE leases")
    store = Store(db)
    assert [(run["key"], run["metrics"]) for run in store.runs()] == [("old-run", {"ua": 0.5})]
    leases = Leases(str(db))
    assert leases.claim(["new-run"]) and store.lease("new-run")["pid"] == os.getpid()


def test_a_store_that_cannot_be_written_is_one_line_before_any_work(tmp_path):
    store = Store(tmp_path / "ro.db")
    store.db.execute("PRAGMA query_only=ON")  # what a read-only file looks like, even to root
    with pytest.raises(UserError, match=r"^cannot write to the store .*ro\.db.*--db$"):
        store.insert_lease("job", "me:1", "me", 1, 60)


@pytest.mark.slow
def test_run_with_an_unwritable_db_says_so_in_one_line(tmp_path):
    if os.geteuid() == 0:  # root writes any directory but /proc's
        db = "/proc/unlearnbench-test.db"
    else:
        (tmp_path / "locked").mkdir(mode=0o555)
        db = str(tmp_path / "locked" / "runs.db")
    result = subprocess.run([*CLI, "run", "-b", "digits-random10", "-m", "ga", "--db", db],
                            capture_output=True, text=True, env=cli_env(tmp_path / "data"),
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: cannot write to the store {db!r} (unable to open database file); check "
        "that the file and its directory can be written, or pass another --db"]
