"""The local process pool (``unlearnbench run --workers N``): units of a sweep (see
``sweep/executors/``) in N spawned processes.

Workers are spawned processes ("spawn": no forked torch state) with ``threads`` torch
threads each (1 by default). Each opens its own connection to the SQLite store and writes
each record as it completes, in one transaction (a killed worker loses its current job and
leaves no partial record); ``Store.write`` retries when the database is locked. The parent
only schedules and reports: it reads each worker's pipe and waits on the process sentinels,
so a worker that dies is noticed at once. The others go on with the units left; the dead
worker's unfinished jobs are not retried (a job that kills its process, out of memory say,
would take the next one down too). At the end the jobs neither reported nor stored are
listed in a ``WorkersLost`` error (one line, non-zero exit); running the same sweep again
runs only them. An exception a worker cannot record as a failed job (a benchmark whose data
is missing, say) stops the pool and is raised in the parent, as the serial executor would.
Components must be registered by modules of the package, installed plugins (the registries
import both in each worker) or plugin files the parent loaded (``plugins.load_files``; each
worker imports the same files first): one registered otherwise at run time in the parent is
unknown to the workers. A
script that calls ``run_grid(..., workers=N)`` needs the ``if __name__ == "__main__":`` guard,
as with any spawning pool (each worker imports the main module).
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from multiprocessing.connection import wait
from pathlib import Path

from ...cache import ModelCache
from ...errors import UserError
from ...plugins import load_files, loaded_files
from ...store import Store
from .base import (
    Group,
    OnDone,
    Schedule,
    Sweep,
    Tally,
    Unit,
    UnitRunner,
    WorkerConfig,
    describe,
)


def _worker_main(conn, config: WorkerConfig, plugin_files: list[str]) -> None:
    """A worker: receive units until None (or the parent is gone), send ("built", group),
    ("done", key, record) as each record is stored, ("held",) for a unit another process
    holds, ("idle",) after each unit, or ("error", pickled exception, traceback) and stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    store = None
    try:
        import torch
        torch.set_num_threads(config.threads)
        load_files(plugin_files)
        store = Store(config.db, command=config.command)
        runner = UnitRunner(store, ModelCache(config.cache_root), config.device, config.versions,
                            config.commit, on_built=lambda group: conn.send(("built", group)))
        while True:
            unit = conn.recv()
            if unit is None:
                break
            if not runner.run(unit, lambda job, record: conn.send(("done", job.key, record))):
                conn.send(("held",))
            conn.send(("idle",))
    except (EOFError, BrokenPipeError):
        pass  # the parent is gone: nobody to report to
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        try:
            payload = pickle.dumps(exc)
            pickle.loads(payload)
        except Exception:  # noqa: BLE001
            payload = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
        try:
            conn.send(("error", payload, traceback.format_exc()))
        except OSError:
            pass
    finally:
        if store is not None:
            store.close()
        conn.close()
        sys.stdout.flush()
        sys.stderr.flush()
        # Everything is written (records committed, cache files renamed into place): skip the
        # interpreter's teardown, 1-2 s with torch loaded, which the parent would wait for.
        os._exit(0)


class _Worker:
    def __init__(self, context, config: WorkerConfig):
        parent_end, child_end = context.Pipe(duplex=True)
        self.process = context.Process(target=_worker_main,
                                       args=(child_end, config, loaded_files()), daemon=True)
        self.process.start()
        child_end.close()  # so that the parent's end sees EOF when the worker dies
        self.conn = parent_end
        self.alive = True
        self.unit: Unit | None = None
        self.last_group: Group | None = None

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


class ProcessPool:
    """Units in ``workers`` spawned processes, ``threads`` torch threads each."""

    def __init__(self, workers: int, threads: int = 1):
        if workers < 2:
            raise UserError(f"a process pool needs at least 2 workers, got {workers} "
                            "(--workers 1 runs the jobs in this process)")
        if threads < 1:
            raise UserError(f"--threads must be at least 1, got {threads}")
        self.workers, self.threads = workers, threads

    def run(self, sweep: Sweep, on_done: OnDone | None = None) -> dict[str, int]:
        if not sweep.units:
            return {"finished": 0, "failed": 0}
        schedule = Schedule(sweep.units)
        tally = Tally(sweep, schedule, on_done)
        config = WorkerConfig(sweep.store.location, sweep.store.command,
                               str(Path(sweep.cache.root).resolve()), sweep.device,
                               sweep.versions, sweep.commit, self.threads)
        context = multiprocessing.get_context("spawn")
        with _thread_limits(self.threads):
            workers = [_Worker(context, config)
                       for _ in range(min(self.workers, len(sweep.units)))]
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
                            tally.lost(f"worker process {worker.process.pid} died "
                                       f"({worker.how_it_ended()}) while idle")
                live = [w for w in workers if w.alive]
                if not any(w.unit for w in live):
                    break
                ready = set(wait([w.conn for w in live] + [w.process.sentinel for w in live]))
                for worker in live:
                    if worker.conn in ready or worker.process.sentinel in ready:
                        _read_messages(worker, schedule, tally)
            finished_cleanly = True
        finally:
            _shut_down(workers, finished_cleanly)
        return tally.result("the worker processes stopped")


def _read_messages(worker: _Worker, schedule: Schedule, tally: Tally) -> None:
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
    if worker.alive and worker.process.is_alive():
        return
    worker.alive = False
    how = f"worker process {worker.process.pid} died ({worker.how_it_ended()})"
    if worker.unit is None:
        tally.lost(f"{how} while idle")
        return
    lost = tally.unreported(worker.unit)
    tally.lost(f"{how} {f'while running {describe(lost[0])}' if lost else 'between jobs'}",
               worker.unit)
    worker.unit = None


@contextmanager
def _thread_limits(threads: int):
    """The environment spawned workers start with: OpenMP and BLAS (numpy, scikit-learn) get
    ``threads`` threads, unless the user set them; otherwise every worker's BLAS takes every
    core and the workers spin against each other (on 2 cores a pool ran a third slower)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    added = [name for name in names if name not in os.environ]
    os.environ.update({name: str(threads) for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


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
    terminated (their current job is lost, never half-written)."""
    for worker in workers:
        if worker.process.is_alive():
            if cleanly and worker.unit is None:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
            else:
                worker.process.terminate()
    deadline = time.monotonic() + 30
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
