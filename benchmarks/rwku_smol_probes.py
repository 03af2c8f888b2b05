"""Which of rwku-smol's probes SmolLM2-135M-Instruct answers: every probe of the built-in
targets (``data/rwku_smol.py``) answered greedily in RWKU's prompts in the model's chat
template and scored as ``metrics/rwku.py`` scores it (ROUGE-L recall x100 of the 30-token
answer). A probe counts as answered at recall above 50
(more than half of the answer's words).

    nice -n 19 .venv/bin/python benchmarks/rwku_smol_probes.py [--answers]

Prints a markdown table per target: FB and QA probes answered of written, mean recall of
FB, QA, AA and of the neighbour probes; ``--answers`` also lists each FB/QA probe's answer
and recall (what the choice of facts was made from)."""
from __future__ import annotations

import argparse

import numpy as np
import torch

from unlearnbench.cache import ModelCache
from unlearnbench.data.rwku import with_chat_template
from unlearnbench.data.rwku_smol import TARGETS, load_rwku_smol
from unlearnbench.metrics.rwku import first_tokens, rouge_recall
from unlearnbench.models.language import language_model_for
from unlearnbench.tasks.language import LanguageTask

ANSWERED = 50.0
SPLITS = ("rwku_forget_1", "rwku_forget_2", "rwku_forget_3", "rwku_neighbor_1",
          "rwku_neighbor_2")


def answered(values: list[float]) -> str:
    return f"{sum(v > ANSWERED for v in values)}/{len(values)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", action="store_true", help="list every FB/QA answer")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = load_rwku_smol()
    tokenizer, make_model = language_model_for("smollm2-135m", bundle, ModelCache())
    bundle = with_chat_template(bundle, tokenizer)
    task = LanguageTask(bundle, tokenizer, make_model, "cpu", model_name="smollm2-135m")
    model = task.fresh_model(0)
    # neighbour probes are counted under the target whose neighbour they are
    target_of = {subject: t.name for t in TARGETS for subject, _ in t.neighbours}
    scores: dict[str, dict[str, list[float]]] = {t.name: {} for t in TARGETS}
    for split in SPLITS:
        records = bundle.splits[split].records
        for record, answer in zip(records, task.generate(model, bundle.splits[split])):
            recall = 100.0 * rouge_recall(first_tokens(tokenizer, answer), record["continuation"])
            subject = target_of.get(record["subject"], record["subject"])
            scores[subject].setdefault(split, []).append(recall)
            if args.answers and split != "rwku_forget_3":
                print(f"{split} | {record['query']!r} | gold {record['continuation']!r} | "
                      f"{answer[:80]!r} | {recall:.0f}")
    print("| target | FB answered | QA answered | FB | QA | AA | neighbour FB+QA answered | "
          "neighbour All |\n|---|---|---|---|---|---|---|---|")
    for subject, by_split in scores.items():
        neighbour = by_split.get(SPLITS[3], []) + by_split.get(SPLITS[4], [])
        row = [answered(by_split.get(s, [])) for s in SPLITS[:2]]
        row += [f"{np.mean(by_split[s]):.0f}" if s in by_split else "" for s in SPLITS[:3]]
        row += [answered(neighbour), f"{np.mean(neighbour):.0f}" if neighbour else ""]
        print(f"| {subject} | " + " | ".join(row) + " |")
    for split in SPLITS:
        values = [v for by_split in scores.values() for v in by_split.get(split, [])]
        print(f"{split}: {len(values)} probes, mean recall {np.mean(values):.1f}")


if __name__ == "__main__":
    main()
