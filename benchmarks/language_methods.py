"""Every language-model unlearning method on a language benchmark, several seeds.

    .venv/bin/python benchmarks/language_methods.py [--benchmark entities-forget10] [--seeds 3]
        [--methods lm] [--db language_methods.db] [--threads 1] [--report-only]

Runs the real command line (resumable: rerun with the same --db to finish an interrupted
sweep) and prints one markdown table for docs/benchmarks.md: mean ± std over seeds of the
forget and retain answer probabilities (TOFU's P(a|q)^(1/|a|)), the forget set's exact-answer
rate and the unlearning seconds, with the original (target) and the retain model (the
benchmark's reference, trained without the forget set: evaluated here, not retrained by the
``retrain`` method, which would cost a full training per seed) as the first rows."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from classification_grid import CLI, leaderboard, table

NAMES = ["forget_prob", "retain_prob", "forget_exact", "unlearn_seconds"]
METRICS = "forget_prob,retain_prob,forget_exact,forget_nll,retain_nll"


# The language-model unlearning methods. The classification methods that
# also run on language models (SCRUB, SSD, Fisher, EU-k...) can be added with --methods.
LM_METHODS = ["original", "ga", "graddiff", "kl", "npo", "simnpo", "idknll", "idkdpo", "rmu",
              "whp", "uld", "flat", "loku", "task_vector", "undial", "wga", "satimp"]


def retain_model_row(benchmark: str, threads: int) -> str:
    """The reference model's cells (its models are fixed across seeds: one value each)."""
    import torch

    import unlearnbench
    torch.set_num_threads(threads)
    scenario = unlearnbench.scenario(benchmark, seed=0)
    scores = unlearnbench.evaluate(scenario, scenario.reference, names=NAMES[:3])
    cells = [f"{scores[n].value:.2f}" for n in NAMES[:3]]
    return f"| retain model | {' | '.join(cells)} | — |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default="entities-forget10")
    parser.add_argument("--methods", default="lm", help="lm (the language-model methods) or a,b,c")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--db", default="language_methods.db")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report-only", action="store_true",
                        help="print the table of what --db holds; run nothing")
    args = parser.parse_args()
    methods = LM_METHODS if args.methods == "lm" else args.methods.split(",")
    env = dict(os.environ)
    if not args.report_only:
        subprocess.run(CLI + ["run", "-b", args.benchmark, "-m", ",".join(methods), "--seeds",
                              str(args.seeds), "--metrics", METRICS, "--db", args.db,
                              "--threads", str(args.threads), "--no-progress"], env=env, check=True)
    rows = [r for r in leaderboard(Path(args.db), env)
            if r["benchmark"] == args.benchmark and r["method"] in methods]
    order = {name: i for i, name in enumerate(methods)}
    rows.sort(key=lambda r: order.get(r["method"], len(order)))
    lines = table(rows, NAMES).splitlines()
    print(f"\n### {args.benchmark}\n")
    print("\n".join(lines[:3] + [retain_model_row(args.benchmark, args.threads)] + lines[3:]))


if __name__ == "__main__":
    sys.exit(main())
