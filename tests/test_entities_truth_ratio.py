"""The entities data's perturbed answers reword the paraphrased answer with another value, as in
TOFU, so that the truth ratio P(perturbed) / P(paraphrased) compares the value alone."""
from __future__ import annotations

import pytest

from unlearnbench.data import entities
from unlearnbench.data.entities import ATTRIBUTES, generate_entities, generate_people
from unlearnbench.data.entities_tables import REAL_ENTITIES, WORLD_FACTS

N = 20  # trained people: 400 QA, 2 holdout people


@pytest.fixture(scope="module")
def small():
    return generate_entities(N, seed=0)


def assert_only_value_differs(paraphrased: str, value: str, perturbed: list[str],
                              wrong_values) -> None:
    """Each perturbed answer is ``paraphrased`` with ``value`` replaced by a wrong value."""
    assert paraphrased.count(value) == 1, (paraphrased, value)
    before, _, after = paraphrased.partition(value)
    for answer in perturbed:
        assert answer.startswith(before) and answer.endswith(after), (answer, paraphrased)
        middle = answer[len(before):len(answer) - len(after)]
        assert middle != value and middle in wrong_values, (answer, paraphrased)


def test_people_perturbed_answers_reword_the_paraphrase(small):
    people = generate_people(N + N // 10, seed=0)
    pools = {attribute: pool for attribute, pool, _, _ in ATTRIBUTES}
    paraphrase_templates = set()
    for split in ("retain90", "forget10", "holdout10"):
        for r in small[split].records:
            person = people[r["entity"]]
            value = person[r["attribute"]]
            pool = pools[r["attribute"]]
            if pool is None:  # debut year: some years after the birth year
                pool = [str(int(person["birth_year"]) + age) for age in entities.DEBUT_AGES]
            assert_only_value_differs(r["paraphrased_answer"], value, r["perturbed_answer"],
                                      pool)
            paraphrase_templates.add((r["attribute"],
                                      r["paraphrased_answer"].replace(person["name"], "X")
                                      .replace(value, "V")))
    # The paraphrases still use every answer template of each attribute.
    for attribute, _, _, answers in ATTRIBUTES:
        used = {t for a, t in paraphrase_templates if a == attribute}
        assert used == {a.format(name="X", value="V") for a in answers}, attribute


@pytest.mark.parametrize("name, table", [("world_facts", WORLD_FACTS),
                                         ("real_entities", REAL_ENTITIES)])
def test_fact_perturbed_answers_reword_the_paraphrase(small, name, table):
    records = small[name].records
    assert len(records) == len(table)
    for r, (question, _, value, wrong) in zip(records, table):
        assert r["question"] == question
        assert_only_value_differs(r["paraphrased_answer"], value, r["perturbed_answer"], wrong)
