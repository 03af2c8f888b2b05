"""The results store: one SQLite file (default ``unlearnbench.db``), or a server database
(PostgreSQL...) named by a SQLAlchemy URL such as ``postgresql://user@host:5432/db``.

Each run is written in one transaction when it completes (finished or failed), so a process
killed mid-run leaves no partial record, and the run key is unique, so a rerun never
duplicates a result: a write whose key is already stored is a no-op (the first complete
result wins). Per-example values are stored as arrays (float64 / int64 bytes). The tables are
in ``schema.py``.

Several processes may write at once (``run --workers N``, a cluster), each through its own
connection. SQLite: the file is in WAL mode (readers never wait), a writer takes the write
lock first (``BEGIN IMMEDIATE``) and waits up to ``timeout`` seconds for it (SQLite's busy
timeout); a write that still finds the database locked or busy is rolled back and retried
with exponential backoff. A server database: the same retries after a deadlock or a
serialization failure; two processes writing the same key store it once."""
from __future__ import annotations

import json
import math
import random
import re
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlalchemy
from sqlalchemy import create_engine, delete, insert, inspect, select, text
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from ..errors import UserError
from .lease_rows import LeaseRows
from .schema import (ADDED_COLUMNS, curve, metadata, metric_values, per_example, runs, samples,
                     tuned)

WRITE_ATTEMPTS = 8  # tries of a locked write, waiting 0.05, 0.1, 0.2 ... 2 s (+ jitter) between
RETRIED_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
UNWRITABLE_SQLSTATES = {"25006", "42501"}  # read-only transaction, insufficient privilege
SCHEMA_LOCK = 7_291_004  # PostgreSQL advisory lock held while creating the tables
URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(location: str | Path) -> bool:
    """Whether a ``--db`` value is a database URL (``sqlite:///x.db``, ``postgresql://...``)
    rather than a file path."""
    return bool(URL_PATTERN.match(str(location)))


def sqlite_file(location: str | Path) -> Path | None:
    """The SQLite file a ``--db`` value names (a path or a ``sqlite:///`` URL); None when it
    names a server database."""
    if not is_url(location):
        return Path(location)
    url = _parse_url(str(location))
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise UserError(f"the store {str(location)!r} names no file; give sqlite:///PATH or a path")
    return Path(url.database)


def _parse_url(location: str) -> sqlalchemy.URL:
    try:
        return sqlalchemy.make_url(location)
    except ArgumentError as exc:
        raise UserError(f"{location!r} is not a database URL ({exc}); give a file path or a "
                        "URL such as postgresql://user@host:5432/dbname") from None


def _retryable(exc: Exception) -> bool:
    """A write that may succeed if tried again: SQLite locked or busy (another process
    writing), or a server's deadlock or serialization failure."""
    cause = getattr(exc, "orig", exc)  # SQLAlchemy wraps the driver's exception
    if isinstance(cause, sqlite3.OperationalError):
        message = str(cause).lower()
        return "locked" in message or "busy" in message
    return getattr(cause, "sqlstate", None) in RETRIED_SQLSTATES


def _unwritable(exc: Exception) -> bool:
    """A write refused for good: a SQLite file (or its directory) that cannot be written or
    created, or a server database this user may not write."""
    cause = getattr(exc, "orig", exc)
    if isinstance(cause, sqlite3.OperationalError):
        message = str(cause).lower()
        return "readonly" in message or "unable to open" in message
    return getattr(cause, "sqlstate", None) in UNWRITABLE_SQLSTATES


def _real(value) -> float | None:
    """A metric value as stored: NaN becomes NULL (as SQLite does), on every database."""
    return None if value is None or math.isnan(float(value)) else float(value)


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
    # The job's settings beyond method, hyperparameters and seed (`sweep.jobs.Job.settings`);
    # None: not stated (then stored as NULL, as in stores written before they were recorded)
    settings: dict | None = None
    # A few generated images (``GenerationTask.showcase``): (a title per condition, uint8
    # array (conditions, images, C, H, W)); None: none kept
    samples: tuple[list[str], np.ndarray] | None = None


class Store(LeaseRows):
    def __init__(self, location: str | Path = "unlearnbench.db", command: str | None = None,
                 timeout: float = 60.0):
        """Open (or create) the store at ``location``: a file path or ``sqlite:///PATH`` (SQLite),
        or a server database's URL (``postgresql://user:password@host:port/db``; driver options
        such as ``?connect_timeout=10`` go in the URL). ``command``: the command line recorded
        with every run this Store writes (`unlearnbench run` passes its own). ``timeout``
        (SQLite): how long a write waits for another process's write lock before retrying.

        ``path`` is the SQLite file (None on a server), ``name`` the store as messages show it
        (password hidden), ``location`` what opens the same store in another process, and
        ``db`` the sqlite3 connection underneath (None on a server)."""
        self.command = command
        self.path = sqlite_file(location)
        self.db: sqlite3.Connection | None = None
        if self.path is not None:
            self.url = None
            self.name = str(self.path)
            self.engine = self._sqlite_engine(timeout)
        else:
            self.url = _parse_url(str(location))
            self.name = self.url.render_as_string(hide_password=True)
            self.engine = self._server_engine()
        try:
            self._retrying(self._create_tables)
        except (sqlite3.DatabaseError, DBAPIError) as exc:
            self.close()
            cause = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            if self.path is not None:
                raise UserError(f"{self.name!r} is not an unlearnbench store ({cause})") from None
            raise UserError(f"cannot open the store {self.name!r} ({cause}); check the URL and "
                            "that the database server is running") from None

    @property
    def location(self) -> str:
        """What opens this store from another process: the file's absolute path or the URL."""
        if self.path is not None:
            return str(self.path.resolve())
        return self.url.render_as_string(hide_password=False)

    def _sqlite_engine(self, timeout: float) -> sqlalchemy.Engine:
        if self.path.exists() and self.path.is_dir():
            raise UserError(f"store path {self.name!r} is a directory; give a file name")
        if not self.path.parent.exists():
            raise UserError(f"store directory {str(self.path.parent)!r} does not exist")
        # Autocommit mode: each read stands alone, and a write's transaction is begun
        # explicitly (BEGIN IMMEDIATE, in _transaction) rather than by the sqlite3 module.
        try:
            self.db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                      check_same_thread=False)
        except sqlite3.OperationalError as exc:
            raise self._cannot_write(exc) from None
        try:
            self.db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._retrying(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
            self.db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise UserError(f"{self.name!r} is not an unlearnbench store ({exc})") from None
        return create_engine("sqlite://", creator=lambda: self.db, poolclass=StaticPool)

    def _server_engine(self) -> sqlalchemy.Engine:
        url = self.url
        if url.drivername == "postgresql":  # psycopg 3 (the postgres extra), on SQLAlchemy 2.0 too
            url = url.set(drivername="postgresql+psycopg")
        try:
            return create_engine(url, pool_pre_ping=True)
        except (ImportError, NoSuchModuleError) as exc:
            raise UserError(f"no database driver for {self.name!r} ({exc}); for PostgreSQL "
                            "install it with pip install 'unlearnbench[postgres]'") from None

    @contextmanager
    def _transaction(self):
        """One write transaction, committed at the end and rolled back on an error. On SQLite
        it takes the write lock first (waiting up to the busy timeout)."""
        with self.engine.begin() as conn:
            if self.db is not None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    def _create_tables(self) -> None:
        """Create the missing tables and added columns (nothing to do, and no lock taken, on
        a store that has them all)."""
        with self.engine.connect() as conn:
            if not self._missing(conn):
                return
        with self._transaction() as conn:
            if conn.dialect.name == "postgresql":  # one process at a time creates the tables
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
            metadata.create_all(conn)
            for table, columns in ADDED_COLUMNS.items():
                present = {column["name"] for column in inspect(conn).get_columns(table)}
                for name, sql_type in columns:
                    if name not in present:
                        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")

    @staticmethod
    def _missing(conn) -> bool:
        inspector = inspect(conn)
        tables = set(inspector.get_table_names())
        if not set(metadata.tables) <= tables:
            return True
        return any(name not in {column["name"] for column in inspector.get_columns(table)}
                   for table, columns in ADDED_COLUMNS.items() for name, _ in columns)

    def _retrying(self, action):
        """``action()``, again after a pause while the database is locked or busy (another
        process writing) or after a deadlock; a failed try is rolled back first."""
        delay = 0.05
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return action()
            except (sqlite3.OperationalError, DBAPIError) as exc:
                if self.db is not None and self.db.in_transaction:
                    self.db.rollback()
                if _unwritable(exc):
                    raise self._cannot_write(exc) from None
                if not _retryable(exc) or attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(2 * delay, 2.0)

    def _cannot_write(self, exc: Exception) -> UserError:
        cause = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        what = ("that the file and its directory can be written" if self.path is not None
                else "that this database user may write to it")
        return UserError(f"cannot write to the store {self.name!r} ({cause}); check {what}, "
                         "or pass another --db")

    def close(self) -> None:
        self.engine.dispose()
        if self.db is not None:
            self.db.close()

    def done_keys(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.scalars(select(runs.c.key)))

    def has(self, key: str) -> bool:
        return self._run_id(key) is not None

    def _run_id(self, key: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.scalar(select(runs.c.id).where(runs.c.key == key))

    def forget_failed(self, keys: list[str]) -> int:
        """Delete the failed runs among ``keys`` (so they run again). Returns how many."""
        def forget():
            deleted = 0
            with self._transaction() as conn:
                for start in range(0, len(keys), 500):  # below every database's parameter cap
                    deleted += conn.execute(delete(runs).where(
                        runs.c.key.in_(keys[start:start + 500]),
                        runs.c.status == "failed")).rowcount
            return deleted
        return self._retrying(forget)

    def write(self, record: RunRecord) -> int:
        """Write a run with its metrics and per-example values atomically. A key already
        present is left as is (the first complete result wins), so a write retried after a
        lock, or the same job finished by two processes, stores it once. Returns the row id."""
        try:
            return self._retrying(lambda: self._write(record))
        except IntegrityError:
            stored = self._run_id(record.key)
            if stored is None:  # some other constraint failed
                raise
            return stored

    def _write(self, record: RunRecord) -> int:
        t = record.timings
        settings = None if record.settings is None else json.dumps(record.settings, sort_keys=True)
        with self._transaction() as conn:
            run_id = conn.execute(insert(runs).values(
                key=record.key, benchmark=record.benchmark, method=record.method,
                params=json.dumps(record.params, sort_keys=True), seed=record.seed,
                request=record.request, status=record.status, error=record.error,
                started_at=record.started_at, finished_at=record.finished_at or time.time(),
                unlearn_seconds=t.get("unlearn_seconds"),
                unlearn_cpu_seconds=t.get("unlearn_cpu_seconds"),
                metrics_seconds=t.get("metrics_seconds"), steps=t.get("steps"),
                budget=(record.settings or {}).get("budget"), examples=t.get("examples"),
                cost_fraction=t.get("cost_fraction"),
                versions=json.dumps(record.versions), git_commit=record.git_commit,
                command=self.command, settings=settings)).inserted_primary_key[0]
            values = [{"run_id": run_id, "name": name, "value": _real(value)}
                      for name, value in record.metrics.items()]
            examples = [{"run_id": run_id, "metric": metric, "split": split,
                         "ids": np.asarray(ids, np.int64).tobytes(),
                         "values": np.asarray(scores, np.float64).tobytes()}
                        for metric, (split, ids, scores) in record.per_example.items()]
            points = [{"run_id": run_id, "step": step, "name": name, "value": _real(value)}
                      for step, point in record.curve for name, value in point.items()]
            shown = [] if record.samples is None else [
                {"run_id": run_id, "titles": json.dumps(record.samples[0]),
                 "shape": json.dumps(record.samples[1].shape),
                 "pixels": np.ascontiguousarray(record.samples[1], np.uint8).tobytes()}]
            for table, rows in ((metric_values, values), (per_example, examples),
                                (curve, points), (samples, shown)):
                if rows:
                    conn.execute(insert(table), rows)
        return run_id

    def runs(self, benchmark: str | None = None) -> list[dict]:
        """Every run as a dict, with its metric values under "metrics"."""
        query = select(runs).order_by(runs.c.id)
        metric_query = select(metric_values.c.run_id, metric_values.c.name, metric_values.c.value)
        if benchmark:
            query = query.where(runs.c.benchmark == benchmark)
            metric_query = metric_query.join(runs).where(runs.c.benchmark == benchmark)
        with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
            values: dict[int, dict] = {}
            for run_id, name, value in conn.execute(metric_query):
                values.setdefault(run_id, {})[name] = value
        for row in rows:
            row["params"] = json.loads(row["params"])
            row["versions"] = json.loads(row["versions"] or "{}")
            row["settings"] = None if row["settings"] is None else json.loads(row["settings"])
            row["metrics"] = values.get(row["id"], {})
        return rows

    def curves(self, benchmark: str | None = None) -> list[dict]:
        """Every learning-curve point: benchmark, method, seed, status, step, metric, value."""
        query = select(runs.c.id, runs.c.benchmark, runs.c.method, runs.c.seed, runs.c.status,
                       curve.c.step, curve.c.name, curve.c.value).join_from(curve, runs)
        if benchmark:
            query = query.where(runs.c.benchmark == benchmark)
        with self.engine.connect() as conn:
            # sorted here: a server's collation may order names otherwise than SQLite
            points = sorted(conn.execute(query), key=lambda row: (row[0], row[5], row[6]))
        columns = ("benchmark", "method", "seed", "status", "step", "metric", "value")
        return [dict(zip(columns, row[1:])) for row in points]

    def write_tuning(self, tuning: dict) -> None:
        """Store a method's tuning (``tune.tune``): the chosen hyperparameters (None when every
        trial failed), their objective value, the trial budget, seed, options and every trial
        (``history``). It replaces an earlier tuning of the same benchmark, method and
        objective, in one transaction."""
        try:
            self._retrying(lambda: self._write_tuning(tuning))
        except IntegrityError:  # another process stored this tuning meanwhile: replace it
            self._retrying(lambda: self._write_tuning(tuning))

    def _write_tuning(self, tuning: dict) -> None:
        same = ((tuned.c.benchmark == tuning["benchmark"]) & (tuned.c.method == tuning["method"])
                & (tuned.c.objective == tuning["objective"]))
        with self._transaction() as conn:
            conn.execute(delete(tuned).where(same))
            conn.execute(insert(tuned).values(
                benchmark=tuning["benchmark"], method=tuning["method"],
                objective=tuning["objective"],
                params=None if tuning["params"] is None else json.dumps(tuning["params"],
                                                                        sort_keys=True),
                value=tuning["value"], trials=tuning["trials"], seed=tuning["seed"],
                options=json.dumps(tuning["options"], sort_keys=True),
                history=json.dumps(tuning["history"]), created_at=time.time()))

    def tunings(self, benchmark: str | None = None) -> list[dict]:
        """Every stored tuning (of ``benchmark``), JSON columns decoded."""
        query = select(tuned)
        if benchmark:
            query = query.where(tuned.c.benchmark == benchmark)
        with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            for column in ("params", "options", "history"):
                row[column] = None if row[column] is None else json.loads(row[column])
        return sorted(rows, key=lambda row: (row["benchmark"], row["method"], row["objective"]))

    def per_example(self, run_id: int, metric: str) -> tuple[str, np.ndarray, np.ndarray] | None:
        query = select(per_example.c.split, per_example.c.ids, per_example.c["values"]).where(
            (per_example.c.run_id == run_id) & (per_example.c.metric == metric))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return row[0], np.frombuffer(row[1], np.int64), np.frombuffer(row[2], np.float64)

    def samples(self, run_id: int) -> tuple[list[str], np.ndarray] | None:
        """The generated images kept with a run (see ``RunRecord.samples``), or None."""
        query = select(samples.c.titles, samples.c.shape, samples.c.pixels).where(
            samples.c.run_id == run_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return json.loads(row[0]), np.frombuffer(row[2], np.uint8).reshape(json.loads(row[1]))
