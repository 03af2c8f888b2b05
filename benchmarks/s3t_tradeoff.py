"""S3T against SISA on digits as the deletion rate grows: test accuracy, slices lost and
optimizer steps retrained, on the same random requests (mean ± std over seeds).

    nice -n 19 .venv/bin/python benchmarks/s3t_tradeoff.py --seeds 3

S3T runs twice: retraining the rest of the best sequence from its clean prefix (the default)
and serving that prefix as it is (``retrain=False``, no steps). Same S = 5 shards, R = 4
slices for both; S3T with its default B = 4 sequences."""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import unlearnbench
from unlearnbench import registry
from unlearnbench.errors import UserError
from unlearnbench.methods import s3t, sisa
from unlearnbench.methods.base import UnlearnContext
from unlearnbench.train import StepBudget

RATES = (0.005, 0.01, 0.02, 0.05, 0.1)
VARIANTS = (("sisa", sisa.SisaParams()), ("s3t", s3t.S3tParams()),
            ("s3t serve", s3t.S3tParams(retrain=False)))


def request(data, rate: float, seed: int):
    """A random ``rate`` of ``data``, drawn by numpy: not torch's permutation with the same
    seed, which is the shard layout's and would delete whole slices."""
    count = max(1, int(round(rate * len(data))))
    chosen = np.sort(np.random.default_rng(seed).choice(len(data), count, replace=False))
    return data.subset(chosen, "forget"), data.subset(np.setdiff1d(np.arange(len(data)), chosen),
                                                      "retain")


def run(scenario, name, params, forget, retain, seed):
    entry = registry.methods.get(name.split()[0])
    ctx = UnlearnContext(scenario.task, scenario.original, forget, retain, scenario.spec.recipe,
                         seed, StepBudget(), scenario.cache)
    entry.attributes["prepare"](ctx, params)
    start = time.perf_counter()
    try:
        model = entry.obj(ctx, params)
    except UserError:
        return None  # serving: no clean prefix left anywhere
    seconds = time.perf_counter() - start
    test = scenario.splits["test"]
    accuracy = 100.0 * float((scenario.task.predict_logits(model, test).argmax(1)
                              == test.targets).float().mean())
    info = getattr(model, "s3t_info", None)
    lost = info["lost_slices"] if info else sum(4 - first for _, first in model.sisa_info["retrained"])
    return accuracy, lost, ctx.budget.used, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for seed in range(args.seeds):
        scenario = unlearnbench.scenario("digits-random10", seed=seed)
        data = sisa.training_data(scenario.forget, scenario.retain)
        for rate in RATES:
            forget, retain = request(data, rate, seed)
            for name, params in VARIANTS:
                results.setdefault((rate, name), []).append(
                    run(scenario, name, params, forget, retain, seed))
    print("| deleted | method | TA (%) | slices lost (of 20) | steps retrained | seconds |")
    print("|---|---|---|---|---|---|")
    for (rate, name), rows in results.items():
        kept = [r for r in rows if r is not None]
        cells = [f"{np.mean(c):.2f} ± {np.std(c):.2f}" for c in zip(*kept)] if kept else []
        note = "" if len(kept) == len(rows) else f" ({len(rows) - len(kept)} of {len(rows)} " \
                                                 "seeds: no clean prefix left)"
        print(f"| {100 * rate:g}% ({max(1, round(rate * len(data)))}) | {name}{note} | "
              + " | ".join(cells or ["—"] * 4) + " |")


if __name__ == "__main__":
    main()
