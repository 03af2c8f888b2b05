"""Executors: where a sweep's jobs run. ``run_grid`` plans, skips what the store holds, cuts
the rest into units and hands them to one executor; every executor has one method,
``run(sweep, on_done) -> {"finished": n, "failed": m}``.

- ``SerialExecutor`` (the default): every unit in this process, in grid order.
- ``ProcessPool(workers, threads)`` (``unlearnbench run --workers N``): N spawned processes.
- ``RayExecutor(address, workers, threads)`` (``--executor ray``): Ray tasks, see below.

A **unit** is one job, or one chain of sequential requests (a method's stages stay in one
process: each starts from the previous stage's model). Units keep the grid's order, grouped
by (benchmark, seed), the jobs that share one scenario. A ``UnitRunner`` runs units in one
process and keeps the scenario (and its inference caches) of the group it ran last, so a
group's scenario is built once per process that works on it.

The pool schedules units, not whole groups, so that one seed with many methods still keeps
every worker busy. A free worker takes, in this order: the next unit of the group it worked
on last (its scenario is in memory); the first unit of a group nobody has started (a fresh
scenario: with a cold model cache each worker trains different models); a unit of a group
whose scenario another worker has already built (the models are then in the on-disk cache,
so building it again is loading it), the group with the most units left first. A worker
never starts a group another worker is still building while anything else is running, so a
cold cache is not trained twice over (the cache is content-addressed and written under
temporary names, so it would be safe, only wasteful).

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
Benchmarks and methods must be registered by modules of the package (the registries import
them in each worker): one registered at run time in the parent is unknown to the workers. A
script that calls ``run_grid(..., workers=N)`` needs the ``if __name__ == "__main__":`` guard,
as with any spawning pool (each worker imports the main module).

``RayExecutor`` (``executors_ray.py``, ``run --executor ray [--address ...]``) is one more
class with the same ``run``: one Ray task per unit, with its resource request, writing to a
store every node reaches, the model cache on a shared directory, ``ray.wait`` in place of
the pipes and sentinels, the same scheduling order and the same ``WorkersLost`` line when
tasks are lost. ``make_executor`` turns the command line's choice into one of the three.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Protocol

from .cache import ModelCache
from .errors import UserError
from .runner import Job, _run_sequences, run_job, scenario_cache
from .scenario import build_scenario, get_spec
from .store import RunRecord, Store

OnDone = Callable[[Job, RunRecord], None]
Group = tuple[str, int]  # (benchmark, seed): the jobs that share one scenario


class WorkersLost(UserError):
    """Worker processes died and some jobs were neither run nor stored."""


@dataclass(frozen=True)
class Unit:
    """The smallest piece of work an executor hands out."""
    group: Group
    jobs: tuple[Job, ...]        # to run, in order
    chain: tuple[Job, ...] = ()  # a chain of sequential requests: every stage, stored ones too


@dataclass
class Sweep:
    """What an executor runs: the units in grid order, and where results and models go."""
    units: list[Unit]
    store: Store
    cache: ModelCache
    device: str
    versions: dict
    commit: str | None


class Executor(Protocol):
    def run(self, sweep: Sweep, on_done: OnDone | None = None) -> dict[str, int]: ...


def make_units(jobs: list[Job], pending: list[Job]) -> list[Unit]:
    """Cut the pending jobs into units, in grid order: one per job, one per chain of
    sequential requests (the chain holds its stages already stored: the chain needs their
    models, recomputed deterministically, but does not write them again)."""
    def chain_key(job: Job):
        return (job.benchmark, job.seed, job.method, json.dumps(job.params, sort_keys=True),
                job.max_steps)

    chains: dict[tuple, list[Job]] = {}
    for job in jobs:
        if job.request is not None:
            chains.setdefault(chain_key(job), []).append(job)
    units, seen, pending_keys = [], set(), {j.key for j in pending}
    for job in pending:
        group = (job.benchmark, job.seed)
        if job.request is None:
            units.append(Unit(group, (job,)))
            continue
        key = chain_key(job)
        if key in seen:
            continue
        seen.add(key)
        chain = tuple(sorted(chains[key], key=lambda j: j.request))
        units.append(Unit(group, tuple(j for j in chain if j.key in pending_keys), chain))
    order = {group: i for i, group in enumerate(dict.fromkeys(unit.group for unit in units))}
    return sorted(units, key=lambda unit: order[unit.group])  # stable: grid order within


class UnitRunner:
    """Runs units in one process, keeping the scenario and inference caches of the group it
    ran last. ``on_built(group)`` is called when a scenario has been built."""

    def __init__(self, store: Store, cache: ModelCache, device: str, versions: dict,
                 commit: str | None, on_built: Callable[[Group], None] | None = None):
        # The first optimizer step or torch.func call of a process imports torch._dynamo
        # (2-7 s); do it now so that it is not charged to whichever method runs first.
        import torch._dynamo  # noqa: F401

        self.store, self.cache, self.device = store, cache, device
        self.versions, self.commit, self.on_built = versions, commit, on_built
        self._group: Group | None = None
        self._scenario = None
        self._shared = None   # the scenario's inference cache
        self._stage_caches: dict = {}  # sequential requests: one per stage, shared by chains

    def scenario(self, group: Group):
        if group != self._group:
            self._group = self._scenario = self._shared = None  # free the last one first
            self._stage_caches = {}
            self._scenario = build_scenario(get_spec(group[0]), group[1], self.cache, self.device)
            self._group = group
            if self.on_built:
                self.on_built(group)
        return self._scenario

    def run(self, unit: Unit, on_done: OnDone) -> None:
        scenario = self.scenario(unit.group)
        if isinstance(scenario, list):
            stored = {j.key for j in unit.chain} - {j.key for j in unit.jobs}
            _run_sequences(list(unit.jobs), scenario, list(unit.chain), self.store, stored,
                           self.versions, self.commit, on_done, self._stage_caches)
            return
        if self._shared is None:
            self._shared = scenario_cache(scenario, self.cache)
        for job in unit.jobs:
            record, _ = run_job(job, scenario, self.versions, self.commit, cache=self._shared)
            self.store.write(record)
            on_done(job, record)


class SerialExecutor:
    """Every unit in this process, in grid order (a scenario is built once per group)."""

    def run(self, sweep: Sweep, on_done: OnDone | None = None) -> dict[str, int]:
        counts = {"finished": 0, "failed": 0}

        def done(job, record):
            counts[record.status] += 1
            if on_done:
                on_done(job, record)
        runner = UnitRunner(sweep.store, sweep.cache, sweep.device, sweep.versions, sweep.commit)
        for unit in sweep.units:
            runner.run(unit, done)
        return counts


# ----------------------------------------------------------------------------- process pool

@dataclass(frozen=True)
class _WorkerConfig:
    db: str
    command: str | None
    cache_root: str
    device: str
    versions: dict
    commit: str | None
    threads: int


def _worker_main(conn, config: _WorkerConfig) -> None:
    """A worker: receive units until None (or the parent is gone), send ("built", group),
    ("done", key, record) as each record is stored, ("idle",) after each unit, or ("error",
    pickled exception, traceback) and stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    store = None
    try:
        import torch
        torch.set_num_threads(config.threads)
        store = Store(config.db, command=config.command)
        runner = UnitRunner(store, ModelCache(config.cache_root), config.device, config.versions,
                            config.commit, on_built=lambda group: conn.send(("built", group)))
        while True:
            unit = conn.recv()
            if unit is None:
                break
            runner.run(unit, lambda job, record: conn.send(("done", job.key, record)))
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
    def __init__(self, context, config: _WorkerConfig):
        parent_end, child_end = context.Pipe(duplex=True)
        self.process = context.Process(target=_worker_main, args=(child_end, config), daemon=True)
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


class _Schedule:
    """The units left, per group, and which groups are started or built (see the module
    docstring for the order a free worker takes them in)."""

    def __init__(self, units: list[Unit]):
        self.queues: dict[Group, deque[Unit]] = {}
        for unit in units:
            self.queues.setdefault(unit.group, deque()).append(unit)
        self.started: set[Group] = set()
        self.built: set[Group] = set()

    def next(self, last: Group | None, anywhere: bool) -> Unit | None:
        if last is not None and self.queues.get(last):
            return self.queues[last].popleft()
        for group, queue in self.queues.items():
            if queue and group not in self.started:
                self.started.add(group)
                return queue.popleft()
        left = [g for g, q in self.queues.items() if q and (anywhere or g in self.built)]
        if not left:
            return None
        return self.queues[max(left, key=lambda g: len(self.queues[g]))].popleft()

    def left(self) -> list[Unit]:
        return [unit for queue in self.queues.values() for unit in queue]


def describe(job: Job) -> str:
    request = f" request={job.request}" if job.request else ""
    return f"{job.benchmark} {job.method} seed={job.seed}{request}"


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
        counts = {"finished": 0, "failed": 0}
        if not sweep.units:
            return counts
        jobs = {job.key: job for unit in sweep.units for job in unit.jobs}
        reported: set[str] = set()
        deaths: list[str] = []
        schedule = _Schedule(sweep.units)
        config = _WorkerConfig(sweep.store.location, sweep.store.command,
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
                            deaths.append(f"worker process {worker.process.pid} died "
                                          f"({worker.how_it_ended()}) while idle")
                live = [w for w in workers if w.alive]
                if not any(w.unit for w in live):
                    break
                ready = set(wait([w.conn for w in live] + [w.process.sentinel for w in live]))
                for worker in live:
                    if worker.conn not in ready and worker.process.sentinel not in ready:
                        continue
                    for message in worker.messages():
                        if message[0] == "done":
                            _, key, record = message
                            reported.add(key)
                            counts[record.status] += 1
                            if on_done:
                                on_done(jobs[key], record)
                        elif message[0] == "built":
                            schedule.built.add(message[1])
                        elif message[0] == "idle":
                            worker.last_group, worker.unit = worker.unit.group, None
                        elif message[0] == "error":
                            raise _unpickle_error(message[1], message[2])
                    if not worker.alive or not worker.process.is_alive():
                        worker.alive = False
                        how = worker.how_it_ended()
                        if worker.unit is not None:
                            lost = [j for j in worker.unit.jobs if j.key not in reported]
                            what = f"while running {describe(lost[0])}" if lost else "between jobs"
                            if worker.unit.group not in schedule.built:
                                schedule.started.discard(worker.unit.group)  # others may build it
                            worker.unit = None
                        else:
                            what = "while idle"
                        deaths.append(f"worker process {worker.process.pid} died ({how}) {what}")
            finished_cleanly = True
        finally:
            _shut_down(workers, finished_cleanly)
        error = lost_jobs_error(jobs, reported, sweep.store, deaths,
                                "the worker processes stopped")
        if error:
            raise error
        return counts


def lost_jobs_error(jobs: dict[str, Job], reported: set[str], store: Store, causes: list[str],
                    default_cause: str) -> WorkersLost | None:
    """The one-line error naming the jobs neither reported nor stored (None: all are done)."""
    missing = [key for key in jobs if key not in reported]
    if missing:
        stored = store.done_keys()  # a record written just before its worker died
        missing = [key for key in missing if key not in stored]
    if not missing:
        return None
    names = ", ".join(describe(jobs[key]) for key in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    cause = "; ".join(causes) or default_cause
    return WorkersLost(f"{cause}: {len(missing)} of {len(jobs)} jobs not done ({names}{more}); "
                       "run the same command again to run only those")


EXECUTORS = ("serial", "pool", "ray")


def make_executor(name: str | None = None, workers: int | None = None, threads: int = 1,
                  address: str | None = None) -> Executor:
    """The executor ``run --executor NAME [--workers N] [--address ADDR]`` asks for. Without a
    name, ``--workers N`` chooses as before: a process pool for N > 1, else serial. ``pool``
    without ``--workers`` takes one worker per core; ``ray`` (``executors_ray.py``; Ray itself
    is imported only then) reads ``--workers`` as the tasks in flight and ``--address`` as the
    cluster."""
    if name is not None and name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if address and name != "ray":
        raise UserError("--address names a Ray cluster: add --executor ray")
    if name == "ray":
        from .executors_ray import RayExecutor
        return RayExecutor(address, workers, threads)
    if name == "pool":
        return ProcessPool(workers or max(2, (os.cpu_count() or 1) // threads), threads)
    if name == "serial" and (workers or 1) > 1:
        raise UserError(f"--executor serial runs one job at a time; leave out --workers {workers} "
                        "or use --executor pool")
    if name is None and (workers or 1) > 1:
        return ProcessPool(workers, threads)
    return SerialExecutor()


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
