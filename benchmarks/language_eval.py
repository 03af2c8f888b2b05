"""Cost of the language evaluation suite: every TOFU, MUSE, membership-inference,
memorisation, fluency and robustness metric that applies, on a benchmark's target model (the
retain model evaluated through the same cache where a metric compares with it).

    .venv/bin/python benchmarks/language_eval.py [--benchmark entities-forget05] [--threads 1]
        [--no-gradnorm]

Prints one markdown row for docs/benchmarks.md: metrics computed, forward passes (token
statistics, one per (model, text set)) and generation passes with their seconds, and the
wall and CPU seconds of the whole evaluation (the rest: the relearning attack, GradNorm,
metric arithmetic). With one thread the CPU seconds are the work done, whatever else shares
the machine."""
from __future__ import annotations

import argparse
import time

import torch

import unlearnbench
from unlearnbench.metrics.evaluation import evaluate, metric_names_for
from unlearnbench.metrics.inference import InferenceCache

TIMINGS = {"unlearn_seconds", "unlearn_cpu_seconds", "retrain_seconds", "speedup"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default="entities-forget05")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-gradnorm", action="store_true",
                        help="leave out GradNorm (a backward pass per record)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scenario = unlearnbench.scenario(args.benchmark, seed=0)
    names = [n for n in metric_names_for(scenario) if n not in TIMINGS
             and not (args.no_gradnorm and n == "mia_gradnorm")]
    cache = InferenceCache(scenario.task)
    start, start_cpu = time.perf_counter(), time.process_time()
    results = evaluate(scenario, scenario.original, names=names, cache=cache)
    total, total_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    valued = sum(r.value is not None for r in results.values())
    print(f"\n{args.benchmark}: {len(names)} metrics ({valued} with a value), "
          f"{args.threads} thread(s)\n")
    print("| benchmark | metrics | forward passes (s) | generation passes (s) | wall s | CPU s |")
    print("|---|---|---|---|---|---|")
    forward, generate = (f"{cache.counts[w]} ({cache.seconds[w]:.0f})"
                         for w in ("token_statistics", "generate"))
    print(f"| {args.benchmark} | {len(names)} | {forward} | {generate} | {total:.0f} | "
          f"{total_cpu:.0f} |")
    text_sets = sorted({name for _, name, what in cache.keys() if what == "token_statistics"})
    print(f"\ntext sets read: {', '.join(text_sets)}")


if __name__ == "__main__":
    main()
