"""Why RMU moves a language model or does not: the scale of the activations at the steering
layer, how far apart the forget and retain activations are there, and, for a few settings,
RMU's two loss terms and the forget and retain answers' NLL along the steps.

    nice -n 19 .venv/bin/python benchmarks/rmu_probe.py --benchmark entities-smol-forget05 \
        --steps 25 --every 5 --set lr=5e-5,alpha=1200 --set lr=5e-5,alpha=0 --set lr=1e-3,alpha=1200

The target comes from the model cache (``target_recall.target_scenario``: its retain model
is not trained). Each ``--set`` is one RMU run (the benchmark's RMU parameters, then these) from the cached
target, observed every ``--every`` steps (an observation does not change the run: its random
draws come from forked generators). Prints markdown tables."""
from __future__ import annotations

import argparse

import numpy as np
import torch

from unlearnbench.cache import ModelCache, default_cache_dir
from target_recall import target_scenario
from unlearnbench.methods._shared import decoder_layers
from unlearnbench.methods.rmu import activation_mse, answer_mask, block_output, pick_layer
from unlearnbench.spec_names import get_spec
from unlearnbench.unlearning import benchmark_params, unlearn


def answer_activations(model, block, task, split, batch_size=8) -> torch.Tensor:
    """(N, hidden): the block's outputs at every scored answer position of ``split``."""
    rows = []
    with torch.no_grad():
        for batch in task.batches(split, batch_size):
            acts = block_output(model, block, task, batch)
            rows.append(acts[answer_mask(batch).bool()])
    return torch.cat(rows).float()


def layer_table(model, task, forget, retain) -> str:
    """Per block: the answer positions' mean L2 norm and largest coordinate, and the cosine
    between the mean forget and the mean retain activation."""
    _, blocks = decoder_layers(model)
    lines = ["| block | mean norm (forget) | mean norm (retain) | max abs coordinate | "
             "cos(mean forget, mean retain) |", "|---|---|---|---|---|"]
    for i, block in enumerate(blocks):
        f = answer_activations(model, block, task, forget)
        r = answer_activations(model, block, task, retain)
        cos = torch.nn.functional.cosine_similarity(f.mean(0), r.mean(0), dim=0).item()
        lines.append(f"| {i} | {f.norm(dim=1).mean():.1f} | {r.norm(dim=1).mean():.1f} | "
                     f"{max(f.abs().max(), r.abs().max()):.1f} | {cos:.4f} |")
    return "\n".join(lines)


def parse_set(text: str) -> dict:
    pairs = (item.split("=", 1) for item in text.split(",") if item)
    return {key: float(value) if key not in ("epochs", "layer") else int(value)
            for key, value in pairs}


def observe(scenario, layer, control_norm, forget, retain, rows):
    """An observer recording, at the steering layer, the forget activations' mean norm (RMU
    pulls them toward c·u, of norm c) and the retain term (the MSE to the original's
    activations, before α), and the forget and retain answers' mean NLL."""
    task = scenario.task
    _, ref_blocks = decoder_layers(scenario.original)

    def nll(model, split):
        with torch.no_grad():
            return task.answer_nll(model, split).mean().item()

    def retain_term(model):
        _, blocks = decoder_layers(model)
        values = []
        with torch.no_grad():
            for batch in task.batches(retain, 8):
                acts = block_output(model, blocks[layer], task, batch)
                frozen = block_output(scenario.original, ref_blocks[layer], task, batch)
                values.append(activation_mse(acts, frozen, answer_mask(batch)).item())
        return sum(values) / len(values)

    def record(model, step):
        model.eval()
        _, blocks = decoder_layers(model)
        acts = answer_activations(model, blocks[layer], task, forget)
        rows.append({"step": step, "forget norm": acts.norm(dim=1).mean().item(),
                     "target norm": control_norm, "retain term": retain_term(model),
                     "forget NLL": nll(model, forget), "retain NLL": nll(model, retain)})
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="entities-smol-forget05")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], dest="settings")
    parser.add_argument("--retain-sample", type=int, default=40,
                        help="retain questions observed (the NLL and the retain term)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = get_spec(args.benchmark)
    scenario = target_scenario(spec, args.seed, ModelCache(default_cache_dir()))
    task, forget = scenario.task, scenario.forget
    retain = scenario.retain.subset(np.arange(min(args.retain_sample, len(scenario.retain))),
                                    "retain")
    print(f"## {spec.name}: activations at each block's output, answer positions\n")
    print(layer_table(scenario.original, task, forget, retain))
    _, blocks = decoder_layers(scenario.original)
    for text in args.settings or [""]:
        params = {**benchmark_params(spec, "rmu", None), **parse_set(text)}
        layer = pick_layer(len(blocks), params.get("layer"))
        rows: list[dict] = []
        recorder = observe(scenario, layer, params.get("steering", 6.5), forget, retain, rows)
        recorder(scenario.original, 0)
        unlearn(scenario, "rmu", params, max_steps=args.steps,
                observer=recorder, every=args.every)
        print(f"\n## rmu {params} (steering layer {layer})\n")
        print("| " + " | ".join(rows[0]) + " |")
        print("|" + "---|" * len(rows[0]))
        for row in rows:
            print("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v)
                                    for v in row.values()) + " |")


if __name__ == "__main__":
    main()
