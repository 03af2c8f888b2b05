"""The results store: runs, their metric values, per-example scores, curves, tunings and job
leases, in SQLite or PostgreSQL (``database.py``; the tables in ``schema.py``; the lease rows in
``lease_rows.py``)."""
from .database import RunRecord, Store, is_url, sqlite_file

__all__ = ["RunRecord", "Store", "is_url", "sqlite_file"]
