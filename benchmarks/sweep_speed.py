"""Where a sweep's time goes, serial against a local process pool, on a warm model cache.

    .venv/bin/python benchmarks/sweep_speed.py [--benchmark digits-random10] [--seeds 4]
        [--methods all] [--workers 2] [--ray]

``--ray`` adds a third sweep, ``--executor ray --address auto --workers N``, on the Ray
instance already running on this machine (``ray start --head --num-cpus 2``).

Runs the real command line three times, each into a fresh store in a temporary directory:
a warm-up (trains or loads every original, reference and method preparation into the shared
model cache, untimed), then the serial sweep and the ``--workers N`` sweep (and the Ray one),
timed. From the
stores it prints the wall time of each, the CPU work the jobs themselves report (unlearning
and evaluation seconds, summed over the jobs) and what is left over (process start, imports,
scenario builds, store writes, idle workers), and checks that both stores hold the same
metric values."""
from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from classification_grid import timed


def classification_methods(class_only: bool) -> list[str]:
    from unlearnbench.registry import methods
    return [e.name for e in methods.entries()
            if "classification" in e.attributes.get("tasks", ())
            and (class_only or not e.attributes.get("class_only"))]


def job_seconds(db: Path) -> tuple[int, float, float]:
    with sqlite3.connect(db) as c:
        jobs, unlearn, evaluation = c.execute(
            "select count(*), sum(unlearn_seconds), sum(metrics_seconds) from runs").fetchone()
    return jobs, unlearn or 0.0, evaluation or 0.0


def metric_values(db: Path) -> dict:
    with sqlite3.connect(db) as c:
        return {(key, name): value for key, name, value in c.execute(
            "select r.key, m.name, m.value from runs r join metric_values m on m.run_id = r.id "
            "where m.name not in ('unlearn_seconds', 'unlearn_cpu_seconds', 'speedup')")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default="digits-random10")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--methods", default="all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also on the running Ray instance")
    args = parser.parse_args()
    methods = (classification_methods("class" in args.benchmark) if args.methods == "all"
               else args.methods.split(","))
    sweep = ["run", "-b", args.benchmark, "-m", ",".join(methods), "--seeds", str(args.seeds),
             "--threads", "1", "--no-progress"]
    with tempfile.TemporaryDirectory() as tmp:
        timed(sweep + ["--db", f"{tmp}/warm.db"], env=None)
        rows = []
        runs = [("serial", []), (f"--workers {args.workers}", ["--workers", str(args.workers)])]
        if args.ray:
            runs.append((f"--executor ray --address auto --workers {args.workers}",
                         ["--executor", "ray", "--address", "auto", "--workers", str(args.workers)]))
        for label, extra in runs:
            db = Path(tmp) / f"{len(rows)}.db"
            start = time.perf_counter()
            timed(sweep + ["--db", str(db)] + extra, env=None)
            rows.append((label, time.perf_counter() - start, db))
        same = all(metric_values(rows[0][2]) == metric_values(db) for _, _, db in rows[1:])
        print(f"\n{args.benchmark}, {len(methods)} methods x {args.seeds} seeds "
              f"(results identical: {same})\n")
        print("| run | wall s | speed-up | jobs | unlearning s (sum) | evaluation s (sum) | "
              "left over s |")
        print("|---|---|---|---|---|---|---|")
        serial_wall = rows[0][1]
        for label, wall, db in rows:
            jobs, unlearn, evaluation = job_seconds(db)
            workers = 1 if label == "serial" else args.workers
            print(f"| {label} | {wall:.1f} | {serial_wall / wall:.2f}x | {jobs} | {unlearn:.1f} "
                  f"| {evaluation:.1f} | {wall * workers - unlearn - evaluation:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
