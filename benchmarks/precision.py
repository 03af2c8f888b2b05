"""Mixed precision: wall time and quality of one benchmark in fp32, bf16 and fp16.

    .venv/bin/python benchmarks/precision.py [--benchmark digits-random10] [--device cpu]

For each precision, in a fresh model cache: build the scenario (trains the original and the
retrained reference in that precision), then unlearn with finetune and ga (seed 0) and
evaluate in float32. Prints a markdown table for docs/benchmarks.md."""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

import unlearnbench as ub
from unlearnbench.cache import ModelCache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="digits-random10")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", default="finetune,ga")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{args.benchmark} on {args.device}, torch {torch.__version__}\n")
    print("| precision | train original + retrain (s) | method | unlearn (s) | TA (%) | "
          "Avg. Gap |")
    print("|---|---|---|---|---|---|")
    for precision in ("fp32", "bf16", "fp16"):
        with tempfile.TemporaryDirectory() as cache_dir:
            start = time.perf_counter()
            scenario = ub.scenario(f"{args.benchmark}[precision={precision}]", seed=0,
                                   cache=ModelCache(cache_dir), device=args.device)
            build = time.perf_counter() - start
            for method in args.methods.split(","):
                model, timings = ub.unlearn(scenario, method)
                scores = ub.evaluate(scenario, model, ["ta", "avg_gap"],
                                     timings=timings)
                print(f"| {precision} | {build:.1f} | {method} | "
                      f"{timings['unlearn_seconds']:.2f} | {scores['ta'].value:.2f} | "
                      f"{scores['avg_gap'].value:.4f} |")


if __name__ == "__main__":
    main()
