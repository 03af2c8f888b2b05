"""Starting a process pool's worker processes, apart from the pool (``executors/pool.py``), so
that ``unlearnbench run`` can start them before it imports torch and plans the sweep: this
module imports nothing heavy, and each spawned process imports the worker code itself.

Workers are spawned ("spawn": no forked torch state) with OpenMP and BLAS limited to
``threads`` threads unless the user set those: otherwise every worker's BLAS takes every core
and the workers spin against each other (on 2 cores a pool ran a third slower)."""
from __future__ import annotations

import multiprocessing
import os
from contextlib import contextmanager

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def spawn_workers(count: int, threads: int) -> list[tuple]:
    """Start ``count`` worker processes; returns (process, the parent's end of its pipe) each.
    A worker imports what it needs, then waits on its pipe for the sweep (``pool.py``)."""
    context = multiprocessing.get_context("spawn")
    started = []
    with _thread_limits(threads):
        for _ in range(count):
            parent_end, child_end = context.Pipe(duplex=True)
            process = context.Process(target=worker_entry, args=(child_end, threads),
                                      daemon=True)
            process.start()
            child_end.close()  # so that the parent's end sees EOF when the worker dies
            started.append((process, parent_end))
    return started


def worker_entry(conn, threads: int) -> None:
    from .executors.worker import worker_main
    worker_main(conn, threads)


@contextmanager
def _thread_limits(threads: int):
    added = [name for name in THREAD_VARIABLES if name not in os.environ]
    os.environ.update({name: str(threads) for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
