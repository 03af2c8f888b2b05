"""Executors: where a sweep's jobs run. ``run_grid`` plans, skips what the store holds, cuts
the rest into units and hands them to one executor; every executor has one method,
``run(sweep, on_done) -> {"finished": n, "failed": m}``.

- ``SerialExecutor`` (the default): every unit in this process, in grid order.
- ``ProcessPool(workers, threads)`` (``unlearnbench run --workers N``): N spawned processes
  (``executors_pool.py``).
- ``RayExecutor(address, workers, threads)`` (``--executor ray``): Ray tasks, see below.

A **unit** is one job, or one chain of sequential requests (a method's stages stay in one
process: each starts from the previous stage's model). Units keep the grid's order, grouped
by (benchmark, seed), the jobs that share one scenario. A ``UnitRunner`` runs units in one
process and keeps the scenario (and its inference caches) of the group it ran last, so a
group's scenario is built once per process that works on it. Before it builds anything it
claims the unit's jobs with leases in the store (``leases.py``): a unit another process (of
this sweep or of another `unlearnbench run`) holds is not run but added to ``Sweep.held``,
which ``run_grid`` waits for at the end; a job stored meanwhile is not run again.

The pool (and Ray) schedule units, not whole groups, as ``Schedule`` says, so that one seed with many methods still keeps
every worker busy. A free worker takes, in this order: the next unit of the group it worked
on last (its scenario is in memory); the first unit of a group nobody has started (a fresh
scenario: with a cold model cache each worker trains different models); a unit of a group
whose scenario another worker has already built (the models are then in the on-disk cache,
so building it again is loading it), the group with the most units left first. A worker
never starts a group another worker is still building while anything else is running, so a
cold cache is not trained twice over (the cache is content-addressed and written under
temporary names, so it would be safe, only wasteful).

``RayExecutor`` (``executors_ray.py``, ``run --executor ray [--address ...]``) is one more
class with the same ``run``: one Ray task per unit, with its resource request, writing to a
store every node reaches, the model cache on a shared directory, ``ray.wait`` in place of
the pipes and sentinels, the same scheduling order and the same ``WorkersLost`` line when
tasks are lost. ``make_executor`` turns the command line's choice into one of the three.
"""
from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .cache import ModelCache
from .errors import UserError
from .leases import Leases
from .runner import Job, _run_sequences, run_job, scenario_cache
from .scenarios import build_scenario, get_spec
from .store import RunRecord, Store

OnDone = Callable[[Job, RunRecord], None]
Group = tuple[str, int]  # (benchmark as given, seed): the jobs that share one scenario


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
    """What an executor runs: the units in grid order, and where results and models go;
    ``held``: the units the executor passed over because another process held them."""
    units: list[Unit]
    store: Store
    cache: ModelCache
    device: str
    versions: dict
    commit: str | None
    held: list[Unit] = field(default_factory=list)


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
        group = (job.source or job.benchmark, job.seed)
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
    ran last, and the leases of the jobs it runs. ``on_built(group)`` is called when a
    scenario has been built."""

    def __init__(self, store: Store, cache: ModelCache, device: str, versions: dict,
                 commit: str | None, on_built: Callable[[Group], None] | None = None):
        # The first optimizer step or torch.func call of a process imports torch._dynamo
        # (2-7 s); do it now so that it is not charged to whichever method runs first.
        import torch._dynamo  # noqa: F401

        self.store, self.cache, self.device = store, cache, device
        self.versions, self.commit, self.on_built = versions, commit, on_built
        self.leases = Leases(store.location)
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

    def run(self, unit: Unit, on_done: OnDone) -> bool:
        """Run the unit, writing each record as it completes and then releasing its job's
        lease. False when another process holds one of its jobs: nothing is run."""
        keys = [job.key for job in unit.jobs]
        if not self.leases.claim(keys):
            return False
        try:
            self._run(unit, on_done)
        finally:
            self.leases.release(keys)  # those of jobs that stopped without a record
        return True

    def _run(self, unit: Unit, on_done: OnDone) -> None:
        # another process may have finished some since the sweep was planned
        jobs = [job for job in unit.jobs if not self.store.has(job.key)]
        if not jobs:
            return

        def done(job: Job, record: RunRecord) -> None:
            self.leases.release([job.key])
            on_done(job, record)
        scenario = self.scenario(unit.group)
        if isinstance(scenario, list):
            stored = {j.key for j in unit.chain} - {j.key for j in jobs}
            _run_sequences(jobs, scenario, list(unit.chain), self.store, stored,
                           self.versions, self.commit, done, self._stage_caches)
            return
        if self._shared is None:
            self._shared = scenario_cache(scenario, self.cache)
        for job in jobs:
            record, _ = run_job(job, scenario, self.versions, self.commit, cache=self._shared)
            self.store.write(record)
            done(job, record)

    def close(self) -> None:
        """Release the leases still held and stop their heartbeat."""
        self.leases.close()


class SerialExecutor:
    """Every unit in this process, in grid order (a scenario is built once per group)."""

    def run(self, sweep: Sweep, on_done: OnDone | None = None) -> dict[str, int]:
        counts = {"finished": 0, "failed": 0}

        def done(job, record):
            counts[record.status] += 1
            if on_done:
                on_done(job, record)
        runner = UnitRunner(sweep.store, sweep.cache, sweep.device, sweep.versions, sweep.commit)
        try:
            for unit in sweep.units:
                if not runner.run(unit, done):
                    sweep.held.append(unit)
        finally:
            runner.close()
        return counts


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process (pool or Ray) needs to run units: where the store and the model
    cache are, the device, provenance, and its torch threads."""
    db: str
    command: str | None
    cache_root: str
    device: str
    versions: dict
    commit: str | None
    threads: int


class Schedule:
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
    from .executors_pool import ProcessPool  # it imports this module

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


