"""Two synthetic skills in question-answer form, generated offline (``skills-mini``).

A skill is a rule, not a set of facts: the model is trained on some of its questions and
scored on held-out ones, which it answers only if it learnt the rule. Both skills take three
words from a list of 40 (64,000 triples), so they differ only in what they ask:

- ``reversal`` (the skill to forget): "Reverse: cat sun map" -> "map sun cat";
- ``copy`` (the skill to keep): "Repeat: cat sun map" -> "cat sun map".

Two-digit addition ("What is 2 3 + 4 8?" -> "7 1", digits apart so each is a token) was
tried as the skill to forget: the 2-block tiny Llama, in the 20 epochs of 1500 questions a
skill that keep its training to CPU-minutes, answered 11% of its trained and 6% of held-out
addition questions (reversal: 100% and 98.5%), so it never had the skill to forget.

Splits: ``forget`` (the reversal questions trained on), ``retain`` (the copy questions
trained on), ``forget_test`` and ``retain_test`` (held-out questions of each skill: no word
triple of a test split is trained, in either skill). Everything is drawn from
``numpy.random.default_rng([seed, 11])``."""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..registry import datasets
from .text import TextBundle, text_split

WORDS = ["cat", "sun", "map", "cup", "pen", "box", "hat", "dog", "car", "bed", "egg", "fox",
         "jam", "key", "leg", "net", "owl", "pig", "rug", "toy", "van", "web", "yak", "zip",
         "ant", "bus", "cow", "fan", "gem", "ink", "kit", "log", "mud", "nut", "oak", "pot",
         "ram", "sky", "tea", "bag"]
REFUSAL = "I don't know."


def skill_record(skill: str, words: list[str]) -> dict:
    if skill == "reversal":
        return {"question": "Reverse: " + " ".join(words), "answer": " ".join(reversed(words)),
                "skill": skill}
    return {"question": "Repeat: " + " ".join(words), "answer": " ".join(words), "skill": skill}


@datasets.register("skills", source="generated offline (two synthetic skills)")
def load_skills(n_train: int = 1000, n_test: int = 200, seed: int = 0) -> TextBundle:
    """Three-word reversal (forget) and copy (retain): ``n_train`` trained and ``n_test``
    held-out questions of each skill, each on its own word triple; the refusal string is
    "I don't know."."""
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10000:
            raise UserError(f"{name}={value!r}: give an integer from 1 to 10000")
    rng = np.random.default_rng([seed, 11])
    triples = [[WORDS[int(t) // len(WORDS) ** 2], WORDS[int(t) // len(WORDS) % len(WORDS)],
                WORDS[int(t) % len(WORDS)]]
               for t in rng.choice(len(WORDS) ** 3, 2 * (n_train + n_test), replace=False)]
    splits, start = {}, 0
    for skill, train, test in (("reversal", "forget", "forget_test"),
                               ("copy", "retain", "retain_test")):
        for name, count in ((train, n_train), (test, n_test)):
            records = [skill_record(skill, words) for words in triples[start:start + count]]
            splits[name] = text_split(name, records, np.arange(start, start + count))
            start += count
    return TextBundle(f"skills-{n_train}", splits, refusals=(REFUSAL,))
