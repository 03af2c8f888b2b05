"""What every executor shares: units of a sweep, the sweep itself, the runner of units in one
process (with its job leases), the scheduling order, the error for lost jobs (see the
package docstring)."""
from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ...cache import ModelCache
from ...errors import UserError
from ...scenarios import build_scenario, get_spec
from ...store import RunRecord, Store
from ..jobs import Job, run_job, run_sequences, scenario_cache
from ..leases import Leases

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
                job.max_steps, job.budget)

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
            run_sequences(jobs, scenario, list(unit.chain), self.store, stored,
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


class Tally:
    """What a parallel executor (pool, Ray) keeps while units run elsewhere: the sweep's jobs,
    those reported (stored, or held by another process, which ``run_grid`` then waits for),
    the counts, and what was lost. ``result`` returns the counts, or raises the one-line
    ``WorkersLost`` when some jobs were neither reported nor stored."""

    def __init__(self, sweep: Sweep, schedule: Schedule, on_done: OnDone | None):
        self.sweep, self.schedule, self.on_done = sweep, schedule, on_done
        self.jobs = {job.key: job for unit in sweep.units for job in unit.jobs}
        self.reported: set[str] = set()
        self.counts = {"finished": 0, "failed": 0}
        self.losses: list[str] = []

    def done(self, key: str, record: RunRecord) -> None:
        self.reported.add(key)
        self.counts[record.status] += 1
        if self.on_done:
            self.on_done(self.jobs[key], record)

    def held(self, unit: Unit) -> None:
        self.sweep.held.append(unit)
        self.reported.update(job.key for job in unit.jobs)

    def unreported(self, unit: Unit) -> list[Job]:
        return [job for job in unit.jobs if job.key not in self.reported]

    def lost(self, cause: str, unit: Unit | None = None) -> None:
        """A worker is gone (with ``unit`` when it had one): a scenario it had not finished
        building may be built by another."""
        if unit is not None and unit.group not in self.schedule.built:
            self.schedule.started.discard(unit.group)
        self.losses.append(cause)

    def result(self, default_cause: str) -> dict[str, int]:
        error = lost_jobs_error(self.jobs, self.reported, self.sweep.store, self.losses,
                                default_cause)
        if error:
            raise error
        return self.counts


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
