"""Population scores of every classification method on digits-random10, and their cost.

    .venv/bin/python benchmarks/population.py [--methods all] [--models 32] [--db population.db]
        [--cache-dir DIR] [--threads 1] [--report-only] [--synthetic 2000x512 | --synthetic none]

Runs population mode (resumable: rerun with the same --db to finish an interrupted sweep) and
prints a markdown table for docs/benchmarks.md: the NeurIPS 2023 challenge score and forget
quality F, U-LiRA accuracy and KLoM on forget (and on test, the challenge's validation), and
each method's seconds (N unlearning runs and their inference, then the statistics). The time
of the population statistics is reported apart from training, and ``--synthetic EXAMPLESxMODELS``
times the per-example ε alone on random populations of that size."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

BENCHMARK = "digits-random10"
COLUMNS = [("challenge_score", "score"), ("challenge_forget_quality", "F"),
           ("ulira_forget", "U-LiRA forget"), ("ulira_test", "U-LiRA test"),
           ("klom_forget_mean", "KLoM forget mean"), ("klom_forget_p99", "KLoM forget p99"),
           ("klom_test_mean", "KLoM test mean"), ("ra", "RA"), ("ta", "TA"),
           ("population_seconds", "seconds"), ("population_stats_seconds", "stats s")]


def table(runs: list[dict]) -> str:
    lines = ["| method | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for run in sorted(runs, key=lambda r: -r["metrics"].get("challenge_score", -1.0)):
        if run["status"] != "finished":
            lines.append(f"| {run['method']} | failed: {run['error']} |")
            continue
        cells = [f"{run['metrics'][name]:.3f}" for name, _ in COLUMNS]
        lines.append(f"| {run['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def synthetic_timing(examples: int, models: int) -> float:
    """Seconds of ``example_epsilons`` on two random populations (models, examples)."""
    from unlearnbench.stats.population import example_epsilons

    rng = np.random.default_rng(0)
    unlearned = rng.normal(0.3, 2.0, (models, examples))
    retrained = rng.normal(0.0, 2.0, (models, examples))
    start = time.perf_counter()
    example_epsilons(unlearned, retrained)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="all")
    parser.add_argument("--models", type=int, default=None)
    parser.add_argument("--db", default="population.db")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report-only", action="store_true",
                        help="print the table of what --db holds; run nothing")
    parser.add_argument("--synthetic", default="2000x512",
                        help="time the per-example ε alone on EXAMPLESxMODELS random scores "
                             "(none: skip)")
    args = parser.parse_args()

    import torch

    from unlearnbench.cache import ModelCache
    from unlearnbench.studies.population import DEFAULT_MODELS, population_name, run_population
    from unlearnbench.store import Store

    torch.set_num_threads(args.threads)
    n_models = args.models or DEFAULT_MODELS
    store = Store(args.db)
    if not args.report_only:
        start = time.perf_counter()
        counts = run_population(BENCHMARK, args.methods.split(","), n_models, store,
                                ModelCache(args.cache_dir),
                                on_done=lambda r: print(f"{r.method}: {r.status}", flush=True))
        print(f"\n{counts['finished']} finished, {counts['failed']} failed, {counts['skipped']} "
              f"already stored; wall {time.perf_counter() - start:.1f} s, of which the retrained "
              f"population {counts['retrained_seconds']:.1f} s (trained or loaded from the cache)")
    runs = store.runs(population_name(BENCHMARK, n_models))
    print(f"\n### {BENCHMARK}, N = {n_models} unlearned and {n_models} retrained models\n")
    print(table(runs))
    finished = [r for r in runs if r["status"] == "finished"]
    stats = sum(r["metrics"]["population_stats_seconds"] for r in finished)
    total = sum(r["metrics"]["population_seconds"] for r in finished)
    print(f"\nPopulation statistics (ε, F, U-LiRA, KLoM): {stats:.2f} s of {total:.1f} s over "
          f"{len(finished)} methods (the rest: unlearning N times and inference).")
    if args.synthetic != "none":
        examples, models = (int(x) for x in args.synthetic.lower().split("x"))
        print(f"Per-example ε alone, {examples} examples x {models} models per population: "
              f"{synthetic_timing(examples, models):.1f} s")


if __name__ == "__main__":
    sys.exit(main())
