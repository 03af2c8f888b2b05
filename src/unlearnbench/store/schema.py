"""The store's tables (SQLAlchemy Core): the same on SQLite and on a server database.

A run is one row of ``runs`` (unique ``key``) with its metric values, per-example values
(int64 ids and float64 values as bytes), learning-curve points and, for a generative benchmark,
a few generated images (uint8 bytes) in child tables deleted with it; ``tuned`` holds one tuning
per (benchmark, method, objective); ``leases`` holds the jobs being run right now, one row per
job, claimed by one process (``sweep/leases.py``). JSON is stored as text. A table added later
(``samples``) is created when an older store is opened."""
from __future__ import annotations

from sqlalchemy import (CheckConstraint, Column, Float, ForeignKey, Integer, LargeBinary,
                        MetaData, Table, Text, UniqueConstraint)

metadata = MetaData()


def _run_id() -> Column:
    return Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False,
                  primary_key=True)


runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", Text, nullable=False, unique=True),
    Column("benchmark", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("params", Text, nullable=False),  # JSON, keys sorted
    Column("seed", Integer, nullable=False),
    Column("request", Integer),
    Column("status", Text, CheckConstraint("status IN ('finished', 'failed')"), nullable=False),
    Column("error", Text),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("unlearn_seconds", Float),
    Column("unlearn_cpu_seconds", Float),
    Column("metrics_seconds", Float),
    Column("steps", Integer),
    Column("versions", Text),  # JSON
    Column("git_commit", Text),
    Column("command", Text),  # the command line that made the run
    Column("settings", Text),  # JSON: what else is in the key (step cap, metrics, curve)
    # The compute budget (a fraction of the retrain's cost, NULL: none) and the cost measured:
    # examples passed forward and backward, and their fraction of the retrain's.
    Column("budget", Float),
    Column("examples", Integer),
    Column("cost_fraction", Float),
)

metric_values = Table(
    "metric_values", metadata,
    _run_id(),
    Column("name", Text, nullable=False, primary_key=True),
    Column("value", Float),
)

per_example = Table(
    "per_example", metadata,
    _run_id(),
    Column("metric", Text, nullable=False, primary_key=True),
    Column("split", Text, nullable=False),
    Column("ids", LargeBinary, nullable=False),  # int64 bytes
    Column("values", LargeBinary, nullable=False),  # float64 bytes
)

curve = Table(
    "curve", metadata,
    _run_id(),
    Column("step", Integer, nullable=False, primary_key=True),
    Column("name", Text, nullable=False, primary_key=True),
    Column("value", Float),
)

# A few generated images of a run (a generative benchmark's), for the report to show.
samples = Table(
    "samples", metadata,
    _run_id(),
    Column("titles", Text, nullable=False),  # JSON: one title per condition shown
    Column("shape", Text, nullable=False),  # JSON: (conditions, images, C, H, W)
    Column("pixels", LargeBinary, nullable=False),  # uint8 bytes
)

tuned = Table(
    "tuned", metadata,
    Column("benchmark", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("objective", Text, nullable=False),
    Column("params", Text),  # JSON; NULL when every trial failed
    Column("value", Float),
    Column("trials", Integer, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("options", Text, nullable=False),  # JSON
    Column("history", Text, nullable=False),  # JSON: every trial
    Column("created_at", Float, nullable=False),
    UniqueConstraint("benchmark", "method", "objective"),
)

leases = Table(
    "leases", metadata,
    Column("key", Text, primary_key=True),  # the job's run key: one holder at a time
    Column("owner", Text, nullable=False),  # "host:pid" of the claiming process
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("claimed_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),  # pushed forward by the owner's heartbeat
)

# Columns added to a table after stores were first written: a store made before them gets
# them when it is opened (ALTER TABLE ... ADD COLUMN), its older rows holding NULL.
ADDED_COLUMNS = {"runs": [("command", "TEXT"), ("settings", "TEXT"), ("budget", "FLOAT"),
                          ("examples", "INTEGER"), ("cost_fraction", "FLOAT")]}
