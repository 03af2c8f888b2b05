"""The perturbed answers' pass with and without sharing the prompt's key/value cache: CPU
seconds of ``token_statistics`` over every perturbed text set of a benchmark's target, both
ways in one run (alternating, best of ``--repeats``), and the largest difference between the
two ways' log-probabilities.

    .venv/bin/python benchmarks/shared_prompt_pass.py [--benchmark entities-forget10] [--repeats 2]

One thread; CPU seconds (``time.process_time``) are the work done whatever else shares the
machine. The target is trained or read from the model cache; no retain model is needed."""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from target_recall import target_scenario
from unlearnbench.cache import ModelCache, default_cache_dir
from unlearnbench.data.text import answer_variants
from unlearnbench.spec_names import get_spec
from unlearnbench.tasks import language


def timed(task, model, text_set, share: bool):
    sharing = language.worth_sharing
    if not share:
        language.worth_sharing = lambda model, prompts: False
    try:
        start = time.process_time()
        stats = task.token_statistics(model, text_set)
        return time.process_time() - start, stats
    finally:
        language.worth_sharing = sharing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default="entities-forget10")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    scenario = target_scenario(get_spec(args.benchmark), 0, ModelCache(default_cache_dir()))
    task, model = scenario.task, scenario.original
    print(f"\n{args.benchmark} ({type(model).__name__}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters), one thread\n")
    print("| text set | answers | questions | plain CPU s | shared CPU s | speed-up "
          "| max abs Δ log p |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    totals = [0.0, 0.0]
    for name, split in scenario.splits.items():
        text_set = answer_variants(split, "perturbed")
        if text_set is None:
            continue
        plain, shared = [], []
        for _ in range(args.repeats):
            seconds, plain_stats = timed(task, model, text_set, share=False)
            plain.append(seconds)
            seconds, shared_stats = timed(task, model, text_set, share=True)
            shared.append(seconds)
        assert np.array_equal(plain_stats.offsets, shared_stats.offsets)
        delta = np.abs(plain_stats.log_probs - shared_stats.log_probs).max()
        totals[0] += min(plain)
        totals[1] += min(shared)
        print(f"| {name} | {len(text_set)} | {len(split)} | {min(plain):.1f} | "
              f"{min(shared):.1f} | {min(plain) / min(shared):.2f}× | {delta:.1e} |")
    print(f"| all | | | {totals[0]:.1f} | {totals[1]:.1f} | {totals[0] / totals[1]:.2f}× | |")


if __name__ == "__main__":
    main()
