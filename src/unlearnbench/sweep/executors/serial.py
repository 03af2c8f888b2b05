"""The serial executor: every unit in this process, in grid order."""
from __future__ import annotations

from .base import OnDone, Sweep, UnitRunner


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
