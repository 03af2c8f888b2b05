"""Calibration of a language benchmark's metrics on its built-in models, before any method is
ranked with them.

    .venv/bin/python benchmarks/calibrate.py --benchmark entities-forget05 --seeds 5 \
        --db /tmp/calib.db [--cache-dir .unlearnbench-cache] [--threads 1]

Runs the no-op ``original`` (seed 0) and ``retrain_independent`` (seeds 0..N-1: retrained
models independent of the reference) through the runner into the store, evaluates the
reference (the retain model) itself, prints one markdown table (a row per metric, a column
per model) and PASS / FAIL / SKIP (a metric the benchmark lacks) per check:

- null: independent retrains are exact unlearning, so their forget quality (a KS p-value)
  should be at least 0.05 for most seeds, and their truth ratios, probabilities and PrivLeak
  should lie near the reference's;
- separation: the original's forget quality far below 0.05 and its forget truth ratio
  clearly below the reference's and every independent retrain's;
- utility: the original's and the reference's model utility far from 0 and within 10% of each
  other, and each of its nine components far from 0;
- PrivLeak: the original strongly negative (MUSE's target on news scores near -100).

On a MUSE corpus (news, books: no truth ratios, no model utility, so those checks SKIP) the
same questions are asked of MUSE's criteria: VerbMem and KnowMem on forget (the null near the
reference, the original clearly above both), KnowMem on retain (the null near the reference;
the original's within 10% of the reference's and far from 0) and PrivLeak.

Exits 1 if a check fails."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import torch

from unlearnbench.cache import ModelCache, default_cache_dir
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.metrics.tofu import UTILITY
from unlearnbench.registry import metrics
from unlearnbench.sweep.jobs import applicable, plan, scenario_cache
from unlearnbench.sweep.grid import run_grid
from unlearnbench.scenarios import build_scenario, get_spec, load_data
from unlearnbench.store import Store

NEAR = ["forget_truth_ratio", "forget_prob", "retain_prob", "privleak"]
METRICS = list(dict.fromkeys(["forget_quality", *NEAR, "model_utility", *UTILITY]))
# MUSE's memorisation metrics (ROUGE-L F1 x100), asked for only where the data has their
# splits: a job's key holds the list of metrics, so the entities' stored runs keep theirs.
MUSE = ["verbmem_forget", "knowmem_forget", "knowmem_retain"]
MEMORISED = ["verbmem_forget", "knowmem_forget"]

# Under the null a p-value is uniform, so 95% of seeds are expected at or above 0.05; with
# 5 seeds one below passes and two fail (a chance of 2% for a true null).
NULL_FRACTION = 0.8
# "Far below 0.05": ten times below.
SEPARATED_QUALITY = 0.005
# How far from the reference an independent retrain may land: truth ratios and probabilities
# lie in [0, 1]; PrivLeak is in points on a -100..100 scale.
TOLERANCE = {"forget_truth_ratio": 0.05, "forget_prob": 0.05, "retain_prob": 0.05,
             "privleak": 10.0,
             # ROUGE-L F1 x100: the 0.05 of the [0, 1] scores
             "verbmem_forget": 5.0, "knowmem_forget": 5.0, "knowmem_retain": 5.0}
# The margin by which the original's forget truth ratio must sit below the reference's, and
# its VerbMem and KnowMem on forget above (x100).
TRUTH_RATIO_MARGIN = 0.05
MEMORY_MARGIN = 5.0
UTILITY_RELATIVE = 0.10  # original and reference model utility within 10% of each other
FAR_FROM_ZERO = 0.1  # model utility and each of its components at least this
PRIVLEAK_TARGET = -50.0  # the original's PrivLeak at most this


@dataclass
class Check:
    name: str
    passed: bool | None  # None: a value the benchmark does not have (SKIP)
    detail: str

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]


def missing(*values) -> bool:
    return any(v is None for v in values)


def null_forget_quality(null: list[dict]) -> Check:
    values = [run.get("forget_quality") for run in null]
    if not values or missing(*values):
        return Check("null forget quality", None, "no forget quality")
    share = sum(v >= 0.05 for v in values) / len(values)
    return Check("null forget quality", share >= NULL_FRACTION,
                 f"{share:.0%} of {len(values)} seeds >= 0.05 (need {NULL_FRACTION:.0%})")


def near_reference(metric: str, reference: dict, null: list[dict]) -> Check:
    values = [run.get(metric) for run in null]
    if not values or missing(reference.get(metric), *values):
        return Check(f"null {metric}", None, f"no {metric}")
    worst = max(abs(v - reference[metric]) for v in values)
    return Check(f"null {metric}", worst <= TOLERANCE[metric],
                 f"largest distance to the reference {worst:.3g} (allowed {TOLERANCE[metric]:g})")


def separation_quality(original: dict) -> Check:
    value = original.get("forget_quality")
    if value is None:
        return Check("original forget quality", None, "no forget quality")
    return Check("original forget quality", value < SEPARATED_QUALITY,
                 f"{value:.2g} (need < {SEPARATED_QUALITY:g})")


def separation_truth_ratio(original: dict, reference: dict, null: list[dict]) -> Check:
    metric = "forget_truth_ratio"
    values = [run.get(metric) for run in null]
    if missing(original.get(metric), reference.get(metric), *values):
        return Check("original forget truth ratio", None, f"no {metric}")
    ceiling = min([reference[metric] - TRUTH_RATIO_MARGIN, *values])
    return Check("original forget truth ratio", original[metric] < ceiling,
                 f"{original[metric]:.3f} (need < {ceiling:.3f}: the reference's "
                 f"{reference[metric]:.3f} - {TRUTH_RATIO_MARGIN:g}, and every null value)")


def separation_memory(metric: str, original: dict, reference: dict, null: list[dict]) -> Check:
    """The original remembers the forget set: its VerbMem or KnowMem there is above the
    reference's by the margin, and above every independent retrain's."""
    values = [run.get(metric) for run in null]
    if missing(original.get(metric), reference.get(metric), *values):
        return Check(f"original {metric}", None, f"no {metric}")
    floor = max([reference[metric] + MEMORY_MARGIN, *values])
    return Check(f"original {metric}", original[metric] > floor,
                 f"{original[metric]:.1f} (need > {floor:.1f}: the reference's "
                 f"{reference[metric]:.1f} + {MEMORY_MARGIN:g}, and every null value)")


def utility(original: dict, reference: dict) -> Check:
    ours, theirs = original.get("model_utility"), reference.get("model_utility")
    if missing(ours, theirs):
        return Check("model utility", None, "no model utility")
    low = [f"{name} of the {who}" for who, values in (("original", original),
                                                       ("reference", reference))
           for name in UTILITY if values.get(name) is None or values[name] < FAR_FROM_ZERO]
    relative = abs(ours - theirs) / theirs if theirs else float("inf")
    passed = relative <= UTILITY_RELATIVE and min(ours, theirs) >= FAR_FROM_ZERO and not low
    detail = (f"{ours:.3f} vs {theirs:.3f}: {relative:.1%} apart (allowed "
              f"{UTILITY_RELATIVE:.0%}); " + (f"below {FAR_FROM_ZERO:g}: {', '.join(low)}" if low
                                              else f"all {len(UTILITY)} components >= "
                                                   f"{FAR_FROM_ZERO:g}"))
    return Check("model utility", passed, detail)


def retain_knowledge(original: dict, reference: dict) -> Check:
    """MUSE's utility: KnowMem on retain, the original's within 10% of the reference's and
    both far from 0 (on the x100 scale)."""
    metric = "knowmem_retain"
    ours, theirs = original.get(metric), reference.get(metric)
    if missing(ours, theirs):
        return Check("KnowMem on retain", None, f"no {metric}")
    relative = abs(ours - theirs) / theirs if theirs else float("inf")
    floor = 100 * FAR_FROM_ZERO
    return Check("KnowMem on retain", relative <= UTILITY_RELATIVE and min(ours, theirs) >= floor,
                 f"{ours:.1f} vs {theirs:.1f}: {relative:.1%} apart (allowed "
                 f"{UTILITY_RELATIVE:.0%}; both at least {floor:g})")


def privleak_target(original: dict) -> Check:
    value = original.get("privleak")
    if value is None:
        return Check("original PrivLeak", None, "no privleak")
    return Check("original PrivLeak", value <= PRIVLEAK_TARGET,
                 f"{value:.1f} (need <= {PRIVLEAK_TARGET:g})")


def checks(reference: dict, original: dict, null: list[dict]) -> list[Check]:
    """Every check on metric values ({metric: value or None}) of the reference, the original
    and the independent retrains (one dict per seed)."""
    return [null_forget_quality(null),
            *(near_reference(metric, reference, null) for metric in NEAR + MUSE),
            separation_quality(original), separation_truth_ratio(original, reference, null),
            *(separation_memory(metric, original, reference, null) for metric in MEMORISED),
            utility(original, reference), retain_knowledge(original, reference),
            privleak_target(original)]


def requested(spec) -> list[str]:
    """METRICS, and MUSE's metrics where the benchmark's data has the splits they read."""
    splits = load_data(spec).splits
    return METRICS + [name for name in MUSE
                      if all(split in splits for split in metrics.get(name).attributes["splits"])]


def number(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"


def table(columns: dict[str, dict]) -> str:
    """A markdown table: a row per metric, a column per model."""
    lines = ["| metric | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for metric in METRICS + MUSE:
        if all(values.get(metric) is None for values in columns.values()):
            continue
        cells = [number(values.get(metric)) for values in columns.values()]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reference_values(spec, seed: int, cache: ModelCache, names: list[str]) -> dict:
    """The retain model's values against itself, through the runner's shared outputs."""
    scenario = build_scenario(spec, seed, cache)
    names = applicable(tuple(names), scenario)
    results = evaluate(scenario, scenario.reference, names=names,
                       cache=scenario_cache(scenario, cache))
    return {name: result.value for name, result in results.items()}


def progress(job, record) -> None:
    print(f"{job.method} seed {job.seed}: {record.status} {record.error or ''}",
          file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="entities-forget05")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--db", default="calibration.db")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = get_spec(args.benchmark)
    cache = ModelCache(args.cache_dir or default_cache_dir())
    seeds = list(range(args.seeds))
    names = requested(spec)
    original_job, = plan([args.benchmark], ["original"], [0], metric_names=names)
    null_jobs = plan([args.benchmark], ["retrain_independent"], seeds, metric_names=names)
    store = Store(args.db)
    run_grid([original_job, *null_jobs], store, cache, on_done=progress)
    stored = {run["key"]: run for run in store.runs(spec.name)}
    runs = [stored[job.key] for job in (original_job, *null_jobs)]
    failed = [run for run in runs if run["status"] != "finished"]
    for run in failed:
        print(f"{run['method']} seed {run['seed']} failed: {run['error']}", file=sys.stderr)
    if failed:
        return 1
    original, null = runs[0]["metrics"], [run["metrics"] for run in runs[1:]]
    # The reference of seed 0: where the benchmark fixes its models, the only one. Without a
    # fixed model seed each run seed has its own (the stored forget quality and PrivLeak of
    # that seed compare with it), and the table compares every column with seed 0's.
    reference = reference_values(spec, 0, cache, names)
    columns = {"reference": reference, "original": original,
               **{f"independent {job.seed}": values for job, values in zip(null_jobs, null)}}
    print(f"\n{spec.name}: reference (retain model), original and {len(seeds)} independent "
          "retrains\n")
    print(table(columns))
    print()
    results = checks(reference, original, null)
    for check in results:
        print(f"- {check.verdict} {check.name}: {check.detail}")
    return 1 if any(check.passed is False for check in results) else 0


if __name__ == "__main__":
    sys.exit(main())
