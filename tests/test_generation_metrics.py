"""The generation metrics: UA and IRA on hand-made judge readings with known answers, the
Fréchet distance against closed forms, and every generation metric through
``unlearnbench.testing.check_metric`` on the real digits-gen scenario."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from unlearnbench import testing
from unlearnbench.data import Split
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.metrics.generation import frechet_distance, gaussian_frechet_distance
from unlearnbench.scenarios import get_spec
from unlearnbench.tasks.generation import Generations
from unlearnbench.unlearning import Scenario, unlearn

from generation_fixtures import generation_scenario


class ReadTask:
    """A generation task whose samples the judge reads as ``predicted`` (no model runs); the
    retrained model's, where one is given, as asked."""

    name = "generation"

    def __init__(self, conditions, predicted, reference=None):
        def read_as(labels):
            return Generations(torch.zeros(len(conditions), 1, 2, 2), torch.tensor(conditions),
                               torch.tensor(labels), torch.zeros(len(conditions), 3))

        self.made, self.exact, self.reference = read_as(predicted), read_as(conditions), reference

    def generate(self, model, prompts):
        return self.exact if model is self.reference else self.made


def known_scenario(conditions, predicted) -> Scenario:
    prompts = Split("prompts", torch.zeros(len(conditions), 1, 2, 2), torch.tensor(conditions),
                    np.arange(len(conditions)))
    reference = nn.Linear(1, 1)
    return Scenario(get_spec("digits-gen-class"), 0, ReadTask(conditions, predicted, reference),
                    {"prompts": prompts}, nn.Linear(1, 1), reference)


def test_ua_and_ira_on_known_readings():
    # Class 3 is forgotten: of its 4 images the judge reads 3 as other digits (UA 75%); of
    # the 5 others it reads 4 correctly (IRA 80%), the 5 mistaken for a 3.
    conditions = [3, 3, 3, 3, 0, 1, 2, 5, 9]
    predicted = [3, 8, 5, 0, 0, 1, 2, 3, 9]
    results = evaluate(known_scenario(conditions, predicted), nn.Linear(1, 1),
                       names=["gen_ua", "ira"])
    assert results["gen_ua"].value == pytest.approx(75.0)
    assert results["gen_ua"].ids.tolist() == [0, 1, 2, 3]
    assert results["gen_ua"].per_example.tolist() == [0.0, 1.0, 1.0, 1.0]
    assert results["ira"].value == pytest.approx(80.0)
    assert results["ira"].ids.tolist() == [4, 5, 6, 7, 8]


def test_gap_to_the_retrained_model_on_known_readings():
    # The retrained model's samples are all read as asked (UA 0, IRA 100); the model's are
    # UA 50 and IRA 80: the gap is (50 + 20) / 2. The retrained model itself: 0.
    conditions = [3, 3, 0, 1, 2, 5, 9]
    scenario = known_scenario(conditions, [8, 3, 0, 1, 3, 5, 9])
    assert evaluate(scenario, nn.Linear(1, 1), names=["gen_gap"])["gen_gap"].value == \
        pytest.approx(35.0)
    assert evaluate(scenario, scenario.reference, names=["gen_gap"])["gen_gap"].value == 0.0


def test_frechet_distance_of_gaussians_has_its_closed_form():
    # One dimension: (μa − μb)² + (σa − σb)²; diagonal covariances: Σ (√a − √b)² per axis.
    assert gaussian_frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)
    a, b = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.0])
    expected = 2.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert gaussian_frechet_distance([0, 0, 1], np.diag(a), [1, 1, 1], np.diag(b)) == \
        pytest.approx(expected, rel=1e-9)
    # Non-commuting covariances: symmetric in its arguments, and 0 against itself.
    c = np.array([[2.0, 0.9], [0.9, 1.0]])
    d = np.array([[1.0, -0.3], [-0.3, 3.0]])
    assert gaussian_frechet_distance([0, 0], c, [0, 0], d) == \
        pytest.approx(gaussian_frechet_distance([0, 0], d, [0, 0], c), rel=1e-9)
    assert gaussian_frechet_distance([0, 0], c, [0, 0], c) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_samples_sees_a_shift_and_nothing_else():
    rng = np.random.default_rng(0)
    # Rank-deficient features (a dead unit), as the judge's ReLU features have.
    features = np.column_stack([rng.normal(size=(200, 4)), np.zeros(200)])
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-9)
    shift = np.array([1.0, -2.0, 0.0, 0.5, 3.0])
    # A shift leaves the covariance as it is: the distance is the shift's squared length.
    assert frechet_distance(features, features + shift) == pytest.approx(14.25, rel=1e-9)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return generation_scenario(tmp_path_factory)


@pytest.fixture(scope="module")
def scored(scenario):
    return unlearn(scenario, "esd")


@pytest.mark.parametrize("name", ["gen_ua", "ira", "fid_features", "gen_gap",
                                  "unlearn_seconds", "speedup"])
def test_check_metric_on_the_digits_gen_scenario(scenario, scored, name):
    model, timings = scored
    testing.check_metric(name, scenario, model, timings)


def test_fid_features_ranks_a_collapsed_model_last(scenario):
    """The original's samples are near the real images; GA at a collapsing rate is far."""
    collapsed, _ = unlearn(scenario, "ga", {"lr": 0.02})
    values = {role: evaluate(scenario, model, names=["fid_features"])["fid_features"].value
              for role, model in (("original", scenario.original), ("collapsed", collapsed))}
    assert math.isfinite(values["original"])
    assert values["collapsed"] > 10 * values["original"], values
