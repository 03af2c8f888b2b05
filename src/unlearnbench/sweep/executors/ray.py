"""The Ray executor: ``unlearnbench run --executor ray [--address auto|ray://HOST:PORT]``.

Each unit (one job, or one chain of sequential requests; see ``sweep/executors/``) is one Ray
task with its resource request: ``num_cpus=threads`` (1 by default) and ``num_gpus=1`` when
the device is CUDA (Ray then gives the task its own GPU as ``cuda``). Without ``--address``
a local Ray instance is started (``ray.init``, with ``workers × threads`` CPUs when
``--workers`` is given, else every core) and stopped at the end; with one, the sweep runs on
that cluster (``auto``: the one started on this machine by ``ray start``; ``ray://...``:
through Ray Client, which needs ``ray[client]``). Ray itself is an optional extra, imported
only when this executor is chosen.

Nothing heavy travels through Ray: a task gets the unit, the store's location, the model
cache directory and the plugin files to import (on a cluster, at the same path on every
node), builds (or loads) the scenario's models through that cache and writes each
record to the store itself, one transaction each, as it completes. On a cluster the cache
directory must therefore be on a file system every node mounts at the same path, and the
store should be a server database every node reaches (``--db postgresql://...``); a SQLite
file is safe only when every task runs on one machine. The records also come back to the
parent, for its progress line, when the task returns (a chain's, all at its end).

Tasks reuse their worker process; a worker keeps the scenario (and inference caches) of the
group it ran last, as a pool worker does. When the cluster is this machine (a local instance,
or ``--address auto``) and the device is the CPU, this process takes one of the slots itself,
as the pool's parent does: a thread runs units from the first moment, while each task's
worker process first imports torch and this package (about 4 CPU-s). The parent keeps as many tasks in flight as the
cluster has room for (its CPUs / threads, or GPUs; ``--workers N`` sets it, e.g. for an
autoscaling cluster) and submits them in the pool's order (``Schedule``): after a unit of
group g completes, the next unit of g (the worker just freed holds its scenario), else a
group nobody has started, else one whose models are already cached. A group is "built"
once one of its units has returned, so a cold cache is not trained twice at once.

Faults: tasks are not retried (``max_retries=0``: a job that kills its worker, out of
memory say, would kill the retry too). The parent collects results with ``ray.wait``; a task
lost with its worker or node (any ``RayError`` other than an exception raised by our code)
is noted and the sweep goes on. At the end the jobs neither returned nor stored are named in
one ``WorkersLost`` line (exit 2); the same command then runs only them. An exception of our
code that is no failed job (data missing, say) cancels the other tasks and is raised here,
as in a serial run.
"""
from __future__ import annotations

import logging
import os
from contextlib import suppress
from pathlib import Path

from ...cache import ModelCache, default_cache_dir
from ...errors import UserError
from ...plugins import load_files, loaded_files
from ...store import RunRecord, Store
from .base import (
    OnDone,
    Schedule,
    Sweep,
    Tally,
    Unit,
    UnitRunner,
    WorkerConfig,
    describe,
)
from .pool import ThreadWorker, read_messages

INSTALL = "pip install 'unlearnbench[ray]'"


def import_ray():
    """Ray, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise UserError(f"the Ray executor needs Ray, which is not installed here ({exc}); "
                        f"run `{INSTALL}`") from None
    return ray


class RayExecutor:
    """Units as Ray tasks on a local instance or on the cluster at ``address``; ``workers``:
    units running at once at most (default: as many as the cluster's CPUs or GPUs allow;
    on a cluster of this machine, this process's thread is one of them), and the CPUs of a
    local instance; ``threads``: CPUs (torch threads) per task."""

    def __init__(self, address: str | None = None, workers: int | None = None,
                 threads: int = 1):
        if workers is not None and workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}")
        if threads < 1:
            raise UserError(f"--threads must be at least 1, got {threads}")
        import_ray()  # say so now, before any work, when Ray is missing
        self.address, self.workers, self.threads = address, workers, threads

    def run(self, sweep: Sweep, on_done: OnDone | None = None) -> dict[str, int]:
        if not sweep.units:
            return {"finished": 0, "failed": 0}
        ray = import_ray()
        started_here = self._connect(ray)
        in_flight: dict = {}  # task reference -> unit
        local: ThreadWorker | None = None  # this process's share, on a cluster of this machine
        cleanly = False
        try:
            gpus = 1 if sweep.device.startswith("cuda") else 0
            slots = self._slots(ray, gpus)
            task = ray.remote(run_unit).options(num_cpus=self.threads, num_gpus=gpus,
                                                max_retries=0)
            config = WorkerConfig(sweep.store.location, sweep.store.command,
                                   str(Path(sweep.cache.root).resolve()),
                                   "cuda" if gpus else sweep.device, sweep.versions,
                                   sweep.commit, self.threads)
            data_root = str(default_cache_dir().resolve())
            plugins = loaded_files()
            schedule = Schedule(sweep.units)
            tally = Tally(sweep, schedule, on_done)
            if self._driver_works(gpus):
                local = ThreadWorker(config)
                slots = max(1, slots - 1)

            def busy() -> bool:
                return bool(in_flight) or (local is not None and local.unit is not None)

            def submit(last):
                while local is not None and local.alive and local.unit is None:
                    unit = schedule.next(local.last_group, anywhere=not busy())
                    if unit is None or local.give(unit):
                        break
                while len(in_flight) < slots:
                    unit = schedule.next(last, anywhere=not busy())
                    if unit is None:
                        return
                    in_flight[task.remote(config, data_root, plugins, unit)] = unit
                    last = None

            submit(None)
            while busy():
                if local is not None and local.unit is not None and \
                        local.conn.poll(0 if in_flight else None):
                    read_messages(local, schedule, tally)
                    submit(None)
                if not in_flight:
                    continue
                # while the thread works, look at it every 20 ms
                ready, _ = ray.wait(list(in_flight), num_returns=1,
                                    timeout=0.02 if local is not None and local.unit else None)
                if not ready:
                    continue
                ref = ready[0]
                unit = in_flight.pop(ref)
                try:
                    results, ran = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # our code raised: stop, as serially
                    raise _cause(exc) from None
                except ray.exceptions.RayError as exc:  # the worker or node is gone
                    tally.lost(f"the Ray task running {describe(unit.jobs[0])} was lost "
                               f"({type(exc).__name__}: {_first_line(exc)})", unit)
                    submit(None)
                    continue
                if ran:
                    schedule.built.add(unit.group)
                else:  # another process holds one of its jobs: run_grid waits for it
                    tally.held(unit)
                for key, record in results:
                    tally.done(key, record)
                submit(unit.group)
            cleanly = True
        finally:
            if not cleanly:  # an error or Ctrl-C here: stop the tasks (no record is half-written)
                for ref in in_flight:
                    with suppress(Exception):  # finished meanwhile, or already gone
                        ray.cancel(ref, force=True)
            if local is not None:
                local.stop(cleanly)
                local.join(30)
            if started_here:
                ray.shutdown()
        return tally.result("Ray tasks were lost")

    def _connect(self, ray) -> bool:
        """Connect to the cluster, or start a local instance; True when this call started or
        connected it (and so shuts it down after). An already connected process (a script or
        test that called ``ray.init`` itself) keeps its connection."""
        if ray.is_initialized():
            return False
        try:
            if self.address:
                ray.init(address=self.address, logging_level=logging.WARNING)
            else:
                cpus = self.workers * self.threads if self.workers else None
                ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
        except Exception as exc:  # noqa: BLE001 - Ray raises several kinds; all mean the same
            where = (f"connect to the Ray cluster at {self.address!r}" if self.address
                     else "start a local Ray instance")
            hint = ("check the address, that the cluster is running (`ray start --head`), and "
                    "for ray:// addresses `pip install 'ray[client]'`") if self.address else \
                "see `ray status` and the logs under /tmp/ray"
            raise UserError(f"cannot {where} ({type(exc).__name__}: {_first_line(exc)}); "
                            f"{hint}") from None
        return True

    def _driver_works(self, gpus: int) -> bool:
        """Whether this process runs units too, in a thread (``pool.ThreadWorker``), in one of
        the slots: when the cluster is this machine (a local instance, or ``auto``) and the
        tasks need no GPU. It starts at once, where a task's worker process first imports
        torch and this package (about 4 CPU-s)."""
        return not gpus and self.address in (None, "auto")

    def _slots(self, ray, gpus: int) -> int:
        """How many tasks to keep in flight: --workers, else what the cluster has room for."""
        resources = ray.cluster_resources()
        if gpus:
            room = int(resources.get("GPU", 0))
            if room < 1:
                raise UserError("--device cuda: the Ray cluster has no GPU; run on a cluster with "
                                "GPU nodes or use --device cpu")
        else:
            room = int(resources.get("CPU", 0) // self.threads)
            if room < 1:
                raise UserError(f"the Ray cluster has {resources.get('CPU', 0):g} CPUs, fewer than "
                                f"--threads {self.threads}; lower --threads")
        return self.workers or room


# ------------------------------------------------------------------------ inside a Ray worker

_RUNNER: tuple[WorkerConfig, UnitRunner] | None = None  # this worker's, reused across tasks


def run_unit(config: WorkerConfig, data_root: str, plugin_files: list[str],
             unit: Unit) -> tuple[list[tuple[str, RunRecord]], bool]:
    """The Ray task: import the plugin files (once per worker process), run one unit, writing
    each record to the store as it completes; returns (job key, record) for each record
    written, and False when another process held the unit (nothing ran). The worker process
    keeps its store connection and the scenario of the group it ran last for the next task
    of the same sweep."""
    global _RUNNER
    load_files(plugin_files)
    if _RUNNER is None or _RUNNER[0] != config:
        if _RUNNER is not None:
            _RUNNER[1].close()
            _RUNNER[1].store.close()
            _RUNNER = None
        import torch
        torch.set_num_threads(config.threads)
        os.environ["UNLEARNBENCH_CACHE"] = data_root  # data sets fetched into the cache
        store = Store(config.db, command=config.command)
        _RUNNER = config, UnitRunner(store, ModelCache(config.cache_root), config.device,
                                     config.versions, config.commit)
    done: list[tuple[str, RunRecord]] = []
    ran = _RUNNER[1].run(unit, lambda job, record: done.append((job.key, record)))
    return done, ran


def _cause(exc) -> BaseException:
    """The exception our code raised inside a task (a UserError keeps its one line)."""
    cause = getattr(exc, "cause", None)
    if not isinstance(cause, Exception):
        return RuntimeError(f"a Ray task failed: {_first_line(exc)}")
    if not isinstance(cause, UserError):
        cause.add_note(f"in a Ray task:\n{exc}")
    return cause


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
