"""skills-mini (two synthetic skills), Neuron Adjust and Key Space Detection."""
from __future__ import annotations

import math

import pytest
import torch

from unlearnbench.data.skills import REFUSAL, WORDS, load_skills
from unlearnbench.methods.ksd import AbstainingModel, down_proj, hypercube_k, inside
from unlearnbench.methods.neuron_adjust import adjust
from unlearnbench.metrics.answers import normalise
from unlearnbench.testing import small_scenario
from unlearnbench.unlearning import unlearn


def test_skill_questions_have_the_right_answers_and_tests_are_held_out():
    bundle = load_skills(n_train=300, n_test=50)
    for split, instruction, order in (("forget", "Reverse: ", -1), ("retain", "Repeat: ", 1)):
        records = bundle.splits[split].records + bundle.splits[f"{split}_test"].records
        for record in records:
            words = record["question"].removeprefix(instruction).split()
            assert record["question"].startswith(instruction)
            assert len(words) == 3 and set(words) <= set(WORDS)
            assert record["answer"].split() == words[::order]
    triples = [tuple(r["question"].split()[1:]) for split in bundle.splits.values()
               for r in split.records]
    assert len(triples) == 2 * (300 + 50) == len(set(triples))  # no triple in two questions
    assert bundle.refusals == (REFUSAL,)


def test_hypercube_k_is_the_smallest_cube_holding_every_key():
    keys = torch.tensor([[0.0, 0.0], [2.0, 1.0], [-2.0, -1.0], [1.0, 0.5]])
    mean, std = keys.mean(0), keys.std(0, unbiased=False)
    k = hypercube_k(keys, mean, std)
    # mean (0.25, 0.125); the farthest key, (-2, -1), is 2.25/std_0 away in both dimensions
    assert k == pytest.approx(2.25 / std[0].item(), rel=1e-5)
    assert inside(keys, mean, std, k).all()
    assert not inside(keys, mean, std, 0.99 * k).all()
    assert not inside(torch.tensor([0.0, 3.0]), mean, std, k)


def test_adjust_mirrors_forget_typical_values_into_the_retain_distribution():
    mu_f, sd_f, mu_r, sd_r = (torch.tensor(v) for v in (5.0, 1.0, 0.0, 2.0))
    x = torch.tensor([6.0, 0.5])  # 6 is forget-typical, 0.5 retain-typical
    kept = adjust(x, mu_f, sd_f, mu_r, sd_r, torch.ones(2))  # uniform 1: never replaced
    assert torch.equal(kept, x)
    moved = adjust(x, mu_f, sd_f, mu_r, sd_r, torch.zeros(2))
    # 2·0 − (0 + (6 − 5)/1·2) = −2; 0.5 has the higher retain density: left as it is
    assert moved.tolist() == pytest.approx([-2.0, 0.5])
    # replaced with probability 1 − N1/(N1+N2) at x = 6
    n1 = math.exp(-0.5 * 9) / 2
    n2 = math.exp(-0.5)
    p = 1 - n1 / (n1 + n2)
    assert adjust(x[:1], mu_f, sd_f, mu_r, sd_r, torch.tensor([p - 1e-4])).item() == -2.0
    assert adjust(x[:1], mu_f, sd_f, mu_r, sd_r, torch.tensor([p + 1e-4])).item() == 6.0


def test_abstaining_model_answers_the_refusal_inside_the_cube_and_itself_outside():
    scenario = small_scenario("language")
    task, original = scenario.task, scenario.original
    refusal = task.tokenizer(" " + REFUSAL, add_special_tokens=False)["input_ids"]
    split = scenario.splits["forget"].subset(range(4))
    width = down_proj(original, -1).in_features
    zero, one = torch.zeros(width), torch.ones(width)
    everywhere = AbstainingModel(original, -1, zero, one, 1.0, 1e9, refusal + [task.eos_id])
    assert task.generate(everywhere, split) == [REFUSAL] * 4
    batch = next(task.batches(split, 4))
    # teacher-forced: every answer position predicts the refusal's tokens in turn
    assert everywhere(batch.input_ids, batch.attention_mask).logits[0, 0].argmax() == refusal[0]
    nowhere = AbstainingModel(original, -1, zero, one, 1.0, 1e-9, refusal + [task.eos_id])
    assert task.generate(nowhere, split) == task.generate(original, split)


def _accuracy(task, model, split) -> float:
    answers = task.generate(model, split)
    return 100 * sum(normalise(a) == normalise(r["answer"])
                     for a, r in zip(answers, split.records)) / len(split)


@pytest.fixture(scope="module")
def skills_scenario():
    from unlearnbench.scenarios import build_scenario
    return build_scenario("skills-mini", 0)


@pytest.mark.slow
def test_the_target_learns_both_skills_and_the_retrained_model_only_one(skills_scenario):
    """Measured: the target answers 71% of the held-out reversals and 92% of the held-out
    copies, the retain model 0% and 100%."""
    task, splits = skills_scenario.task, skills_scenario.splits
    assert _accuracy(task, skills_scenario.original, splits["forget_test"]) >= 60
    assert _accuracy(task, skills_scenario.original, splits["retain_test"]) >= 85
    assert _accuracy(task, skills_scenario.reference, splits["forget_test"]) <= 5
    assert _accuracy(task, skills_scenario.reference, splits["retain_test"]) >= 85


@pytest.mark.slow
def test_neuron_adjust_lowers_the_forget_skill_and_keeps_the_other(skills_scenario):
    """Measured at seed 0: held-out reversal 71% -> 58%, copy 92% -> 92% (3% of neurons)."""
    task, splits = skills_scenario.task, skills_scenario.splits
    before = {s: _accuracy(task, skills_scenario.original, splits[s])
              for s in ("forget_test", "retain_test")}
    model, _ = unlearn(skills_scenario, "neuron_adjust", seed=0)
    after = {s: _accuracy(task, model, splits[s]) for s in ("forget_test", "retain_test")}
    assert after["forget_test"] <= before["forget_test"] - 5, (before, after)
    assert after["retain_test"] >= before["retain_test"] - 5, (before, after)


@pytest.mark.slow
def test_ksd_abstains_on_the_forget_skill(skills_scenario):
    """The cube of the forget keys holds the copy queries too on skills-mini (KSD abstains on
    both skills, docs/benchmarks.md): only the forget side is asserted."""
    model, _ = unlearn(skills_scenario, "ksd", seed=0)
    split = skills_scenario.splits["forget_test"]
    assert set(skills_scenario.task.generate(model, split)) == {REFUSAL}
