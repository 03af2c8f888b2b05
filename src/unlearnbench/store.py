"""The results store: one SQLite file (default ``unlearnbench.db``).

Each run is written in one transaction when it completes (finished or failed), so a process
killed mid-run leaves no partial record, and the run key is unique, so a rerun never
duplicates a result. Per-example values are stored as arrays (float64 / int64 bytes).

Several processes may write at once (``run --workers N``): the file is in WAL mode (readers
never wait), a writer waits up to ``timeout`` seconds for the write lock (SQLite's busy
timeout), and a write that still finds the database locked or busy is rolled back and
retried with exponential backoff. Retrying is safe: a key already stored is left as is."""
from __future__ import annotations

import json
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    benchmark TEXT NOT NULL,
    method TEXT NOT NULL,
    params TEXT NOT NULL,
    seed INTEGER NOT NULL,
    request INTEGER,
    status TEXT NOT NULL CHECK (status IN ('finished', 'failed')),
    error TEXT,
    started_at REAL,
    finished_at REAL,
    unlearn_seconds REAL,
    unlearn_cpu_seconds REAL,
    metrics_seconds REAL,
    steps INTEGER,
    versions TEXT,
    git_commit TEXT
);
CREATE TABLE IF NOT EXISTS metric_values (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS per_example (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    split TEXT NOT NULL,
    ids BLOB NOT NULL,
    "values" BLOB NOT NULL,
    PRIMARY KEY (run_id, metric)
);
CREATE TABLE IF NOT EXISTS curve (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, step, name)
);
CREATE TABLE IF NOT EXISTS tuned (
    benchmark TEXT NOT NULL,
    method TEXT NOT NULL,
    objective TEXT NOT NULL,
    params TEXT,
    value REAL,
    trials INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    options TEXT NOT NULL,
    history TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (benchmark, method, objective)
);
"""
# Columns added to a table after stores were first written: a store made before them gets
# them when it is opened (ALTER TABLE ... ADD COLUMN), its older rows holding NULL.
ADDED_COLUMNS = {"runs": [("command", "TEXT")]}  # the command line that made the run
WRITE_ATTEMPTS = 8  # tries of a locked write, waiting 0.05, 0.1, 0.2 ... 2 s (+ jitter) between


def _locked(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


@dataclass
class RunRecord:
    key: str
    benchmark: str
    method: str
    params: dict
    seed: int
    status: str
    error: str | None = None
    request: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    timings: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    git_commit: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    # metric -> (split, ids, values)
    per_example: dict[str, tuple[str, np.ndarray, np.ndarray]] = field(default_factory=dict)
    # Learning curve: (optimizer step, {metric: value}), step 0 being the model before unlearning
    curve: list[tuple[int, dict[str, float]]] = field(default_factory=list)


class Store:
    def __init__(self, path: str | Path = "unlearnbench.db", command: str | None = None,
                 timeout: float = 60.0):
        """Open (or create) the store at ``path``. ``command``: the command line recorded
        with every run this Store writes (`unlearnbench run` passes its own). ``timeout``:
        how long a write waits for another process's write lock before retrying."""
        self.path = Path(path)
        self.command = command
        if self.path.exists() and self.path.is_dir():
            raise UserError(f"store path {str(self.path)!r} is a directory; give a file name")
        if not self.path.parent.exists():
            raise UserError(f"store directory {str(self.path.parent)!r} does not exist")
        try:
            self.db = sqlite3.connect(self.path, timeout=timeout)
            self.db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._retrying(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
            self.db.execute("PRAGMA foreign_keys=ON")
            self._retrying(lambda: self.db.executescript(SCHEMA))
            self._retrying(self._add_columns)
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{str(self.path)!r} is not an unlearnbench store ({exc})") from None

    def _add_columns(self) -> None:
        for table, columns in ADDED_COLUMNS.items():
            present = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            for name, sql_type in columns:
                if name in present:
                    continue
                try:
                    with self.db:
                        self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):  # another process added it first
                        raise

    def _retrying(self, action):
        """``action()``, again after a pause while the database is locked or busy (another
        process writing); whatever a failed try had begun is rolled back first."""
        delay = 0.05
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if self.db.in_transaction:
                    self.db.rollback()
                if not _locked(exc) or attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(2 * delay, 2.0)

    def close(self) -> None:
        self.db.close()

    def done_keys(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT key FROM runs")}

    def has(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM runs WHERE key = ?", (key,)).fetchone() is not None

    def forget_failed(self, keys: list[str]) -> int:
        """Delete the failed runs among ``keys`` (so they run again). Returns how many."""
        def delete():
            with self.db:
                return self.db.executemany("DELETE FROM runs WHERE key = ? AND status = 'failed'",
                                           [(key,) for key in keys]).rowcount
        return self._retrying(delete)

    def write(self, record: RunRecord) -> int:
        """Write a run with its metrics and per-example values atomically. A key already
        present is left as is (the first complete result wins), so a write retried after a
        lock, or the same job finished by two processes, stores it once. Returns the row id."""
        return self._retrying(lambda: self._write(record))

    def _write(self, record: RunRecord) -> int:
        t = record.timings
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")  # take the write lock now (waits busy_timeout)
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO runs (key, benchmark, method, params, seed, request, status,"
                " error, started_at, finished_at, unlearn_seconds, unlearn_cpu_seconds,"
                " metrics_seconds, steps, versions, git_commit, command)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (record.key, record.benchmark, record.method,
                 json.dumps(record.params, sort_keys=True), record.seed, record.request,
                 record.status,
                 record.error, record.started_at, record.finished_at or time.time(),
                 t.get("unlearn_seconds"), t.get("unlearn_cpu_seconds"),
                 t.get("metrics_seconds"), t.get("steps"), json.dumps(record.versions),
                 record.git_commit, self.command))
            if cursor.rowcount == 0:
                return self.db.execute("SELECT id FROM runs WHERE key = ?",
                                       (record.key,)).fetchone()[0]
            run_id = cursor.lastrowid
            self.db.executemany(
                "INSERT INTO metric_values (run_id, name, value) VALUES (?,?,?)",
                [(run_id, name, None if value is None else float(value))
                 for name, value in record.metrics.items()])
            self.db.executemany(
                'INSERT INTO per_example (run_id, metric, split, ids, "values") VALUES (?,?,?,?,?)',
                [(run_id, metric, split, np.asarray(ids, np.int64).tobytes(),
                  np.asarray(values, np.float64).tobytes())
                 for metric, (split, ids, values) in record.per_example.items()])
            self.db.executemany(
                "INSERT INTO curve (run_id, step, name, value) VALUES (?,?,?,?)",
                [(run_id, step, name, float(value))
                 for step, values in record.curve for name, value in values.items()])
        return run_id

    def runs(self, benchmark: str | None = None) -> list[dict]:
        """Every run as a dict, with its metric values under "metrics"."""
        query = "SELECT * FROM runs" + (" WHERE benchmark = ?" if benchmark else "") + " ORDER BY id"
        self.db.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in self.db.execute(query, (benchmark,) if benchmark else ())]
        finally:
            self.db.row_factory = None
        values: dict[int, dict] = {}
        for run_id, name, value in self.db.execute("SELECT run_id, name, value FROM metric_values"):
            values.setdefault(run_id, {})[name] = value
        for row in rows:
            row["params"] = json.loads(row["params"])
            row["versions"] = json.loads(row["versions"] or "{}")
            row["metrics"] = values.get(row["id"], {})
        return rows

    def curves(self, benchmark: str | None = None) -> list[dict]:
        """Every learning-curve point: benchmark, method, seed, status, step, metric, value."""
        query = ("SELECT r.benchmark, r.method, r.seed, r.status, c.step, c.name, c.value "
                 "FROM curve c JOIN runs r ON r.id = c.run_id"
                 + (" WHERE r.benchmark = ?" if benchmark else "")
                 + " ORDER BY r.id, c.step, c.name")
        columns = ("benchmark", "method", "seed", "status", "step", "metric", "value")
        return [dict(zip(columns, row))
                for row in self.db.execute(query, (benchmark,) if benchmark else ())]

    def write_tuning(self, tuning: dict) -> None:
        """Store a method's tuning (``tune.tune``): the chosen hyperparameters (None when every
        trial failed), their objective value, the trial budget, seed, options and every trial
        (``history``). It replaces an earlier tuning of the same benchmark, method and
        objective, in one transaction."""
        self._retrying(lambda: self._write_tuning(tuning))

    def _write_tuning(self, tuning: dict) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO tuned (benchmark, method, objective, params, value, "
                "trials, seed, options, history, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (tuning["benchmark"], tuning["method"], tuning["objective"],
                 None if tuning["params"] is None else json.dumps(tuning["params"], sort_keys=True),
                 tuning["value"], tuning["trials"], tuning["seed"],
                 json.dumps(tuning["options"], sort_keys=True), json.dumps(tuning["history"]),
                 time.time()))

    def tunings(self, benchmark: str | None = None) -> list[dict]:
        """Every stored tuning (of ``benchmark``), JSON columns decoded."""
        query = ("SELECT * FROM tuned" + (" WHERE benchmark = ?" if benchmark else "")
                 + " ORDER BY benchmark, method, objective")
        self.db.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in self.db.execute(query, (benchmark,) if benchmark else ())]
        finally:
            self.db.row_factory = None
        for row in rows:
            for column in ("params", "options", "history"):
                row[column] = None if row[column] is None else json.loads(row[column])
        return rows

    def per_example(self, run_id: int, metric: str) -> tuple[str, np.ndarray, np.ndarray] | None:
        row = self.db.execute('SELECT split, ids, "values" FROM per_example WHERE run_id = ? AND '
                              "metric = ?", (run_id, metric)).fetchone()
        if row is None:
            return None
        return row[0], np.frombuffer(row[1], np.int64), np.frombuffer(row[2], np.float64)
