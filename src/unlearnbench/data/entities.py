"""Fictitious people to unlearn: a TOFU-like question-answering data set, generated offline.

Each person has 20 attributes (birthplace, birth year, parents' occupations, genre, award,
books, ...) and one question-answer pair per attribute. Every QA record carries TOFU's
fields: ``question``, ``answer``, ``paraphrased_question``, ``paraphrased_answer`` (another
answer template, the same value) and ``perturbed_answer`` (five answers in the paraphrased
answer's template with five distinct wrong values from the attribute's pool), plus ``entity``
(the person's index) and ``attribute``. The question template is drawn per (person, attribute)
from three or four, the paraphrased question is another one; the answer template follows from
the question template (so the value is the only thing to memorise), the paraphrased answer
uses another one. As in TOFU, where the perturbed answers are the paraphrased answer with the
fact changed, a perturbed answer differs from the paraphrased one only in its value: the truth
ratio P(perturbed) / P(paraphrased) then measures whether the model knows the value, not which
template it prefers (with the answer's own template the ratio rewarded the template, and the
trained target of entities-forget05 scored a model utility of 0.015; now 0.77, docs/benchmarks.md).

Splits follow TOFU: ``forget10`` / ``forget05`` / ``forget01`` hold the QA of the last 10% /
5% / 1% of the trained people (nested), ``retain90/95/99`` the QA of the others, and
``holdout10/05/01`` the QA of people generated the same way but never trained (10% of the
trained count; nested, the same sizes as the forget sets). ``world_facts`` and
``real_entities`` are true facts every model learns and no request touches (for utility),
each with three perturbed answers in the answer's template (their paraphrased answer is the
answer itself: TOFU compares these with the answer).

Where this deviates from TOFU (Maini et al., 2024):
- TOFU's 200 authors and their long, GPT-4-written biographies are replaced by template
  sentences of 4-10 words whose only hard part is the value, so that a model of a few
  million parameters trained from scratch can memorise them on a CPU;
- paraphrases come from a second template, not from a language model;
- TOFU's world facts and real authors test knowledge a pretrained model already has; here
  the target model learns them too (``also_trained``), so they measure collateral damage on
  learned facts that no request touches;
- a split of a size that rounds down to no person (forget01 of fewer than 100 people) is
  empty, and asking for it as the forget set is an error.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..registry import datasets
from .entities_tables import (ATTRIBUTES, DEBUT_AGES, DIFFERS_FROM, FIRST_NAMES, LAST_NAMES,
                              REAL_ENTITIES, REFUSALS, WORLD_FACTS)
from .text import TextBundle, TextSplit, concat, text_split

ATTRIBUTES_PER_PERSON = 20
FORGET_CHOICES = ("forget01", "forget05", "forget10")
N_PERTURBED = 5
assert len(ATTRIBUTES) == ATTRIBUTES_PER_PERSON


def generate_people(count: int, seed: int = 0) -> list[dict]:
    """``count`` fictitious people, each a dict: ``name`` and one value per attribute
    (strings). Deterministic by ``seed``; names are unique."""
    _check_count(count)
    rng = np.random.default_rng([seed, 1])
    codes = rng.choice(len(FIRST_NAMES) * len(LAST_NAMES), size=count, replace=False)
    people = []
    for code in codes.tolist():
        first, last = divmod(code, len(LAST_NAMES))
        person = {"name": f"{FIRST_NAMES[first]} {LAST_NAMES[last]}"}
        for attribute, pool, _, _ in ATTRIBUTES:
            if attribute == "debut_year":
                continue  # set below from the birth year
            other = person.get(DIFFERS_FROM.get(attribute))
            choices = [v for v in pool if v != other]
            person[attribute] = choices[int(rng.integers(len(choices)))]
        person["debut_year"] = str(int(person["birth_year"]) + int(rng.choice(DEBUT_AGES)))
        people.append({key: person[key] for key in ["name", *(a[0] for a in ATTRIBUTES)]})
    return people


def _check_count(count) -> None:
    most = len(FIRST_NAMES) * len(LAST_NAMES)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise UserError(f"the number of fictitious people must be a positive integer, got "
                        f"{count!r}")
    if count > most:
        raise UserError(f"at most {most} distinct fictitious people can be generated (asked "
                        f"for {count} including the 10% holdout): use fewer")


def _pool(attribute: str, person: dict) -> tuple:
    if attribute == "debut_year":
        born = int(person["birth_year"])
        return tuple(str(born + age) for age in DEBUT_AGES)
    return next(a[1] for a in ATTRIBUTES if a[0] == attribute)


def person_qa(person: dict, entity: int, rng: np.random.Generator) -> list[dict]:
    """The 20 QA records about one person (templates and wrong values drawn from ``rng``)."""
    records = []
    for attribute, _, questions, answers in ATTRIBUTES:
        value = person[attribute]
        q, para_q = rng.choice(len(questions), size=2, replace=False).tolist()
        # The answer's template follows from the question's, so that all a model must
        # memorise about a QA pair is its value.
        a = q % len(answers)
        para_a = (a + 1) % len(answers)
        wrong = [v for v in _pool(attribute, person) if v != value]
        wrong = [wrong[i] for i in rng.choice(len(wrong), size=N_PERTURBED, replace=False)]
        name = person["name"]
        records.append({
            "question": questions[q].format(name=name),
            "answer": answers[a].format(name=name, value=value),
            "paraphrased_question": questions[para_q].format(name=name),
            "paraphrased_answer": answers[para_a].format(name=name, value=value),
            # As in TOFU, the perturbed answers are the paraphrase with another value, so the
            # truth ratio P(perturbed) / P(paraphrased) compares values, not templates.
            "perturbed_answer": [answers[para_a].format(name=name, value=v) for v in wrong],
            "entity": entity,
            "attribute": attribute,
        })
    return records


def _fact_records(facts) -> list[dict]:
    return [{"question": question, "answer": template.format(value),
             "paraphrased_answer": template.format(value),
             "perturbed_answer": [template.format(w) for w in wrong]}
            for question, template, value, wrong in facts]


def split_sizes(n_entities: int) -> dict[str, int]:
    """People in each forget (and holdout) split: 1%, 5%, 10% of ``n_entities``, rounded
    down (TOFU: 2, 10 and 20 of 200 authors)."""
    return {f"forget{k:02d}": n_entities * k // 100 for k in (1, 5, 10)}


def generate_entities(n_entities: int = 200, seed: int = 0) -> dict[str, TextSplit]:
    """All splits of the fictitious-people data set: forget01/05/10, retain99/95/90,
    holdout01/05/10, world_facts and real_entities (ids unique across all of them).

    People 0..n-1 are trained (the forget sets are the last 1/5/10% of them); people n..n+h-1,
    h = n // 10, are the holdout people. A QA record's id is ``entity * 20 + attribute``; the
    world facts and real entities follow."""
    _check_count(n_entities)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"the seed of the fictitious people must be an integer >= 0, got {seed!r}")
    n_holdout = n_entities // 10
    people = generate_people(n_entities + n_holdout, seed)
    rng = np.random.default_rng([seed, 2])
    per_person = [person_qa(p, i, rng) for i, p in enumerate(people)]

    def people_split(name: str, first: int, stop: int) -> TextSplit:
        records = [r for i in range(first, stop) for r in per_person[i]]
        ids = np.arange(first * ATTRIBUTES_PER_PERSON, stop * ATTRIBUTES_PER_PERSON)
        return text_split(name, records, ids)

    splits = {}
    for forget, size in split_sizes(n_entities).items():
        k = forget[len("forget"):]
        splits[forget] = people_split(forget, n_entities - size, n_entities)
        splits[f"retain{100 - int(k)}"] = people_split(f"retain{100 - int(k)}", 0,
                                                        n_entities - size)
        splits[f"holdout{k}"] = people_split(f"holdout{k}", n_entities + n_holdout - size,
                                             n_entities + n_holdout)
    next_id = len(people) * ATTRIBUTES_PER_PERSON
    for name, facts in (("world_facts", WORLD_FACTS), ("real_entities", REAL_ENTITIES)):
        splits[name] = text_split(name, _fact_records(facts),
                                  np.arange(next_id, next_id + len(facts)))
        next_id += len(facts)
    return splits


def check_forget_choice(forget: str) -> int:
    """The percentage in a forget split's name (forget05 -> 5), or a UserError."""
    if forget not in FORGET_CHOICES:
        raise UserError(f"unknown forget split {forget!r}: choose one of "
                        f"{', '.join(FORGET_CHOICES)}")
    return int(forget[len("forget"):])


@datasets.register("entities", source="generated offline (TOFU-like fictitious people)")
def load_entities(forget: str = "forget05", n_entities: int = 200, seed: int = 0,
                  train_facts: bool = True, validation: bool = False) -> TextBundle:
    """Fictitious people (TOFU-like QA, 20 per person), generated offline; forget01/05/10.

    The bundle's splits: forget, retain, holdout (QA of never-trained people, as many as in
    forget), world_facts and real_entities (trained, never forgotten; with ``train_facts``
    False they are only evaluated, as TOFU does with a pretrained model's own knowledge).

    ``validation``: the request hyperparameters are tuned on (``unlearnbench tune``): forget
    the people just before the forget split's people, as many of them, and retain the others
    (the forget split's people among them); the same people are trained."""
    k = check_forget_choice(forget)
    _check_count(n_entities)
    if split_sizes(n_entities)[forget] == 0:
        least = -(-100 // k)
        raise UserError(f"{forget} of {n_entities} fictitious people holds no one ({k}% rounds "
                        f"down to 0): use n_entities >= {least} or a larger forget split")
    splits = generate_entities(n_entities, seed)
    bundle_splits = {
        "forget": splits[forget],
        "retain": splits[f"retain{100 - k}"],
        "holdout": splits[f"holdout{k:02d}"],
        "world_facts": splits["world_facts"],
        "real_entities": splits["real_entities"],
    }
    if validation:
        evaluation, retain = bundle_splits["forget"], bundle_splits["retain"]
        first = len(retain) - len(evaluation)
        bundle_splits["forget"] = retain.subset(np.arange(first, len(retain)))
        bundle_splits["retain"] = concat("retain", [retain.subset(np.arange(first)), evaluation])
    bundle_splits = {name: TextSplit(name, s.records, s.ids) for name, s in bundle_splits.items()}
    return TextBundle(f"entities-{forget}" + ("-validation" if validation else ""), bundle_splits,
                      also_trained=("world_facts", "real_entities") if train_facts else (),
                      refusals=REFUSALS)
