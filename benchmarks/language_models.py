"""Training cost and memorisation of a language benchmark's target and retain models.

    .venv/bin/python benchmarks/language_models.py [--benchmark entities-forget05] [--threads 2]
        [--cache-dir DIR]

Trains both models from nothing (in a fresh cache directory unless --cache-dir is given) and
prints one markdown table for docs/benchmarks.md: training seconds of each and exact greedy
answers on the forget, retain (fixed 400-question sample), holdout, world-facts and
real-entities questions, plus the mean answer NLL of forget and holdout."""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

import unlearnbench
from unlearnbench.cache import ModelCache
from unlearnbench.metrics.evaluation import evaluate, metric_names_for
from unlearnbench.metrics.inference import InferenceCache

COLUMNS = ["forget_exact", "retain_exact", "holdout_exact", "world_facts_exact",
           "real_entities_exact", "forget_nll", "holdout_nll"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default="entities-forget05")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="unlearnbench-lm-")
    start = time.perf_counter()
    scenario = unlearnbench.scenario(args.benchmark, seed=args.seed, cache=ModelCache(cache_dir))
    build = time.perf_counter() - start
    cache = InferenceCache(scenario.task)
    names = [c for c in COLUMNS if c in metric_names_for(scenario)]
    print(f"\n{args.benchmark}, seed {args.seed}, {args.threads} threads; scenario built in "
          f"{build:.0f} s\n")
    print("| model | examples | train s | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    for role, model, meta in (("target", scenario.original, scenario.original_meta),
                              ("retain", scenario.reference, scenario.reference_meta)):
        scores = evaluate(scenario, model, names=names, cache=cache)
        cells = [f"{scores[c].value:.2f}" if c in scores and scores[c].value is not None else "—"
                 for c in COLUMNS]
        cached = " (cached)" if meta.get("cached") else ""
        print(f"| {role} | {meta['examples']} | {meta['train_seconds']:.0f}{cached} | "
              + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
