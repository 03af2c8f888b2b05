"""Skills in question-answer form, generated offline: two synthetic ones a tiny Llama learns
(``skills-mini``), and ones SmolLM2-135M-Instruct has as it is (``skills-smol``, below).

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
``numpy.random.default_rng([seed, 11])`` (skills-smol's from ``[seed, 12]``)."""
from __future__ import annotations

import dataclasses

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


# ---------------------------------------------------------------- skills-smol: a real model's
# Skills SmolLM2-135M-Instruct has as it is (the search: benchmarks/skills_smol_probe.py and
# docs/benchmarks.md). Each is a finite space of questions, item i -> (question, cue, answer):
# the cue begins the assistant's turn (asked for the number alone, the model writes a sentence
# around it instead, or a worked example), and the answer continues it. A data set draws its
# items without replacement, so no question is both trained and tested.
def _multiplication(i: int) -> tuple[str, str, str]:
    a, b = 2 + i // 11, 2 + i % 11
    return f"What is {a} times {b}?", f"{a} times {b} is", f" {a * b}"


def _next_number(i: int) -> tuple[str, str, str]:
    return f"What number comes after {i + 1}?", f"The number after {i + 1} is", f" {i + 2}"


def _copy(i: int) -> tuple[str, str, str]:
    n = len(WORDS)
    words = " ".join([WORDS[i // n ** 2], WORDS[i // n % n], WORDS[i % n]])
    return f'Repeat after me: "{words}"', '"', words + '"'


# skill -> (number of questions, item -> question, cue, answer)
SMOL_SKILLS = {"multiplication": (11 * 11, _multiplication), "next_number": (998, _next_number),
               "copy": (len(WORDS) ** 3, _copy)}


def chat_prompt(question: str, tokenizer) -> str:
    """``question`` as the user turn of ``tokenizer``'s chat template, up to the assistant's
    answer; without the start token, which the task puts before every prompt."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                         tokenize=False, add_generation_prompt=True)
    start = tokenizer.bos_token
    return text[len(start):] if start and text.startswith(start) else text


def smol_record(skill: str, item: int) -> dict:
    """A question of ``skill`` as a prompt/answer pair; its ``prefix`` is the plain question
    and cue until ``with_chat_prompts`` puts the question in the model's chat template."""
    question, cue, answer = SMOL_SKILLS[skill][1](item)
    return {"prefix": f"{question}\n{cue}", "continuation": answer, "query": question,
            "cue": cue, "skill": skill}


def with_chat_prompts(bundle: TextBundle, tokenizer) -> TextBundle:
    """The bundle with every record's question in ``tokenizer``'s chat template, followed by
    its cue."""
    return dataclasses.replace(bundle, splits={
        name: split.with_records([dict(r, prefix=chat_prompt(r["query"], tokenizer) + r["cue"])
                                  for r in split.records])
        for name, split in bundle.splits.items()})


@datasets.register("skills-smol", source="generated offline (skills of SmolLM2-135M-Instruct)")
def load_skills_smol(forget: str = "multiplication", retain: str = "copy", n_train: int = 40,
                     n_test: int = 80, seed: int = 0) -> TextBundle:
    """Questions of two skills a pretrained model has (``SMOL_SKILLS``), the ``forget`` one
    and the ``retain`` one: ``n_train`` for the methods and ``n_test`` held out, of each
    (multiplication, the times table from 2 to 12, has 121 questions in all)."""
    for name, value in (("forget", forget), ("retain", retain)):
        if value not in SMOL_SKILLS:
            raise UserError(f"{name}={value!r}: choose one of {', '.join(SMOL_SKILLS)}")
    if forget == retain:
        raise UserError(f"forget and retain are both {forget!r}: choose two different skills")
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{name}={value!r}: give a positive integer")
    for skill in (forget, retain):
        if n_train + n_test > SMOL_SKILLS[skill][0]:
            raise UserError(f"n_train + n_test = {n_train + n_test}, but {skill} has "
                            f"{SMOL_SKILLS[skill][0]} questions; ask for fewer")
    rng = np.random.default_rng([seed, 12])
    splits, start = {}, 0
    for skill, train, test in ((forget, "forget", "forget_test"),
                               (retain, "retain", "retain_test")):
        items = rng.choice(SMOL_SKILLS[skill][0], n_train + n_test, replace=False)
        for name, part in ((train, items[:n_train]), (test, items[n_train:])):
            records = [smol_record(skill, int(i)) for i in part]
            splits[name] = text_split(name, records, np.arange(start, start + len(part)))
            start += len(part)
    return TextBundle(f"skills-smol-{forget}-{retain}-{n_train}", splits, refusals=(REFUSAL,))
