"""The reference models of a generative benchmark, scored as the methods are: for each seed,
the original and the retrained model (read from the model cache, or trained), their CPU
seconds of training (the model cache's metadata) and every metric of the benchmark's
evaluation but the timings.

    .venv/bin/python benchmarks/generative_references.py --benchmark canvas-mnist-style --seeds 3

The ``retrain`` method reproduces the retrained reference bit for bit on CPU, so its row in a
leaderboard is this one (gap 0) at the cost of training the model again; this script reads
the cached one instead. Prints one markdown row per (model, seed) and the mean ± std."""
from __future__ import annotations

import argparse

import numpy as np
import torch

import unlearnbench
from unlearnbench.metrics.evaluation import evaluate, metric_names_for
from unlearnbench.metrics.inference import InferenceCache
from unlearnbench.registry import metrics

TIMINGS = {"unlearn_seconds", "unlearn_cpu_seconds", "retrain_seconds", "speedup",
           "cost_fraction"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default="canvas-mnist-style")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, list[list[float]]] = {"original": [], "retrained": []}
    names = None
    for seed in range(args.seeds):
        scenario = unlearnbench.scenario(args.benchmark, seed=seed)
        if names is None:
            names = sorted((n for n in metric_names_for(scenario) if n not in TIMINGS
                            and not metrics.get(n).attributes.get("on_request")),
                           key=lambda n: metrics.get(n).attributes.get("column", 1000))
            titles = [metrics.get(n).attributes["title"] for n in names]
            print("| model | seed | training CPU-s | " + " | ".join(titles) + " |")
            print("|---|---:|---:|" + "---:|" * len(names))
        cache = InferenceCache(scenario.task)
        for label, model, meta in (("original", scenario.original, scenario.original_meta),
                                   ("retrained", scenario.reference, scenario.reference_meta)):
            results = evaluate(scenario, model, names=names, cache=cache)
            values = [results[n].value for n in names]
            cpu = meta.get("train_cpu_seconds", float("nan"))
            rows[label].append([cpu] + values)
            print(f"| {label} | {seed} | {cpu:.0f} | " +
                  " | ".join(f"{v:.2f}" for v in values) + " |")
    for label, values in rows.items():
        table = np.array(values, dtype=float)
        cells = [f"{m:.2f} ± {s:.2f}" for m, s in zip(table.mean(0), table.std(0, ddof=1)
                                                      if len(table) > 1 else table[0] * 0)]
        print(f"| {label} | mean ± std | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
