"""Executors: where a sweep's jobs run. ``run_grid`` plans, skips what the store holds, cuts
the rest into units and hands them to one executor; every executor has one method,
``run(sweep, on_done) -> {"finished": n, "failed": m}``.

- ``SerialExecutor`` (the default): every unit in this process, in grid order.
- ``ProcessPool(workers, threads)`` (``unlearnbench run --workers N``): N workers, a thread
  of this process and N - 1 spawned processes (``pool.py``).
- ``RayExecutor(address, workers, threads)`` (``--executor ray``): Ray tasks, see below.

A **unit** is one job, or one chain of sequential requests (a method's stages stay in one
process: each starts from the previous stage's model). Units keep the grid's order, grouped
by (benchmark, seed), the jobs that share one scenario. A ``UnitRunner`` runs units in one
process and keeps the scenario (and its inference caches) of the group it ran last, so a
group's scenario is built once per process that works on it. Before it builds anything it
claims the unit's jobs with leases in the store (``sweep/leases.py``): a unit another process (of
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

``RayExecutor`` (``ray.py``, ``run --executor ray [--address ...]``) is one more
class with the same ``run``: one Ray task per unit, with its resource request, writing to a
store every node reaches, the model cache on a shared directory, ``ray.wait`` in place of
the pipes and sentinels, the same scheduling order and the same ``WorkersLost`` line when
tasks are lost. ``make_executor`` turns the command line's choice into one of the three.
"""
from __future__ import annotations

import os

from ...errors import UserError
from .base import Executor
from .pool import ProcessPool
from .serial import SerialExecutor

EXECUTORS = ("serial", "pool", "ray")


def make_executor(name: str | None = None, workers: int | None = None, threads: int = 1,
                  address: str | None = None) -> Executor:
    """The executor ``run --executor NAME [--workers N] [--address ADDR]`` asks for. Without a
    name, ``--workers N`` chooses as before: a process pool for N > 1, else serial. ``pool``
    without ``--workers`` takes one worker per core; ``ray`` (``ray.py``; Ray itself
    is imported only then) reads ``--workers`` as the tasks in flight and ``--address`` as the
    cluster."""
    if name is not None and name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if address and name != "ray":
        raise UserError("--address names a Ray cluster: add --executor ray")
    if name == "ray":
        from .ray import RayExecutor
        return RayExecutor(address, workers, threads)
    if name == "pool":
        return ProcessPool(workers or max(2, (os.cpu_count() or 1) // threads), threads)
    if name == "serial" and (workers or 1) > 1:
        raise UserError(f"--executor serial runs one job at a time; leave out --workers {workers} "
                        "or use --executor pool")
    if name is None and (workers or 1) > 1:
        return ProcessPool(workers, threads)
    return SerialExecutor()


