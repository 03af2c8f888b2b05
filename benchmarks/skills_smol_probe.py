"""Which skills SmolLM2-135M-Instruct has, as it is: the search behind ``skills-smol``.

    nice -n 19 .venv/bin/python benchmarks/skills_smol_probe.py --count 200 --threads 1

Each candidate's questions (``--count`` of them, or all of a smaller skill; drawn from
``numpy.random.default_rng([seed, 12])``) go to the model in its chat template, answered
greedily by ``LanguageTask.generate`` as the benchmark's metrics read them. Two prompt forms:
the bare question asking for the answer alone (``plain``), and the question with a cue that
begins the assistant's turn (``cue``, as ``data.skills.SMOL_SKILLS``). Printed: a markdown row
per skill and form, the percent answered right (``metrics.skills.normalise``: first line, final
full stop dropped) and the first three answers.

    nice -n 19 .venv/bin/python benchmarks/skills_smol_probe.py --ksd 1,0.5,0.2 --threads 1

With ``--ksd``: instead, KSD's detector on skills-smol (fitted as ``unlearn`` fits it, on
the 40 forget questions) and, for each h, the percent of each skill's held-out prompts on
which it abstains by the last prompt token (so the answer is the refusal): one forward pass
per split, no generation."""
from __future__ import annotations

import argparse

import numpy as np
import torch

from unlearnbench.data.skills import SMOL_SKILLS, WORDS, chat_prompt
from unlearnbench.data.text import TextBundle, text_split
from unlearnbench.metrics.skills import normalise
from unlearnbench.models.pretrained import load_hf_model, smollm2_path
from unlearnbench.methods.ksd import down_proj, keys_of
from unlearnbench.scenarios import build_scenario
from unlearnbench.tasks.language import LanguageTask
from unlearnbench.unlearning import unlearn

FRENCH = {"dog": "chien", "cat": "chat", "house": "maison", "water": "eau", "book": "livre",
          "tree": "arbre", "car": "voiture", "bread": "pain", "apple": "pomme",
          "friend": "ami", "sun": "soleil", "moon": "lune", "milk": "lait", "door": "porte",
          "city": "ville", "day": "jour", "night": "nuit", "sea": "mer", "horse": "cheval",
          "bird": "oiseau", "flower": "fleur", "table": "table", "chair": "chaise",
          "school": "école", "king": "roi", "fish": "poisson", "hand": "main",
          "head": "tête", "red": "rouge", "green": "vert"}
ANTONYMS = {"hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "up": "down",
            "old": "new", "light": "dark", "open": "closed", "high": "low", "early": "late",
            "hard": "soft", "rich": "poor", "wet": "dry", "full": "empty", "strong": "weak",
            "long": "short", "good": "bad", "clean": "dirty", "left": "right", "win": "lose",
            "true": "false", "inside": "outside", "heavy": "light", "day": "night",
            "push": "pull", "love": "hate", "thick": "thin", "loud": "quiet", "young": "old",
            "first": "last"}


def _words(table: dict, question: str, cue: str):
    words = sorted(table)
    return len(words), lambda i: (question.format(w=words[i]), cue.format(w=words[i]),
                                  " " + table[words[i]])


def _triple(i: int) -> str:
    n = len(WORDS)
    return " ".join([WORDS[i // n ** 2], WORDS[i // n % n], WORDS[i % n]])


# skill -> (number of questions, item -> (question, cue, answer)), as ``SMOL_SKILLS``
CANDIDATES = {
    **SMOL_SKILLS,
    "addition_1digit": (81, lambda i: (f"What is {1 + i // 9} + {1 + i % 9}?",
                                       f"{1 + i // 9} + {1 + i % 9} =", f" {2 + i // 9 + i % 9}")),
    "addition_2digit": (8100, lambda i: (f"What is {10 + i // 90} + {10 + i % 90}?",
                                         f"{10 + i // 90} + {10 + i % 90} =",
                                         f" {20 + i // 90 + i % 90}")),
    "multiplication_2x1": (160, lambda i: (f"What is {10 + i // 8} times {2 + i % 8}?",
                                           f"{10 + i // 8} times {2 + i % 8} is",
                                           f" {(10 + i // 8) * (2 + i % 8)}")),
    "uppercase": (len(WORDS) ** 3, lambda i: (f"Write these words in capital letters: "
                                              f"{_triple(i)}", "In capital letters:",
                                              " " + _triple(i).upper())),
    "french": _words(FRENCH, "Translate the English word '{w}' into French.",
                     "In French, '{w}' is"),
    "antonym": _words(ANTONYMS, "What is the opposite of '{w}'?", "The opposite of '{w}' is"),
}
PLAIN = " Reply with the answer only."


@torch.no_grad()
def ksd_abstentions(hs: list[float]) -> None:
    scenario = build_scenario("skills-smol", 0)
    model, _ = unlearn(scenario, "ksd", seed=0)
    inner = model.model
    print("| h | held-out times table abstained % | held-out copies abstained % |")
    print("|---|---|---|")
    detected = {h: {} for h in hs}
    for split in ("forget_test", "retain_test"):
        keys, masks, last = [], [], []
        for batch in scenario.task.batches(scenario.splits[split], 16):
            _, batch_keys = keys_of(inner, down_proj(inner, model.layer),
                                    input_ids=batch.input_ids,
                                    attention_mask=batch.attention_mask)
            keys.append(batch_keys)
            masks.append(batch.attention_mask)
            last.append((batch.targets != -100).int().argmax(1))
        for h in hs:
            model.key_h.fill_(h)
            hits = [model.detect(k, m)[torch.arange(len(i)), i]
                    for k, m, i in zip(keys, masks, last)]
            detected[h][split] = 100 * torch.cat(hits).float().mean().item()
    for h in hs:
        print(f"| {h:g} | {detected[h]['forget_test']:.1f} | {detected[h]['retain_test']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skills", default=",".join(CANDIDATES))
    parser.add_argument("--forms", default="plain,cue")
    parser.add_argument("--ksd", help="comma-separated h values: KSD's abstentions instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.ksd:
        return ksd_abstentions([float(h) for h in args.ksd.split(",")])
    model, tokenizer = load_hf_model(str(smollm2_path()))
    print("| skill | form | questions | example prompt (user turn / cue) | right % | answers "
          "(first 3; reference) |")
    print("|---|---|---|---|---|---|")
    for skill in args.skills.split(","):
        size, make = CANDIDATES[skill]
        rng = np.random.default_rng([args.seed, 12])
        items = rng.choice(size, min(size, args.count), replace=False)
        questions = [make(int(i)) for i in items]
        for form in args.forms.split(","):
            records = [{"prefix": chat_prompt(q + PLAIN, tokenizer) if form == "plain"
                        else chat_prompt(q, tokenizer) + cue, "continuation": answer}
                       for q, cue, answer in questions]
            bundle = TextBundle("probe", {"forget": text_split("forget", records),
                                          "retain": text_split("retain", [], [])})
            task = LanguageTask(bundle, tokenizer, lambda seed: model, max_new_tokens=16)
            answers = task.generate(model, bundle.splits["forget"], batch_size=50)
            truth = [answer for _, _, answer in questions]
            right = np.mean([normalise(a) == normalise(t) for a, t in zip(answers, truth)])
            q, cue, _ = questions[0]
            example = q + PLAIN if form == "plain" else f"{q} / {cue}"
            shown = "; ".join(f"{a!r} ({t.strip()})" for a, t in list(zip(answers, truth))[:3])
            print(f"| {skill} | {form} | {len(records)} | {example} | {100 * right:.1f} | "
                  f"{shown.replace('|', '/')} |", flush=True)


if __name__ == "__main__":
    main()
