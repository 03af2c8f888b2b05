"""The embedding-space attack (``attack_ua``): its arithmetic on known readings, the metric
contract on the digits-gen scenario, and what it is for: the attack finds the class in the
original, finds it again behind an edit that only hides the class's embedding, and leaves
the retrained model (which never learned the class) well above such an edit."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from unlearnbench import testing
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.metrics.generation_attack import not_recognised
from unlearnbench.unlearning import unlearn

from generation_fixtures import generation_scenario


def test_attack_ua_counts_the_images_not_read_as_the_forgotten_class():
    # Forgotten class 3: two of five attacked images are read as something else (40%).
    result = not_recognised(torch.tensor([3, 8, 3, 3, 5]), 3, np.array([10, 11, 12, 13, 14]))
    assert result.value == pytest.approx(40.0)
    assert result.split == "prompts"
    assert result.ids.tolist() == [10, 11, 12, 13, 14]
    assert result.per_example.tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return generation_scenario(tmp_path_factory)


def scores(scenario, model) -> dict[str, float]:
    return {n: r.value for n, r in evaluate(scenario, model,
                                            names=["gen_ua", "attack_ua"]).items()}


def test_check_metric_on_the_digits_gen_scenario(scenario):
    model, timings = unlearn(scenario, "uce")
    testing.check_metric("attack_ua", scenario, model, timings)


def test_the_attack_finds_the_class_in_the_original(scenario):
    assert scores(scenario, scenario.original)["attack_ua"] <= 10.0  # measured: 0%


@pytest.fixture(scope="module")
def hidden(scenario):
    """The original with class 3's embedding row overwritten by the null condition's: its
    samples of "3" are unconditional, yet the denoiser still holds every 3 it learned."""
    model = copy.deepcopy(scenario.original)
    with torch.no_grad():
        model.condition.weight[3] = model.condition.weight[scenario.task.null_condition]
    return model


def test_the_attack_undoes_an_edit_that_only_hides_the_class(scenario, hidden):
    values = scores(scenario, hidden)
    # 20 images of the class. Measured: UA 95%, under attack 5%.
    assert values["gen_ua"] >= 70.0, values
    assert values["attack_ua"] <= values["gen_ua"] - 50.0, values


def test_the_retrained_model_resists_the_attack_better_than_a_hidden_class(scenario, hidden):
    # Measured: retrained 60% under attack (a few 3s can be composed from other digits'
    # strokes), the hidden class 5%.
    assert scores(scenario, scenario.reference)["attack_ua"] >= \
        scores(scenario, hidden)["attack_ua"] + 30.0
