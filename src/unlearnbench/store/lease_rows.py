"""The rows of the ``leases`` table: which process is running which job. ``sweep/leases.py``
decides when a lease may be taken; these methods of the ``Store`` only read and write the rows,
each write one retried transaction."""
from __future__ import annotations

import time

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from .schema import leases


class LeaseRows:
    """The lease methods of ``Store`` (a mixin: it uses the store's engine, transactions and
    retries)."""

    @staticmethod
    def _clock(conn) -> float:
        """Now, in seconds since the epoch, by the server's clock on PostgreSQL (the machines
        of a cluster then agree on when a lease expires), else by this machine's (a SQLite
        file is shared by the processes of one machine)."""
        if conn.dialect.name == "postgresql":
            return float(conn.scalar(text("SELECT EXTRACT(EPOCH FROM clock_timestamp())")))
        return time.time()

    def insert_lease(self, key: str, owner: str, host: str, pid: int, seconds: float) -> bool:
        """Lease ``key`` to ``owner`` for ``seconds``; False when someone holds a lease on it
        (the insert fails on the unique key, so of processes claiming at once one wins)."""
        def claim():
            with self._transaction() as conn:
                now = self._clock(conn)
                conn.execute(insert(leases).values(key=key, owner=owner, host=host, pid=pid,
                                                   claimed_at=now, expires_at=now + seconds))
        try:
            self._retrying(claim)
        except IntegrityError:
            return False
        return True

    def lease(self, key: str) -> dict | None:
        """The lease on ``key`` (owner, host, pid, claimed_at, expires_at, and "expired":
        whether its owner has stopped renewing it), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(leases).where(leases.c.key == key)).first()
            if row is None:
                return None
            return {**row._mapping, "expired": self._clock(conn) > row.expires_at}

    def take_over_lease(self, held: dict, owner: str, host: str, pid: int,
                        seconds: float) -> bool:
        """Make the lease ``held`` (as ``lease`` read it) ``owner``'s for ``seconds``, only if
        it is still as read: False when it was renewed, released or taken meanwhile."""
        def take():
            with self._transaction() as conn:
                now = self._clock(conn)
                return conn.execute(update(leases).where(
                    (leases.c.key == held["key"]) & (leases.c.owner == held["owner"])
                    & (leases.c.expires_at == held["expires_at"])).values(
                    owner=owner, host=host, pid=pid, claimed_at=now,
                    expires_at=now + seconds)).rowcount == 1
        return self._retrying(take)

    def renew_leases(self, keys: list[str], owner: str, seconds: float) -> None:
        """Push the expiry of ``owner``'s leases on ``keys`` to ``seconds`` from now."""
        def renew():
            with self._transaction() as conn:
                now = self._clock(conn)
                conn.execute(update(leases).where(leases.c.key.in_(keys),
                                                  leases.c.owner == owner)
                             .values(expires_at=now + seconds))
        self._retrying(renew)

    def delete_leases(self, keys: list[str], owner: str) -> None:
        """Release ``owner``'s leases on ``keys`` (a lease taken over by another is kept)."""
        def release():
            with self._transaction() as conn:
                conn.execute(delete(leases).where(leases.c.key.in_(keys),
                                                  leases.c.owner == owner))
        self._retrying(release)
