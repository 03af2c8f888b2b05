"""The store on a real PostgreSQL server: the same records read back as from SQLite, parallel
writers lose and double nothing, `show --db postgresql://...` prints the table, and a small
real sweep stored on the server equals the same sweep stored in SQLite.

The server (Debian's postgresql) is started for the test session on loopback, in a temporary
directory, as the postgres user when the tests run as root; each test gets a fresh database.
Without the binaries or the psycopg driver the tests skip and say why."""
from __future__ import annotations

import glob
import json
import multiprocessing
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from unlearnbench.cli import main
from unlearnbench.report.leaderboard import leaderboard
from unlearnbench.store import RunRecord, Store

_SCRIPT = Path(sys.executable).with_name("unlearnbench")
CLI = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "unlearnbench.cli"]
TIMING = {"unlearn_seconds", "unlearn_cpu_seconds", "speedup", "retrain_seconds"}


def _postgres_bin() -> Path | None:
    """Debian's PostgreSQL binaries (the newest major version), else initdb on the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on 127.0.0.1 for the session: yields its URL without a database
    name (user ``unlearnbench``, trust authentication) and stops it at the end."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed "
                                  "(pip install 'unlearnbench[postgres]')")
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql): server store "
                    "tests skipped")
    as_owner = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        if not shutil.which("runuser") or not _user_exists("postgres"):
            pytest.skip("running as root without a postgres user and runuser to start "
                        "PostgreSQL as: server store tests skipped")
        as_owner = ["runuser", "-u", "postgres", "--"]
    # in /tmp itself: the postgres user cannot enter pytest's private tmp_path directories
    root = Path(tempfile.mkdtemp(prefix="unlearnbench-postgres-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    if as_owner:
        for path in (root, sockets):
            shutil.chown(path, "postgres")
    port = _free_port()
    made = subprocess.run([*as_owner, bindir / "initdb", "-D", data, "-U", "unlearnbench",
                           "--auth=trust", "-E", "UTF8", "--locale=C"],
                          capture_output=True, text=True)
    options = (f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c max_connections=40")
    started = made.returncode == 0 and subprocess.run(
        [*as_owner, bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-o", options, "start"],
        capture_output=True, text=True).returncode == 0
    if not started:
        message = log.read_text() if log.exists() else made.stderr
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start:\n{message}")
    base = f"postgresql://unlearnbench@127.0.0.1:{port}"
    try:
        with psycopg.connect(f"{base}/postgres", connect_timeout=10):
            pass
        yield base
    finally:
        subprocess.run([*as_owner, bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server, request):
    """A fresh database on the session's server, named after the test."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{name}"


def _record(key: str, writer: int, n: int, status: str = "finished") -> RunRecord:
    """A run whose every value says which writer made it (``writer``) and which one (``n``)."""
    record = RunRecord(key, "bench" if n % 3 else "other-bench", f"method{n % 2}",
                       {"writer": writer, "lr": 0.1 * (n + 1)}, n % 4, status,
                       error="diverged at step 3" if status == "failed" else None,
                       request=None if n % 5 else 2, started_at=1000.0 + n,
                       finished_at=2000.0 + n,
                       timings={"unlearn_seconds": 0.5 + n, "unlearn_cpu_seconds": 0.25,
                                "metrics_seconds": 1.5, "steps": 10 + n},
                       versions={"torch": "2.x", "unlearnbench": "0.1"}, git_commit="abc123")
    if status == "finished":
        record.metrics = {"avg_gap": writer + n / 1000, "ua": 0.5, "ra": 0.9 + n / 1e4,
                          "undefined": float("nan"), "missing": None}
        ids = np.arange(50, dtype=np.int64) * (n + 1)
        record.per_example = {"loss": ("forget", ids, ids * 0.25 + writer),
                              "margin": ("test", ids[:7], -ids[:7] / 3.0)}
        record.curve = [(0, {"ua": 0.1, "ra": 0.9}), (n + 1, {"ua": 0.2 + writer, "ra": 0.8})]
    return record


def _tuning(method: str, value: float) -> dict:
    return {"benchmark": "bench", "method": method, "objective": "avg_gap",
            "params": {"lr": value}, "value": value, "trials": 3, "seed": 0,
            "options": {"max_steps": 5}, "history": [{"number": 0, "value": value}]}


def _contents(store: Store) -> dict:
    """Everything a reader gets from the store, tuning times left out."""
    runs = store.runs()
    stored = [(run["id"], metric, store.per_example(run["id"], metric))
              for run in runs for metric in ("loss", "margin")]
    return {
        "runs": json.dumps(runs, sort_keys=True),
        "bench": json.dumps(store.runs("bench"), sort_keys=True),
        "per_example": [(run_id, metric, split, ids.tolist(), values.tolist())
                        for run_id, metric, (split, ids, values) in
                        [item for item in stored if item[2] is not None]],
        "dtypes": {(found[1].dtype.name, found[2].dtype.name)
                   for _, _, found in stored if found is not None},
        "missing": [(run_id, metric) for run_id, metric, found in stored if found is None],
        "curves": store.curves(), "bench_curves": store.curves("bench"),
        "leaderboard": json.dumps(leaderboard(runs), sort_keys=True, default=str),
        "tunings": [{k: v for k, v in row.items() if k != "created_at"}
                    for row in store.tunings()],
        "keys": store.done_keys(),
    }


def test_the_same_records_read_back_as_from_sqlite(postgres_url, tmp_path):
    sqlite, server = Store(tmp_path / "runs.db"), Store(postgres_url)
    for store in (sqlite, server):
        for n in range(12):
            store.write(_record(f"k{n}", n % 3, n, "failed" if n == 7 else "finished"))
        assert store.write(_record("k3", 9, 99)) == 4  # a stored key: a no-op, its id back
        for method, value in (("method1", 0.3), ("method0", 0.1), ("method1", 0.2)):
            store.write_tuning(_tuning(method, value))  # the second method1 replaces the first
    expected, got = _contents(sqlite), _contents(server)
    assert expected["keys"] == {f"k{n}" for n in range(12)}
    assert expected["dtypes"] == {("int64", "float64")} and len(expected["per_example"]) == 22
    assert [t["params"] for t in expected["tunings"]] == [{"lr": 0.1}, {"lr": 0.2}]
    assert json.loads(expected["runs"])[3]["metrics"]["undefined"] is None  # NaN: NULL on both
    for part in expected:
        assert got[part] == expected[part], part
    assert sqlite.forget_failed(["k7", "k8"]) == server.forget_failed(["k7", "k8"]) == 1
    assert _contents(server) == _contents(sqlite)
    assert server.path is None and server.name == postgres_url and server.location == postgres_url


def _write_many(url: str, writer: int, count: int, writers: int, start) -> None:
    """Once every writer is connected (``start``, a barrier), write this writer's ``count``
    records and, at the same moments, the next writer's keys (with this writer's values) and
    a few keys everyone writes."""
    store = Store(url)
    start.wait(timeout=120)
    for n in range(count):
        store.write(_record(f"w{writer}-{n}", writer, n))
        store.write(_record(f"w{(writer + 1) % writers}-{n}", writer, n))
        if n % 4 == 0:
            store.write(_record(f"shared-{n}", writer, n))
    store.close()


@pytest.mark.slow
def test_parallel_writers_leave_each_record_once(postgres_url):
    from sqlalchemy import create_engine, text

    # Four connections create the tables of the empty database at once: one does, none fails.
    opened = threading.Barrier(4)

    def open_store():
        opened.wait(timeout=60)
        Store(postgres_url).close()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: open_store(), range(4)))
    writers, count = 4, 20
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(writers)  # they all import and connect, then write at once
    processes = [context.Process(target=_write_many, args=(postgres_url, w, count, writers, start))
                 for w in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(180)
    assert [p.exitcode for p in processes] == [0] * writers
    distinct = ({f"w{w}-{n}" for w in range(writers) for n in range(count)}
                | {f"shared-{n}" for n in range(0, count, 4)})
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        keys = [key for (key,) in conn.execute(text("SELECT key FROM runs"))]
        assert sorted(keys) == sorted(distinct)  # none lost, none doubled
        for table, per_run in (("metric_values", 5), ("per_example", 2), ("curve", 4)):
            rows = conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()
            assert rows == per_run * len(distinct), table
    engine.dispose()
    # Each run is whole: its metrics, per-example values and curve come from the writer whose
    # record was stored first, never a mix of two writers.
    store = Store(postgres_url)
    for run in store.runs():
        writer, n = run["params"]["writer"], int(run["params"]["lr"] * 10 + 0.5) - 1
        assert run["metrics"]["avg_gap"] == pytest.approx(writer + n / 1000)
        _, ids, values = store.per_example(run["id"], "loss")
        np.testing.assert_array_equal(values, ids * 0.25 + writer)
    with store.engine.connect() as conn:
        for params, value in conn.execute(text(
                "SELECT r.params, c.value FROM curve c JOIN runs r ON r.id = c.run_id "
                "WHERE c.name = 'ua' AND c.step > 0")):
            assert value == pytest.approx(0.2 + json.loads(params)["writer"])
    store.close()


@pytest.mark.slow
def test_show_prints_the_table_from_the_server(postgres_url, capsys):
    store = Store(postgres_url)
    for n in (1, 4, 7):  # benchmark bench; method1, method0, method1; seeds 1, 0, 3
        store.write(_record(f"k{n}", 0, n))
    store.close()
    shown = subprocess.run([*CLI, "show", "--db", postgres_url, "--benchmark", "bench"],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "bench" in shown.stdout and "method0" in shown.stdout and "method1" in shown.stdout
    main(["show", "--db", postgres_url, "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert sorted((row["method"], row["seeds"]) for row in rows) == [  # lr differs: 3 rows
        ("method0", [0]), ("method1", [1]), ("method1", [3])]
    unreachable = postgres_url.rsplit(":", 1)[0] + f":{_free_port()}/db"
    with pytest.raises(SystemExit) as exited:
        main(["show", "--db", unreachable])
    assert exited.value.code == 2
    assert "error: cannot open the store" in capsys.readouterr().err


def _stored(store: Store, metrics: list[str]) -> dict[str, dict]:
    """key -> what a sweep's record says (timings, ids and times left out), with the
    per-example values of ``metrics``."""
    out = {}
    for run in store.runs():
        per_example = {metric: store.per_example(run["id"], metric) for metric in metrics}
        out[run["key"]] = {
            "fields": (run["benchmark"], run["method"], run["params"], run["seed"],
                       run["status"], run["error"], run["steps"]),
            "metrics": {k: v for k, v in run["metrics"].items() if k not in TIMING},
            "per_example": {m: v for m, v in per_example.items() if v is not None}}
    return out


@pytest.mark.slow
def test_a_sweep_stored_on_the_server_equals_it_stored_in_sqlite(postgres_url, tmp_path):
    from unlearnbench.cache import ModelCache
    from unlearnbench.sweep.jobs import plan
    from unlearnbench.sweep.grid import run_grid

    jobs = plan(["digits-random10"], ["ga"], [0, 1], max_steps=5)
    cache = ModelCache(tmp_path / "cache")
    sqlite, server = Store(tmp_path / "runs.db"), Store(postgres_url)
    assert run_grid(jobs, sqlite, cache) == {"skipped": 0, "finished": 2, "failed": 0}
    # the server's copy from a pool of two workers, each reopening the store by its URL
    assert run_grid(jobs, server, cache, workers=2) == {"skipped": 0, "finished": 2, "failed": 0}
    assert run_grid(jobs, server, cache) == {"skipped": 2, "finished": 0, "failed": 0}
    metrics = [m for (m,) in sqlite.db.execute("SELECT DISTINCT metric FROM per_example")]
    expected, got = _stored(sqlite, metrics), _stored(server, metrics)
    assert got.keys() == expected.keys() == {job.key for job in jobs}
    for key, run in got.items():
        want = expected[key]
        assert run["fields"] == want["fields"]
        assert run["metrics"].keys() == want["metrics"].keys() and run["metrics"]
        for name, value in run["metrics"].items():
            assert value == pytest.approx(want["metrics"][name], abs=1e-9, nan_ok=True), name
        assert run["per_example"].keys() == want["per_example"].keys() and run["per_example"]
        for metric, (split, ids, values) in run["per_example"].items():
            assert split == want["per_example"][metric][0]
            np.testing.assert_array_equal(ids, want["per_example"][metric][1])
            np.testing.assert_allclose(values, want["per_example"][metric][2], rtol=0, atol=1e-9)
