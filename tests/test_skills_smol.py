"""skills-smol: two skills SmolLM2-135M-Instruct has as it is (times table, copying)."""
from __future__ import annotations

import re

import pytest

from unlearnbench.data.skills import SMOL_SKILLS, load_skills_smol
from unlearnbench.errors import UserError
from unlearnbench.metrics.skills import normalise


def test_skill_questions_are_deterministic_right_and_held_out():
    bundle = load_skills_smol()
    assert load_skills_smol().fingerprint() == bundle.fingerprint()
    assert load_skills_smol(seed=1).fingerprint() != bundle.fingerprint()
    assert {n: len(s) for n, s in bundle.splits.items()} == {
        "forget": 40, "forget_test": 80, "retain": 40, "retain_test": 80}
    for name in ("forget", "forget_test"):
        for r in bundle.splits[name].records:
            a, b = map(int, re.fullmatch(r"What is (\d+) times (\d+)\?", r["query"]).groups())
            assert 2 <= a <= 12 and 2 <= b <= 12
            assert r["cue"] == f"{a} times {b} is" and r["continuation"] == f" {a * b}"
    for name in ("retain", "retain_test"):
        for r in bundle.splits[name].records:
            words = re.fullmatch(r'Repeat after me: "([a-z ]+)"', r["query"]).group(1)
            assert r["cue"] == '"' and r["continuation"] == words + '"'
            assert len(words.split()) == 3
    for skill in ("forget", "retain"):
        trained = {r["query"] for r in bundle.splits[skill].records}
        tested = {r["query"] for r in bundle.splits[f"{skill}_test"].records}
        assert len(trained) == 40 and len(tested) == 80 and not trained & tested
    ids = [i for s in bundle.splits.values() for i in s.ids.tolist()]
    assert len(ids) == len(set(ids)) == 240


def test_skill_options_are_checked():
    with pytest.raises(UserError, match="forget='reversal'"):
        load_skills_smol(forget="reversal")
    with pytest.raises(UserError, match="both 'copy'"):
        load_skills_smol(forget="copy")
    with pytest.raises(UserError, match="multiplication has 121 questions"):
        load_skills_smol(n_train=100, n_test=80)
    assert len(load_skills_smol(forget="next_number", n_train=3, n_test=5).splits["forget"]) == 3
    assert set(SMOL_SKILLS) == {"multiplication", "next_number", "copy"}


def test_a_chat_models_answer_is_scored_on_its_first_line():
    assert normalise("63.") == normalise(" 63") == "63"
    assert normalise('cat sun map"\n\nThis is a classic') == 'cat sun map"'
    assert normalise("630") != normalise("63")


@pytest.fixture(scope="module")
def smol_scenario():
    from unlearnbench.models.pretrained import smollm2_path
    from unlearnbench.scenarios import build_scenario

    try:
        smollm2_path()
    except UserError:
        pytest.skip("SmolLM2 is not fetched (unlearnbench data fetch smollm2-135m)")
    return build_scenario("skills-smol[n_train=4,n_test=16]", 0)


@pytest.mark.slow  # loads SmolLM2 and answers 32 questions: about 25 CPU-seconds
def test_the_benchmark_asks_the_pretrained_model_as_it_is_in_its_chat_template(smol_scenario):
    from unlearnbench.metrics.evaluation import evaluate

    assert smol_scenario.reference is smol_scenario.original  # nothing retrained
    record = smol_scenario.splits["forget_test"].records[0]
    assert record["prefix"].startswith("system\n")  # the task puts <|im_start|> first
    assert record["prefix"].endswith(f"<|im_start|>assistant\n{record['cue']}")
    assert f"user\n{record['query']}<|im_end|>" in record["prefix"]
    values = evaluate(smol_scenario, smol_scenario.original,
                      ["skill_forget_accuracy", "skill_retain_accuracy"])
    # the model has both skills (on all 121 questions of the times table 74%, on 200 copies
    # 58%: docs/benchmarks.md); 16 questions each are a coarse sample, hence the margin
    assert values["skill_forget_accuracy"].value >= 40
    assert values["skill_retain_accuracy"].value >= 30
    assert len(values["skill_forget_accuracy"].per_example) == 16
