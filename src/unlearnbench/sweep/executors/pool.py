"""The local process pool (``unlearnbench run --workers N``): units of a sweep (see
``sweep/executors/``) in N workers, this process and N - 1 spawned ones.

This process is one of the N: a thread of it runs units beside the scheduling, from the first
moment, with everything it needs already imported, while the spawned processes start
("spawn": no forked torch state; each imports torch and the registries, about 4 CPU-s, before
its first unit). Spawned workers have ``threads`` torch threads each (1 by default; the
thread shares this process's setting). Each worker opens its own connection to the store and
writes each record as it completes, in one transaction (a killed worker loses its current
job and leaves no partial record); ``Store.write`` retries when the database is locked. The
main thread only schedules and reports: it reads each worker's pipe and waits on the process
sentinels, so a spawned worker that dies is noticed at once. The others go on with the units
left; the dead worker's unfinished jobs are not retried (a job that kills its process, out of
memory say, would take the next one down too). At the end the jobs neither reported nor
stored are listed in a ``WorkersLost`` error (one line, non-zero exit); running the same
sweep again runs only them. An exception a worker cannot record as a failed job (a benchmark
whose data is missing, say) stops the pool and is raised here, as the serial executor would.
Components must be registered by modules of the package, installed plugins (the registries
import both in each worker) or plugin files the parent loaded (``plugins.load_files``; each
worker imports the same files first): one registered otherwise at run time in the parent is
unknown to the spawned workers. A script that calls ``run_grid(..., workers=N)`` needs the
``if __name__ == "__main__":`` guard, as with any spawning pool (each worker imports the main
module).
"""
from __future__ import annotations

import multiprocessing
import pickle
import signal
import threading
import time
from multiprocessing.connection import wait
from pathlib import Path

from ...errors import UserError
from ...plugins import loaded_files
from ..spawning import spawn_workers
from .base import (
    Group,
    OnDone,
    Schedule,
    Sweep,
    Tally,
    Unit,
    WorkerConfig,
    describe,
)
from .worker import serve


class _Worker:
    """A worker as the parent sees it: the parent's end of its pipe, and the unit it runs."""

    def __init__(self, conn, name: str):
        self.conn, self.name = conn, name
        self.alive = True
        self.unit: Unit | None = None
        self.last_group: Group | None = None

    def send_quietly(self, message) -> None:
        try:
            self.conn.send(message)
        except OSError:  # gone: noticed when it is given a unit, or by its sentinel
            pass

    def give(self, unit: Unit) -> bool:
        try:
            self.conn.send(unit)
        except OSError:  # it died while idle
            self.alive = False
            return False
        self.unit = unit
        return True

    def messages(self) -> list:
        """What it has sent so far; marks it dead at the end of its pipe."""
        received = []
        try:
            while self.conn.poll():
                received.append(self.conn.recv())
        except (EOFError, OSError):
            self.alive = False
        return received


class _ProcessWorker(_Worker):
    """A spawned worker process."""

    def __init__(self, process, conn):
        super().__init__(conn, f"worker process {process.pid}")
        self.process = process

    def waitables(self) -> list:
        return [self.conn, self.process.sentinel]

    def running(self) -> bool:
        return self.process.is_alive()

    def how_it_ended(self) -> str:
        self.process.join(5)
        code = self.process.exitcode
        if code is None:
            return "stopped answering"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with status {code}"

    def stop(self, cleanly: bool) -> None:
        """An idle worker is told to stop; after an error in the parent, a running one is
        terminated (its current job is lost, never half-written)."""
        if self.process.is_alive():
            if cleanly and self.unit is None:
                self.send_quietly(None)
            else:
                self.process.terminate()

    def join(self, timeout: float) -> None:
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class ThreadWorker(_Worker):
    """This process's share of the units: ``worker.serve`` in a thread, talking through a pipe as a
    spawned worker does. It cannot be terminated: after an error here it is cut off (its
    pipe closed), finishes the job it is on (that record is written whole) and ends."""

    def __init__(self, config: WorkerConfig):
        parent_end, child_end = multiprocessing.Pipe(duplex=True)
        super().__init__(parent_end, "the worker thread of the parent process")
        self.thread = threading.Thread(target=serve, args=(child_end, config),
                                       name="pool-worker", daemon=True)
        self.thread.start()

    def waitables(self) -> list:
        return [self.conn]

    def running(self) -> bool:
        return self.thread.is_alive()

    def how_it_ended(self) -> str:
        return "stopped"

    def stop(self, cleanly: bool) -> None:
        if cleanly and self.unit is None:
            self.send_quietly(None)
        else:
            self.conn.close()

    def join(self, timeout: float) -> None:
        if self.unit is None:  # a thread still on a job is not waited for
            self.thread.join(timeout)
        self.conn.close()


class ProcessPool:
    """Units in ``workers`` workers: a thread of this process and ``workers - 1`` spawned
    processes, ``threads`` torch threads each."""

    def __init__(self, workers: int, threads: int = 1):
        if workers < 2:
            raise UserError(f"a process pool needs at least 2 workers, got {workers} "
                            "(--workers 1 runs the jobs in this process)")
        if threads < 1:
            raise UserError(f"--threads must be at least 1, got {threads}")
        self.workers, self.threads = workers, threads
        self._started: list[_ProcessWorker] = []

    def start(self, started: list[tuple] | None = None) -> None:
        """Spawn the workers now, so that they import torch while this process plans the
        sweep, or take those ``spawning.spawn_workers`` started (``unlearnbench run`` does so
        before its own imports); ``run`` uses them, or spawns its own when not called. Those
        a sweep does not need are stopped."""
        if not self._started:
            started = started or spawn_workers(self.workers - 1, self.threads)
            self._started = [_ProcessWorker(process, conn) for process, conn in started]

    def run(self, sweep: Sweep, on_done: OnDone | None = None) -> dict[str, int]:
        if len(sweep.units) > 1:
            self.start()
        started, self._started = self._started, []
        needed = max(0, len(sweep.units) - 1)
        spawned = started[:needed]
        _shut_down(started[needed:], cleanly=False)  # still importing: nothing to lose
        if not sweep.units:
            return {"finished": 0, "failed": 0}
        schedule = Schedule(sweep.units)
        tally = Tally(sweep, schedule, on_done)
        config = WorkerConfig(sweep.store.location, sweep.store.command,
                               str(Path(sweep.cache.root).resolve()), sweep.device,
                               sweep.versions, sweep.commit, self.threads)
        for worker in spawned:
            worker.send_quietly((config, loaded_files()))
        workers = [ThreadWorker(config), *spawned]
        finished_cleanly = False
        try:
            while True:
                for worker in workers:
                    while worker.alive and worker.unit is None:
                        anywhere = not any(w.alive and w.unit for w in workers)
                        unit = schedule.next(worker.last_group, anywhere)
                        if unit is None:
                            break
                        if not worker.give(unit):  # dead: the unit goes back, untouched
                            schedule.queues[unit.group].appendleft(unit)
                            tally.lost(f"{worker.name} died ({worker.how_it_ended()}) "
                                       "while idle")
                live = [w for w in workers if w.alive]
                if not any(w.unit for w in live):
                    break
                ready = set(wait([waitable for w in live for waitable in w.waitables()]))
                for worker in live:
                    if ready.intersection(worker.waitables()):
                        read_messages(worker, schedule, tally)
            finished_cleanly = True
        finally:
            _shut_down(workers, finished_cleanly)
        return tally.result("the worker processes stopped")


def read_messages(worker: _Worker, schedule: Schedule, tally: Tally) -> None:
    """Act on what ``worker`` has sent; notice if it died (its unit's jobs not reported are
    lost)."""
    for message in worker.messages():
        if message[0] == "done":
            tally.done(message[1], message[2])
        elif message[0] == "built":
            schedule.built.add(message[1])
        elif message[0] == "held":  # run_grid waits for it: not lost
            tally.held(worker.unit)
        elif message[0] == "idle":
            worker.last_group, worker.unit = worker.unit.group, None
        elif message[0] == "error":
            raise _unpickle_error(message[1], message[2])
    if worker.alive and worker.running():
        return
    worker.alive = False
    how = f"{worker.name} died ({worker.how_it_ended()})"
    if worker.unit is None:
        tally.lost(f"{how} while idle")
        return
    lost = tally.unreported(worker.unit)
    tally.lost(f"{how} {f'while running {describe(lost[0])}' if lost else 'between jobs'}",
               worker.unit)
    worker.unit = None


def _unpickle_error(payload: bytes, trace: str) -> BaseException:
    try:
        exc = pickle.loads(payload)
    except Exception:  # noqa: BLE001
        exc = RuntimeError("a worker process failed")
    if not isinstance(exc, UserError):
        exc.add_note(f"in a worker process:\n{trace}")
    return exc


def _shut_down(workers: list[_Worker], cleanly: bool) -> None:
    """Idle workers are told to stop; after an error in the parent, running ones are
    stopped (see their ``stop``)."""
    for worker in workers:
        worker.stop(cleanly)
    deadline = time.monotonic() + 30
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
