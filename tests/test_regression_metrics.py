"""The regression metrics against hand-computed answers (identity regressors on one-feature
inputs, so every prediction is known), one inference pass per model and split, and every
regression metric through ``unlearnbench.testing.check_metric`` on the real diabetes
scenario."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from unlearnbench import registry, testing
from unlearnbench.cache import ModelCache
from unlearnbench.data import Split
from unlearnbench.data.regression import RegressionBundle
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.metrics.inference import InferenceCache
from unlearnbench.metrics.regression import loss_threshold_auc
from unlearnbench.scenarios import build_scenario, get_spec
from unlearnbench.tasks.regression import RegressionTask
from unlearnbench.unlearning import Scenario

REGRESSION_METRICS = [e.name for e in registry.metrics.entries()
                      if "regression" in e.attributes.get("tasks", ())]
# The models predict small integers and halves through float32 layers: a float32 matrix
# product may round in the last place on some CPU kernels, so allow a few float32 ulps of
# values near 10.
TOL = 1e-5


def shifted(bias: float) -> nn.Module:
    """The regressor x ↦ x + bias on one-feature inputs."""
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(bias)
    return model.eval()


def split(name: str, inputs: list[float], targets: list[float], first_id: int = 0) -> Split:
    return Split(name, torch.tensor(inputs)[:, None], torch.tensor(targets),
                 np.arange(first_id, first_id + len(inputs)))


def hand_scenario(reference_bias: float = 0.5) -> Scenario:
    """Predictions are the inputs (reference: plus ``reference_bias``); errors chosen by hand:
    forget [1, −1, 2, 0], retain [0, 0, 0, 0], test [3, −3, 2, 2]."""
    forget = split("forget", [1.0, -1.0, 2.0, 0.0], [0.0] * 4, 0)
    retain = split("retain", [0.0] * 4, [0.0] * 4, 4)
    test = split("test", [3.0, -3.0, 2.0, 2.0], [0.0] * 4, 0)
    data = RegressionBundle("hand", forget, test, test, 1)
    task = RegressionTask(data, "mlp_regressor")
    return Scenario(get_spec("diabetes-random10"), 0, task,
                    {"forget": forget, "retain": retain, "test": test, "validation": test},
                    shifted(0.0), shifted(reference_bias), {}, {"train_seconds": 1.0})


def values(scenario, model, names):
    return {n: r.value for n, r in evaluate(scenario, model, names=names).items()}


def test_errors_are_the_mean_squared_and_absolute_errors():
    scenario = hand_scenario()
    got = values(scenario, scenario.original, ["forget_mse", "forget_mae", "retain_mse",
                                                "test_mse", "test_mae"])
    expected = {"forget_mse": 6 / 4, "forget_mae": 4 / 4, "retain_mse": 0.0,
                "test_mse": 26 / 4, "test_mae": 10 / 4}
    for name, value in expected.items():
        assert math.isclose(got[name], value, abs_tol=TOL), name
    per_example = evaluate(scenario, scenario.original, names=["forget_mse"])["forget_mse"]
    np.testing.assert_allclose(per_example.per_example, [1.0, 1.0, 4.0, 0.0], atol=TOL)


def test_the_gap_and_the_wasserstein_distance_to_the_reference():
    # Reference = original + 0.5: its forget errors are [1.5, −0.5, 2.5, 0.5] (MSE 9/4),
    # retain [0.5]*4 (MSE 1/4), test [3.5, −2.5, 2.5, 2.5] (MSE 31/4). Shifting every
    # prediction by 0.5 moves the prediction distribution by exactly 0.5 (W1).
    scenario = hand_scenario(0.5)
    got = values(scenario, scenario.original, ["reg_gap", "w1_forget"])
    gaps = [abs(6 / 4 - 9 / 4), abs(0 - 1 / 4), abs(26 / 4 - 31 / 4)]
    assert math.isclose(got["reg_gap"], sum(gaps) / 3, abs_tol=TOL)
    assert math.isclose(got["w1_forget"], 0.5, abs_tol=1e-6)
    itself = values(scenario, scenario.reference, ["reg_gap", "w1_forget"])
    assert itself == {"reg_gap": 0.0, "w1_forget": 0.0}


def test_the_loss_threshold_auc_counts_pairs():
    # member losses [1, 3] vs non-member [2]: one of two pairs ranks the member lower.
    assert loss_threshold_auc(np.array([1.0, 3.0]), np.array([2.0])) == 0.5
    assert loss_threshold_auc(np.array([0.0, 0.1]), np.array([1.0, 2.0])) == 1.0
    assert loss_threshold_auc(np.array([1.0]), np.array([1.0])) == 0.5  # a tie counts half
    # On the hand scenario |forget errors| [1, 1, 2, 0] vs |test errors| [3, 3, 2, 2]:
    # of 16 pairs, the 1s, 1s and 0 are below all four (12), the 2 is below the two 3s (2)
    # and ties the two 2s: (14 + 2/2) / 16.
    scenario = hand_scenario()
    auc = values(scenario, scenario.original, ["loss_auc"])["loss_auc"]
    assert math.isclose(auc, (14 + 0.5 * 2) / 16, abs_tol=TOL)


def test_the_svc_attack_calls_small_errors_members():
    # Retain errors 0 (members) against test errors ≥ 2 (non-members): a forget example with
    # no error looks like a member, one with a test-like error does not.
    scenario = hand_scenario()
    forget = split("forget", [0.0, 0.0, 3.0, -3.0], [0.0] * 4)
    scenario.splits["forget"] = forget
    result = evaluate(scenario, scenario.original, names=["reg_mia"])["reg_mia"]
    np.testing.assert_array_equal(result.per_example, [1.0, 1.0, 0.0, 0.0])
    assert result.value == 0.5


def test_every_regression_metric_reads_one_pass_per_model_and_split():
    scenario = hand_scenario()
    cache = InferenceCache(scenario.task)
    evaluate(scenario, scenario.original, names=REGRESSION_METRICS, cache=cache,
             timings={"unlearn_seconds": 0.5, "unlearn_cpu_seconds": 0.5})
    # forget, retain and test of the model and of the reference.
    assert cache.passes == 6


def test_the_registered_regression_metrics_are_these():
    assert {"forget_mse", "retain_mse", "test_mse", "forget_mae", "retain_mae", "test_mae",
            "reg_gap", "loss_auc", "reg_mia", "w1_forget", "speedup"} <= set(REGRESSION_METRICS)


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    cache = ModelCache(tmp_path_factory.mktemp("regression-metrics"))
    return build_scenario("diabetes-random10", 0, cache)


@pytest.mark.parametrize("name", REGRESSION_METRICS)
def test_check_regression_metric(name, diabetes):
    testing.check_metric(name, diabetes)
