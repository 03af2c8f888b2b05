"""The fictitious-people QA generator and TOFU's file layout (JSON lines and datasets)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unlearnbench.data import entities
from unlearnbench.data.entities import (ATTRIBUTES, REFUSALS, generate_entities, generate_people,
                                        load_entities)
from unlearnbench.data.tofu_format import (load_tofu, read_tofu, read_tofu_dataset,
                                           read_tofu_jsonl, write_tofu_dataset, write_tofu_jsonl)
from unlearnbench.errors import UserError
from unlearnbench.registry import datasets

N = 20  # trained people in most tests: 400 QA, 2 holdout people


@pytest.fixture(scope="module")
def small():
    return generate_entities(N, seed=0)


@pytest.fixture(scope="module")
def hundred():
    return generate_entities(100, seed=3)


def entity_set(split):
    return {r["entity"] for r in split.records}


# ----------------------------------------------------------------------------- generator

def test_registered():
    assert datasets.get("entities").obj is load_entities
    assert datasets.get("tofu").obj is load_tofu


def test_same_seed_same_records_other_seed_differs(small):
    again = generate_entities(N, seed=0)
    other = generate_entities(N, seed=1)
    for name, split in small.items():
        assert again[name].records == split.records
        np.testing.assert_array_equal(again[name].ids, split.ids)
    assert other["retain90"].records != small["retain90"].records
    assert generate_people(5, seed=7) == generate_people(5, seed=7)
    assert generate_people(5, seed=7) != generate_people(5, seed=8)


def test_counts_twenty_questions_per_person(small, hundred):
    assert len(small["forget10"]) + len(small["retain90"]) == N * 20
    assert len(small["forget10"]) == 2 * 20 and len(small["forget05"]) == 20
    assert len(small["forget01"]) == 0  # 1% of 20 people rounds down to no one
    assert len(small["holdout10"]) == 2 * 20
    assert [len(hundred[f"forget{k}"]) for k in ("01", "05", "10")] == [20, 100, 200]
    assert [len(hundred[f"holdout{k}"]) for k in ("01", "05", "10")] == [20, 100, 200]
    assert [len(hundred[f"retain{k}"]) for k in (99, 95, 90)] == [1980, 1900, 1800]
    trained = small["forget10"].records + small["retain90"].records
    for person in range(N):
        mine = [r for r in trained if r["entity"] == person]
        assert len(mine) == 20
        assert sorted(r["attribute"] for r in mine) == sorted(a[0] for a in ATTRIBUTES)


def test_splits_nested_and_disjoint_as_in_tofu(hundred):
    s = hundred
    ids = {name: set(split.ids.tolist()) for name, split in s.items()}
    assert ids["forget01"] < ids["forget05"] < ids["forget10"]
    assert ids["retain90"] < ids["retain95"] < ids["retain99"]
    assert ids["holdout01"] < ids["holdout05"] < ids["holdout10"]
    for k, rest in (("01", "99"), ("05", "95"), ("10", "90")):
        assert not ids[f"forget{k}"] & ids[f"retain{rest}"]
        # forget and retain partition the trained people; forget takes the last ones
        assert entity_set(s[f"forget{k}"]) | entity_set(s[f"retain{rest}"]) == set(range(100))
        assert entity_set(s[f"forget{k}"]) == set(range(100 - int(k), 100))
        assert not entity_set(s[f"forget{k}"]) & entity_set(s[f"retain{rest}"])
    assert entity_set(s["holdout10"]) == set(range(100, 110))
    names = [person["name"] for person in generate_people(110, seed=3)]
    assert len(set(names)) == 110


def test_ids_unique_across_the_data_set_and_stable_across_splits(hundred):
    whole = ["forget10", "retain90", "holdout10", "world_facts", "real_entities"]
    all_ids = np.concatenate([hundred[n].ids for n in whole])
    assert len(set(all_ids.tolist())) == len(all_ids) == 110 * 20 + 80
    by_id = {}
    for split in hundred.values():
        for example_id, record in zip(split.ids.tolist(), split.records):
            assert by_id.setdefault(example_id, record) == record


def test_qa_fields_paraphrases_and_perturbed_answers(small):
    people = generate_people(N + N // 10, seed=0)
    templates = {a[0]: a for a in ATTRIBUTES}
    used_questions = {}
    for split in ("retain90", "forget10", "holdout10"):
        for r in small[split].records:
            person = people[r["entity"]]
            name, value = person["name"], person[r["attribute"]]
            _, pool, questions, answers = templates[r["attribute"]]
            if pool is None:  # debut year: some years after the birth year
                born = int(person["birth_year"])
                pool = [str(born + age) for age in entities.DEBUT_AGES]
            assert r["question"] in [q.format(name=name) for q in questions]
            assert r["paraphrased_question"] in [q.format(name=name) for q in questions]
            assert r["paraphrased_question"] != r["question"]
            own = [a for a in answers if a.format(name=name, value=value) == r["answer"]]
            assert len(own) == 1
            para = [a for a in answers
                    if a.format(name=name, value=value) == r["paraphrased_answer"]]
            assert len(para) == 1 and para != own
            perturbed = r["perturbed_answer"]
            assert len(perturbed) == 5 and len(set(perturbed)) == 5
            assert r["answer"] not in perturbed
            wrong = [v for v in pool if v != value]
            assert set(perturbed) <= {para[0].format(name=name, value=v) for v in wrong}
            assert 4 <= len(r["answer"].split()) <= 12
            used_questions.setdefault(r["attribute"], set()).add(r["question"].replace(name, "X"))
    assert all(len(qs) >= 2 for qs in used_questions.values())  # templates vary
    # ... and the answer's template follows from the question's
    for attribute, (_, _, questions, answers) in templates.items():
        for r in small["retain90"].records:
            if r["attribute"] == attribute:
                name = people[r["entity"]]["name"]
                q = [t.format(name=name) for t in questions].index(r["question"])
                value = people[r["entity"]][attribute]
                assert r["answer"] == answers[q % len(answers)].format(name=name, value=value)


def test_people_attributes_are_plausible():
    for person in generate_people(50, seed=2):
        assert len(person) == 21  # the name and 20 attributes
        assert person["second_book"] != person["first_book"]
        assert person["home_city"] != person["birthplace"]
        assert 20 <= int(person["debut_year"]) - int(person["birth_year"]) <= 40


def test_world_facts_and_real_entities(small):
    for name in ("world_facts", "real_entities"):
        records = small[name].records
        assert len(records) >= 30
        assert len({r["question"] for r in records}) == len(records)
        for r in records:
            assert len(r["perturbed_answer"]) == 3 and len(set(r["perturbed_answer"])) == 3
            assert r["answer"] not in r["perturbed_answer"]
            assert r["paraphrased_answer"] == r["answer"]
    capital = next(r for r in small["world_facts"].records
                   if r["question"] == "What is the capital of Australia?")
    assert capital["answer"] == "The capital of Australia is Canberra."


def test_load_entities_bundle():
    bundle = load_entities("forget10", n_entities=N, seed=0)
    assert set(bundle.splits) == {"forget", "retain", "holdout", "world_facts", "real_entities"}
    assert bundle.also_trained == ("world_facts", "real_entities")
    assert bundle.refusals == REFUSALS and len(REFUSALS) >= 15
    assert len(bundle.splits["forget"]) == 40 and len(bundle.splits["holdout"]) == 40
    assert len(bundle.training_split(include_forget=True)) == N * 20 + 80
    assert len(bundle.training_split(include_forget=False)) == N * 20 - 40 + 80
    assert bundle.splits["forget"].name == "forget"
    assert bundle.fingerprint() == load_entities("forget10", n_entities=N, seed=0).fingerprint()


def test_load_entities_errors():
    with pytest.raises(UserError, match="forget01, forget05, forget10"):
        load_entities("forget20", n_entities=N)
    with pytest.raises(UserError, match="n_entities >= 100"):
        load_entities("forget01", n_entities=N)
    with pytest.raises(UserError, match="positive integer"):
        load_entities("forget10", n_entities=0)
    with pytest.raises(UserError, match="at most"):
        generate_entities(10**6)


# ----------------------------------------------------------------------------- TOFU layout

def test_jsonl_round_trip(tmp_path, small):
    paths = write_tofu_jsonl(small, tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{n}.json" for n in small)
    first = json.loads((tmp_path / "forget05.json").read_text().splitlines()[0])
    assert list(first)[:5] == ["question", "answer", "paraphrased_answer", "perturbed_answer",
                               "paraphrased_question"]
    back = read_tofu_jsonl(tmp_path)
    assert set(back) == set(small)
    for name, split in small.items():
        assert back[name].records == split.records
        np.testing.assert_array_equal(back[name].ids, split.ids)


def test_datasets_round_trip(tmp_path, small):
    write_tofu_dataset(small, tmp_path / "hf")
    assert (tmp_path / "hf" / "dataset_dict.json").is_file()
    for back in (read_tofu_dataset(tmp_path / "hf"), read_tofu(tmp_path / "hf")):
        assert set(back) == set(small)
        for name, split in small.items():  # forget01 is empty here and survives too
            assert back[name].records == split.records
            np.testing.assert_array_equal(back[name].ids, split.ids)


def write_lines(path: Path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def tofu_directory(root: Path) -> Path:
    """A tiny directory in TOFU's real layout: plain files with question/answer only, the
    perturbed files with TOFU's extra fields, and TOFU's plain-text refusals file."""
    forget = [{"question": f"Who is author {i}?", "answer": f"Author {i} writes poems."}
              for i in range(3)]
    retain = [{"question": f"Where does writer {i} live?", "answer": f"Writer {i} lives in Oslo."}
              for i in range(5)]
    write_lines(root / "forget01.json", forget)
    write_lines(root / "retain99.json", retain)
    write_lines(root / "forget01_perturbed.json",
                [dict(r, paraphrased_answer=r["answer"].replace("writes", "pens"),
                      paraphrased_question=r["question"].replace("Who", "Whom"),
                      perturbed_answer=[r["answer"].replace("poems", w)
                                        for w in ("plays", "essays", "novels")])
                 for r in forget])
    write_lines(root / "retain_perturbed.json",
                [dict(r, paraphrased_answer=r["answer"], perturbed_answer=["x", "y"])
                 for r in retain[:2]])
    # a mirror's JSON-array file, with the .jsonl suffix
    (root / "world_facts.jsonl").write_text(json.dumps(
        [{"question": "What is the capital of Peru?", "answer": "Lima",
          "perturbed_answer": ["Cusco", "Quito", "Bogota"]}], indent=1))
    write_lines(root / "real_authors_perturbed.json",
                [{"question": "Who wrote Hamlet?", "answer": "Shakespeare",
                  "perturbed_answer": ["Marlowe", "Jonson", "Kyd"]}])
    (root / "idontknow.jsonl").write_text("I have no clue.\nNot known to me.\n")
    return root


def test_load_tofu_reads_the_real_layout(tmp_path):
    bundle = load_tofu(tofu_directory(tmp_path), forget="forget01")
    assert set(bundle.splits) == {"forget", "retain", "retain_eval", "world_facts",
                                  "real_entities"}
    assert bundle.also_trained == ()
    assert bundle.refusals == ("I have no clue.", "Not known to me.")
    forget, retain = bundle.splits["forget"], bundle.splits["retain"]
    assert len(forget) == 3 and len(retain) == 5
    assert forget.records[0]["perturbed_answer"][0] == "Author 0 writes plays."  # _perturbed
    assert not set(forget.ids.tolist()) & set(retain.ids.tolist())
    # the same question and answer keeps its id from one file to another
    assert bundle.splits["retain_eval"].ids.tolist() == retain.ids[:2].tolist()
    both = read_tofu_jsonl(tmp_path, ["forget01", "forget01_perturbed"])
    assert both["forget01"].ids.tolist() == both["forget01_perturbed"].ids.tolist()
    assert both["forget01"].records[0] == {"question": "Who is author 0?",
                                           "answer": "Author 0 writes poems."}
    assert bundle.splits["world_facts"].records[0]["answer"] == "Lima"
    assert "idontknow" not in read_tofu_jsonl(tmp_path)  # refusals are not a split


def test_load_tofu_from_our_export_in_both_layouts(tmp_path, small):
    write_tofu_jsonl(small, tmp_path / "jsonl")
    write_tofu_dataset(small, tmp_path / "hf")
    for layout in ("jsonl", "hf"):
        bundle = load_tofu(tmp_path / layout, forget="forget10")
        assert bundle.splits["forget"].records == small["forget10"].records
        np.testing.assert_array_equal(bundle.splits["retain"].ids, small["retain90"].ids)
        np.testing.assert_array_equal(bundle.splits["holdout"].ids, small["holdout10"].ids)
        assert len(bundle.splits["real_entities"]) == len(small["real_entities"])
        assert bundle.refusals == REFUSALS


def test_ids_from_files_and_repeated_pairs(tmp_path):
    write_lines(tmp_path / "a.json", [{"question": "q", "answer": "a", "id": 70},
                                      {"question": "q2", "answer": "a2", "id": "71"}])
    split = read_tofu_jsonl(tmp_path)["a"]
    assert split.ids.tolist() == [70, 71] and "id" not in split.records[0]
    write_lines(tmp_path / "b.json", [{"question": "q", "answer": "a"}] * 2)
    read = read_tofu_jsonl(tmp_path, ["b"])["b"]
    assert read.ids.tolist() == [0, 1]  # a repeated pair is two examples


def test_tofu_errors_name_the_file(tmp_path):
    root = tofu_directory(tmp_path)
    (root / "retain99.json").unlink()
    for forget, missing in (("forget01", "retain99.json"), ("forget10", "forget10.json")):
        with pytest.raises(UserError) as error:
            load_tofu(root, forget=forget)
        assert missing in str(error.value) and str(root) in str(error.value)
    with pytest.raises(UserError, match="forget01, forget05, forget10"):
        load_tofu(root, forget="forget02")
    with pytest.raises(UserError, match="not a directory"):
        load_tofu(root / "nowhere")
    (root / "bad.json").write_text('{"question": "q", "answer": "a"}\n{"question": oops}\n')
    with pytest.raises(UserError, match=r"bad\.json, line 2"):
        read_tofu_jsonl(root, ["bad"])
    (root / "bad.json").write_text('{"question": "q"}\n')
    with pytest.raises(UserError, match=r"bad\.json, line 1.*'answer'"):
        read_tofu_jsonl(root, ["bad"])
    with pytest.raises(UserError, match="no missing.json"):
        read_tofu_jsonl(root, ["missing"])
