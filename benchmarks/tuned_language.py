"""Fair tuning, then the tuned language leaderboard: every language method tuned with the same
trial budget on the benchmark's validation request, then run with its choice over seeds beside
the original, the retain model (``retrain``) and an independent retrain.

    .venv/bin/python benchmarks/tuned_language.py [--benchmark entities-forget10] [--trials 6]
        [--seeds 5] [--methods a,b,c] [--db tuned_language.db] [--threads 1]
        [--objective privleak@retain_prob --metrics privleak,retain_prob,...]   # a news corpus

Three real commands, each resumable with the same --db (``tune`` skips the methods already
tuned with this budget, ``run`` the jobs already stored):

1. ``unlearnbench tune``: the objective is TOFU's forget quality subject to model utility
   ≥ 0.9 × the retain model's on the validation request (``forget_quality_at_utility``), or
   another ``METRIC@UTILITY`` (MUSE's PrivLeak at the retain texts' probability on news);
2. ``unlearnbench run --tuned`` for the tuned methods, and a plain ``run`` of ``original``,
   ``retrain`` and ``retrain_independent`` (nothing to tune);
3. ``unlearnbench show``: mean ± std and 95% bootstrap interval over the seeds.

Then one line per method from the trial histories: how many trials met the utility bar, the
best value of the objective's metric among them, and how close the others came to the bar
(utility / bar), which is what says why a method reaches forget quality ≥ 0.05 or not."""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time

CLI = [sys.executable, "-m", "unlearnbench.cli"]
UNTUNED = ["original", "retrain", "retrain_independent"]
METRICS = "forget_quality,model_utility,forget_prob,retain_prob,privleak"


def language_methods() -> list[str]:
    """Every registered method that runs on language tasks, less the ones with nothing to tune."""
    from unlearnbench.registry import methods

    return [e.name for e in methods.entries()
            if "language" in e.attributes.get("tasks", ()) and e.name not in UNTUNED]


def trial_summary(db: str, benchmark: str, objective: str) -> list[str]:
    """One line per method tuned for the constrained ``objective`` from its trial history: how
    many trials met the utility bar (a feasible value is ≥ 0), the best value of the metric
    among them (by the objective's score), the closest an infeasible trial came to the bar
    (its value is utility / bar − 1), and the trial of the best metric value with whether it
    met the bar."""
    from unlearnbench.store import Store
    from unlearnbench.studies.tune import objective_for

    goal = objective_for(objective, "language")
    metric = goal.metrics[0]

    def rank(trial: dict) -> float:  # the score the trial would have had if it met the bar
        return goal.score({**trial["metrics"], goal.metrics[1]: math.inf}, 1.0)

    lines = []
    for row in Store(db).tunings(benchmark):
        if row["objective"] != goal.name:
            continue
        done = [t for t in row["history"] if t["state"] == "complete"]
        feasible = [t for t in done if t["value"] >= 0]
        parts = [f"{len(done)}/{len(row['history'])} trials complete",
                 f"{len(feasible)} met the bar"]
        if feasible:
            best = max(feasible, key=rank)["metrics"][metric]
            parts.append(f"best feasible {metric} {best:.3g}")
        if len(feasible) < len(done):
            closest = max(t["value"] + 1 for t in done if t["value"] < 0)
            parts.append(f"closest infeasible trial at {closest:.2f} of the bar")
        if done:
            top = max(done, key=rank)
            where = "met the bar" if top["value"] >= 0 else f"{top['value'] + 1:.2f} of the bar"
            parts.append(f"best {metric} {top['metrics'][metric]:.3g} ({where})")
        lines.append(f"{row['method']}: " + "; ".join(parts))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default="entities-forget10")
    parser.add_argument("--methods", default=None,
                        help="a,b,c (default: every language method less original and retrains)")
    parser.add_argument("--trials", type=int, default=6, help="the trial budget of every method")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--db", default="tuned_language.db")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--objective", default="forget_quality_at_utility",
                        help="a constrained objective, METRIC@UTILITY")
    parser.add_argument("--metrics", default=METRICS, help="what the seeded runs measure")
    args = parser.parse_args()
    methods = args.methods.split(",") if args.methods else language_methods()
    common = ["-b", args.benchmark, "--db", args.db, "--threads", str(args.threads)]
    start = time.perf_counter()
    subprocess.run(CLI + ["tune", "-m", ",".join(methods), "--trials", str(args.trials),
                          "--objective", args.objective] + common, check=True)
    runs = ["run", "--seeds", str(args.seeds), "--metrics", args.metrics, "--no-progress"] + common
    subprocess.run(CLI + runs + ["-m", ",".join(methods), "--tuned-objective", args.objective],
                   check=True)
    subprocess.run(CLI + runs + ["-m", ",".join(UNTUNED)], check=True)
    subprocess.run(CLI + ["show", "-b", args.benchmark, "--db", args.db], check=True)
    print(f"\ntrial histories ({args.trials} trials each, "
          "bar: 0.9 × the retain model's utility):")
    print("\n".join(trial_summary(args.db, args.benchmark, args.objective)))
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
