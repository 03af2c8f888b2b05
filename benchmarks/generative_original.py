"""Does a generative benchmark's original draw what it is asked for? Trains (or loads) the
original of a benchmark, with the U-Net size and training epochs given, samples its prompt
grid, and prints how often the judges read each sample as its condition: on a style x object
grid the style and the object (digit) separately, which is what UA, IRA and CRA presume.

    .venv/bin/python benchmarks/generative_original.py --benchmark canvas-mnist-style \\
        [--width 32] [--levels 3] [--epochs 30] [--batch-size 32] [--seed 0]

The original is cached like any benchmark's (its key holds the U-Net size and the recipe),
so a setting tried here is the one `unlearnbench run` then finds. The retrained reference is
not trained. CPU seconds: training (from the model cache's metadata) and sampling with
judging."""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch


def main() -> None:
    from unlearnbench.cache import ModelCache
    from unlearnbench.data.styles import FACTORS
    from unlearnbench.scenarios import get_spec
    from unlearnbench.spec_names import load_data
    from unlearnbench.tasks.classification import ClassificationTask
    from unlearnbench.tasks.generation import JUDGE_MODEL, JUDGE_RECIPE, GenerationTask, \
        judged_data
    from unlearnbench.unlearning import train_cached

    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default="canvas-mnist-style")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--levels", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = get_spec(args.benchmark)
    options = dict(spec.model_options, **{k: v for k, v in (("width", args.width),
                                                             ("levels", args.levels)) if v})
    recipe = dataclasses.replace(spec.recipe, epochs=args.epochs or spec.recipe.epochs,
                                 batch_size=args.batch_size or spec.recipe.batch_size)
    spec = dataclasses.replace(spec, model_options=options, recipe=recipe)
    cache = ModelCache()
    data = load_data(spec)
    judges = []
    for judge_data in judged_data(data):
        judge_task = ClassificationTask(judge_data, JUDGE_MODEL, "cpu")
        judge, _ = train_cached(cache, judge_task,
                                dataclasses.replace(spec, model=JUDGE_MODEL, recipe=JUDGE_RECIPE),
                                judge_data.train, 0, "judge")
        judges.append((judge_task, judge))
    task = GenerationTask(data, spec.model, "cpu", judges, **spec.model_options)
    model, meta = train_cached(cache, task, spec, data.train, args.seed, "original")
    start = time.process_time()
    prompts = task.prompts(range(data.num_classes), task.samples_per_class, task.sample_seed)
    made = task.generate(model, prompts)
    sampling = time.process_time() - start
    parameters = sum(p.numel() for p in model.parameters())
    print(f"{args.benchmark} original, seed {args.seed}: U-Net {task.network} "
          f"({parameters} parameters), {recipe.epochs} epochs of batches of "
          f"{recipe.batch_size}; training "
          f"{meta.get('train_cpu_seconds', float('nan')):.0f} CPU-s; sampling and judging "
          f"{sampling:.0f} CPU-s ({len(prompts)} samples)")
    if task.grid is None:
        right = (made.predicted == made.conditions).float().mean().item()
        print(f"samples read as their class: {100 * right:.1f}%")
        return
    for factor in FACTORS:
        asked = task.grid.factor_values(made.conditions, factor)
        right = (asked == task.grid.factor_values(made.predicted, factor)).float().mean().item()
        print(f"samples read as their {factor}: {100 * right:.1f}%")


if __name__ == "__main__":
    main()
