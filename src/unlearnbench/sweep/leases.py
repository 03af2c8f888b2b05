"""Job leases: several processes run one grid on one store (the same `unlearnbench run` in N
terminals, or on N machines against PostgreSQL), and each job runs once.

Before a unit of work starts (``executors.UnitRunner``), its process claims every job of it
with a row in the store's ``leases`` table: key, owner ("host:pid"), claimed at, expires at.
The claim is an insert on the unique key, so of processes claiming at once one wins. While
it holds leases, a process renews them from a heartbeat thread every ``LEASE_SECONDS / 4``;
it deletes a job's lease once the job's record (finished or failed) is written, or when the
job stops without one (an exception, Ctrl-C). A lease is held by a live process, and then
respected, unless its holder has stopped: its lease was not renewed in time (a crashed
process or machine), or it ran on this host and its process is gone (then it is taken over
at once). Taking a lease over is an update conditional on the row read, so one process wins
there too. A process that finds a job held passes over it; ``sweep.grid.run_grid`` waits at the
end for the jobs passed over, until they are stored or their holder has stopped.

Clocks: on PostgreSQL expiry is judged by the server's clock, so machines need not agree;
on SQLite by this machine's, which every process sharing the file reads."""
from __future__ import annotations

import os
import socket
import threading
import time

from ..cache import process_alive
from ..store import Store

LEASE_SECONDS = 120.0  # a lease not renewed for this long is taken over (4 missed heartbeats)
POLL_SECONDS = 2.0  # how often a process waiting for others' jobs looks at the store


def holder_stopped(lease: dict) -> bool:
    """Whether the process holding ``lease`` (as ``Store.lease`` reads it) has stopped."""
    return lease["expired"] or (lease["host"] == socket.gethostname()
                                and not process_alive(lease["pid"]))


def held_elsewhere(store: Store, key: str) -> bool:
    """Whether a live process holds a lease on ``key``."""
    lease = store.lease(key)
    return lease is not None and not holder_stopped(lease)


def wait_for_others(store: Store, keys: set[str]) -> set[str]:
    """Wait until every job of ``keys`` (jobs other processes held) is stored, or one of them
    is held no more though not stored (its holder stopped). Returns the keys not stored."""
    while True:
        # leases first: a holder writes the record, then releases the lease
        free = {key for key in keys if not held_elsewhere(store, key)}
        keys = keys - store.done_keys()
        if not keys or keys & free:
            return keys
        time.sleep(POLL_SECONDS)


class Leases:
    """The leases this process holds on the store at ``location``, through a connection of
    their own (shared with the heartbeat thread, one call at a time)."""

    def __init__(self, location: str, seconds: float = LEASE_SECONDS):
        self.store = Store(location)
        self.seconds = seconds
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.owner = f"{self.host}:{self.pid}"
        self.held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def claim(self, keys: list[str]) -> bool:
        """Claim every key, in order, or none: False (and nothing held) when a live process
        holds one of them. Processes claim a unit's keys in the same order, so that of two
        claiming one unit at once one gets it whole."""
        claimed = []
        for key in keys:
            if not self._claim(key):
                self.release(claimed)
                return False
            claimed.append(key)
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._beat, name="lease-heartbeat",
                                               daemon=True)
            self._heartbeat.start()
        return True

    def _claim(self, key: str) -> bool:
        with self._lock:
            while not self.store.insert_lease(key, self.owner, self.host, self.pid,
                                              self.seconds):
                lease = self.store.lease(key)
                if lease is None:  # released meanwhile: insert again
                    continue
                # our own owner name on a lease we do not hold: a dead process of this host
                # had our pid
                if lease["owner"] != self.owner and not holder_stopped(lease):
                    return False
                if self.store.take_over_lease(lease, self.owner, self.host, self.pid,
                                              self.seconds):
                    break
            self.held.add(key)
        return True

    def release(self, keys: list[str]) -> None:
        """Delete our leases on ``keys`` (those we hold)."""
        with self._lock:
            mine = [key for key in keys if key in self.held]
            if mine:
                self.store.delete_leases(mine, self.owner)
                self.held.difference_update(mine)

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 4):
            with self._lock:
                if not self.held:
                    continue
                try:
                    self.store.renew_leases(sorted(self.held), self.owner, self.seconds)
                except Exception:  # noqa: BLE001 - a database hiccup: the next beat tries again
                    pass

    def close(self) -> None:
        """Stop the heartbeat, release what is still held and close the connection."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        self.release(list(self.held))
        self.store.close()
