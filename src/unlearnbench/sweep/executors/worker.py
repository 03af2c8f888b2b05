"""A pool worker's side (``pool.py``): the loop that runs the units it is sent, in a spawned
process (``worker_main``, started by ``sweep/spawning.py``) or in a thread of the parent
(``pool.ThreadWorker``)."""
from __future__ import annotations

import os
import pickle
import signal
import sys
import traceback

from ...cache import ModelCache
from ...plugins import load_files
from ...store import Store
from .base import UnitRunner, WorkerConfig


def serve(conn, config: WorkerConfig) -> None:
    """A worker's loop: receive units until None, send ("built", group), ("done", key,
    record) as each record is stored, ("held",) for a unit another process holds, ("idle",)
    after each unit; an exception it cannot record as a failed job is sent as ("error",
    pickled exception, traceback) and ends it. It ends quietly when the parent's end of the
    pipe is gone (nobody to report to)."""
    store = runner = None
    try:
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
    except (EOFError, OSError):
        pass
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        send_error(conn, exc)
    finally:
        if runner is not None:
            runner.close()
        if store is not None:
            store.close()
        conn.close()


def send_error(conn, exc: BaseException) -> None:
    try:
        payload = pickle.dumps(exc)
        pickle.loads(payload)
    except Exception:  # noqa: BLE001
        payload = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
    try:
        conn.send(("error", payload, traceback.format_exc()))
    except OSError:
        pass


def worker_main(conn, threads: int) -> None:
    """A spawned worker: import what every unit needs (this package, torch, scikit-learn,
    torch._dynamo: about 4 CPU-s) while the parent plans the sweep, then receive the sweep's
    configuration and the plugin files the parent loaded (or None: not needed after all),
    and ``serve``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        import torch
        import torch._dynamo  # noqa: F401 - UnitRunner's, see there
        torch.set_num_threads(threads)
        setup = conn.recv()
        if setup is not None:
            config, plugin_files = setup
            load_files(plugin_files)
    except (EOFError, OSError):  # the parent is gone
        setup = None
    except BaseException as exc:  # noqa: BLE001 - a plugin file that fails to import, say
        send_error(conn, exc)
        setup = None
    if setup is not None:
        serve(conn, config)
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written (records committed, cache files renamed into place): skip the
    # interpreter's teardown, 1-2 s with torch loaded, which the parent would wait for.
    os._exit(0)
