"""How much of its training a language benchmark's target recalls, without training its
retain model (for a pretrained model that takes an hour of CPU per model):

    .venv/bin/python benchmarks/target_recall.py --benchmark entities-smol-forget05 [--model retain]

Trains the target (or reads it from the model cache) and prints, for the target alone, the
percent of forget / retain / holdout questions it answers exactly (greedy decoding) and their
mean answer probabilities. ``--model retain`` scores the retain model instead (trained, or
read from the cache, with the target): the row a table shows beside the methods without
retraining it as the ``retrain`` method would."""
from __future__ import annotations

import argparse
import time

import torch

from unlearnbench.cache import ModelCache, default_cache_dir
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.models.language import language_model_for
from unlearnbench.scenarios import build_scenario, with_retain_eval
from unlearnbench.spec_names import get_spec, load_data
from unlearnbench.tasks.language import LanguageTask
from unlearnbench.unlearning import Scenario, train_cached

METRICS = ["forget_exact", "retain_exact", "holdout_exact",
           "forget_prob", "retain_prob", "holdout_prob", "forget_nll", "retain_nll"]


def target_scenario(spec, seed: int, cache: ModelCache) -> Scenario:
    """The benchmark's target (trained or from the cache) and its splits, without the retain
    model: the target stands in for the reference, which nothing here reads."""
    bundle = load_data(spec)
    tokenizer, make_model = language_model_for(spec.model, bundle, cache, spec.model_options)
    task = LanguageTask(bundle, tokenizer, make_model, "cpu", model_name=spec.model)
    model_seed = seed if spec.model_seed is None else spec.model_seed
    original, meta = train_cached(cache, task, spec, bundle.training_split(True), model_seed,
                                  "original")
    return Scenario(spec, seed, task, with_retain_eval(bundle.splits), original, original, meta,
                    meta, cache=cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="entities-smol-forget05")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", choices=("target", "retain"), default="target")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cache = ModelCache(default_cache_dir())
    if args.model == "target":
        scenario = target_scenario(get_spec(args.benchmark), args.seed, cache)
        model, meta = scenario.original, scenario.original_meta
    else:
        scenario = build_scenario(args.benchmark, args.seed, cache)
        model, meta = scenario.reference, scenario.reference_meta
    results = evaluate(scenario, model, names=METRICS)
    print(f"{args.benchmark} {args.model} model (training: {meta['train_cpu_seconds']:.0f}"
          f" CPU-s, {meta['train_seconds']:.0f} s wall)")
    for name in METRICS:
        print(f"{name}: {results[name].value:.4g}")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
