"""Run a grid of jobs: skip what the store holds, cut the rest into units, hand them to an
executor, wait for the jobs other processes hold. The jobs themselves are ``jobs.py``'s."""
from __future__ import annotations

from collections.abc import Callable

from ..cache import ModelCache
from ..errors import UserError
from ..store import RunRecord, Store
from .executors import ProcessPool, SerialExecutor
from .executors.base import Sweep, make_units
from .jobs import Job, environment
from .leases import wait_for_others


def run_grid(jobs: list[Job], store: Store, cache: ModelCache | None = None,
             device: str = "cpu", on_done: Callable[[Job, RunRecord], None] | None = None,
             workers: int = 1, threads: int = 1, executor=None,
             on_wait: Callable[[list[Job]], None] | None = None) -> dict[str, int]:
    """Run every job not yet in the store, writing each record as it completes: in this
    process (``workers=1``), in a pool of ``workers`` spawned processes with ``threads`` torch
    threads each, or with any ``executor`` (see ``sweep/executors/``).

    Other processes may run the same grid on the same store at once: each job is leased to
    the process that runs it (``sweep/leases.py``), and a job another process holds is passed over.
    Once the rest is done, this process waits for those (``on_wait`` is told which) until
    they are stored, and runs those whose holder stopped without storing them; so every
    process returns when the whole grid is stored, each job run once. Returns the jobs
    finished and failed here, and "skipped": those stored before or by other processes."""
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    cache = cache or ModelCache()
    done = store.done_keys()
    pending = [job for job in jobs if job.key not in done]
    versions, commit = environment()
    if executor is None:
        executor = SerialExecutor() if workers == 1 else ProcessPool(workers, threads)
    ran: set[str] = set()

    def report(job: Job, record: RunRecord) -> None:
        ran.add(job.key)
        if on_done:
            on_done(job, record)
    counts = {"finished": 0, "failed": 0}
    units = make_units(jobs, pending)
    while units:
        sweep = Sweep(units, store, cache, device, versions, commit)
        for status, n in executor.run(sweep, report).items():
            counts[status] += n
        stored = store.done_keys()
        held = [job for unit in sweep.held for job in unit.jobs if job.key not in stored]
        if held and on_wait:
            on_wait(held)
        left = wait_for_others(store, {job.key for job in held}) if held else set()
        units = make_units(jobs, [job for job in jobs if job.key in left])
    return {"skipped": sum(job.key not in ran for job in jobs), **counts}
