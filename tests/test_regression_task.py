"""The regression track's data, adapter and benchmarks: diabetes and the digits' slant load
standardised with the requests their options define, the adapter's losses, predictions,
features and training, the scenarios' splits and shared original, and the command line
running and showing a regression benchmark; the image benchmark end to end."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes as sklearn_diabetes

from unlearnbench import testing
from unlearnbench.cache import ModelCache
from unlearnbench.data.regression import load_diabetes, load_digits_slant, slant
from unlearnbench.errors import UserError
from unlearnbench.scenarios import build_scenario, get_spec
from unlearnbench.specs import ForgetSpec, Recipe
from unlearnbench.tasks.classification import Batch
from unlearnbench.tasks.regression import RegressionTask
from unlearnbench.unlearning import unlearn

from test_cli import ok, ub

REGRESSION_BENCHMARKS = ("diabetes-random10", "diabetes-range", "diabetes-group",
                         "digits-slant-range")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ModelCache(tmp_path_factory.mktemp("regression-model-cache"))


def hand_batch(outputs: list[float], targets: list[float]) -> tuple[torch.Tensor, Batch]:
    logits = torch.tensor(outputs)[:, None]
    return logits, Batch(torch.zeros(len(outputs), 1), torch.tensor(targets),
                         np.arange(len(outputs)))


@pytest.mark.parametrize("loss, expected", [("mse", [0.0, 4.0, 0.25]), ("l1", [0.0, 2.0, 0.5]),
                                            ("huber", [0.0, 1.5, 0.125])])
def test_the_per_example_loss_is_the_chosen_one(loss, expected):
    task = RegressionTask(load_diabetes(), "mlp_regressor", loss=loss)
    logits, batch = hand_batch([1.0, 3.0, -0.5], [1.0, 1.0, 0.0])
    # Huber with delta 1: 0.5 e² within 1, |e| − 0.5 beyond.
    np.testing.assert_allclose(task.nll_from_logits(logits, batch).numpy(), expected, rtol=1e-6)


def test_an_unknown_loss_and_wrong_labels_are_refused():
    with pytest.raises(UserError, match="loss"):
        RegressionTask(load_diabetes(), "mlp_regressor", loss="hinge")
    task = RegressionTask(load_diabetes(), "mlp_regressor")
    with pytest.raises(UserError, match="no wrong label"):
        task.relabel_wrong(task.data.train, 0)


def test_the_loss_is_part_of_what_trained_weights_depend_on():
    data = load_diabetes()
    assert (RegressionTask(data, "mlp_regressor").fingerprint()
            != RegressionTask(data, "mlp_regressor", loss="l1").fingerprint())


def test_diabetes_is_standardised_on_the_training_pool():
    data = load_diabetes()
    assert (len(data.train), len(data.validation), len(data.test)) == (319, 35, 88)
    assert data.train.targets.dtype == torch.float32 and data.num_classes == 1
    # float32 values of order one: mean 0 and std 1 to float32 rounding of 319 sums.
    assert abs(float(data.train.targets.mean())) < 1e-5
    assert math.isclose(float(data.train.targets.std(unbiased=False)), 1.0, abs_tol=1e-5)
    np.testing.assert_allclose(data.train.inputs.mean(0).numpy(), 0.0, atol=1e-5)


@pytest.mark.parametrize("column, low, index", [("target", 200.0, None), ("age", 60.0, 0)])
def test_a_diabetes_request_names_the_top_of_a_column(column, low, index):
    plain, data = load_diabetes(), load_diabetes(forget=column, low=low)
    assert data.fingerprint() == plain.fingerprint()  # the same arrays: one original model
    values = (data.train.targets.numpy() if index is None
              else data.train.inputs[:, index].numpy())
    # Standardising is increasing: [low, ∞) in raw units is the top of the standardised column.
    forgotten = values[data.forget_positions]
    assert forgotten.min() > np.delete(values, data.forget_positions).max()
    # Over all 442 patients, 28.7% have progression >= 200 and 23.3% are 60 or older.
    raw = sklearn_diabetes(scaled=False)
    everyone = raw.target if index is None else raw.data[:, index]
    share = float(np.mean(everyone >= low))
    assert abs(len(forgotten) / len(values) - share) < 0.06


def test_a_request_that_names_nothing_or_an_unknown_column_is_refused():
    with pytest.raises(UserError, match="names 0 of"):
        load_diabetes(forget="target", low=1000.0)
    with pytest.raises(UserError, match="unknown forget='bmi'"):
        load_diabetes(forget="bmi")
    with pytest.raises(UserError, match="unknown forget"):
        load_digits_slant(forget="target")


def test_the_slant_of_a_sheared_stroke_is_its_shear():
    # A stroke whose column moves right by one pixel every two rows: shear 0.5; upright: 0.
    image = np.zeros((1, 8, 8))
    for row in range(8):
        image[0, row, 2 + row // 2] = 1.0
    assert math.isclose(float(slant(image)[0]), 0.5, rel_tol=0.05)
    upright = np.zeros((1, 8, 8))
    upright[0, :, 4] = 1.0
    assert float(slant(upright)[0]) == 0.0


def test_the_slant_is_not_the_amount_of_ink():
    data = load_digits_slant()
    ink = data.train.inputs.flatten(1).sum(1).numpy()
    assert abs(np.corrcoef(ink, data.train.targets.numpy())[0, 1]) < 0.1


def test_the_adapter_predicts_featurises_and_fits():
    data = load_diabetes()
    task = RegressionTask(data, "mlp_regressor")
    model = task.fresh_model(0)
    with torch.no_grad():
        before = float(task.nll(model, next(task.batches(data.train, 512))).mean())
    assert task.predictions(model, data.test).shape == (len(data.test),)
    assert task.features(model, data.test).shape == (len(data.test), 64)
    task.fit(model, data.train, Recipe(epochs=20, batch_size=32, lr=3e-3, optimizer="adam",
                                       weight_decay=0.0), seed=0)
    with torch.no_grad():
        after = float(task.nll(model, next(task.batches(data.train, 512))).mean())
    assert after < 0.5 * before


def test_the_range_scenario_forgets_the_cohort_and_shares_the_original(cache):
    ranged = build_scenario("diabetes-range", 0, cache)
    random10 = build_scenario("diabetes-random10", 0, cache)
    testing.check_splits("diabetes-range", ranged)
    assert ranged.forget.targets.min() > ranged.retain.targets.max()
    assert len(random10.forget) == 32
    for name, tensor in ranged.original.state_dict().items():
        assert torch.equal(tensor, random10.original.state_dict()[name])
    task = ranged.task
    error = {role: float((task.predictions(model, ranged.forget) - ranged.forget.targets)
                         .pow(2).mean())
             for role, model in (("original", ranged.original), ("retrained", ranged.reference))}
    # The retrained model never saw the top of the target range: it under-predicts it.
    assert error["retrained"] > 10 * error["original"]


@pytest.mark.parametrize("name", REGRESSION_BENCHMARKS)
def test_the_regression_benchmarks_are_well_formed(name):
    spec = testing.check_benchmark_spec(name)
    assert spec.task == "regression"


def test_requests_regression_cannot_make_are_refused(cache):
    with pytest.raises(UserError, match="forget_kind=class needs classes"):
        build_scenario(get_spec("diabetes-random10[forget_kind=class,class_id=1]"), 0, cache)
    no_option = dataclasses.replace(get_spec("diabetes-random10"),
                                    forget=ForgetSpec("dataset", None))
    with pytest.raises(UserError, match="needs the data set's forget option"):
        build_scenario(no_option, 0, cache)


@pytest.mark.slow
def test_cli_runs_and_shows_a_regression_benchmark(tmp_path):
    cache, db = tmp_path / "cache", tmp_path / "results.db"
    ok(ub("run", "-b", "diabetes-range", "-m", "original,retrain,gaussian_amnesiac,blindspot",
          "--seeds", "1", "--db", str(db), cache=cache, cwd=tmp_path))
    table = ok(ub("show", "--db", str(db), cache=cache, cwd=tmp_path)).stdout
    for text in ("diabetes-range", "MSE Gap", "Forget MSE", "W1 to retrain", "blindspot",
                 "gaussian_amnesiac"):
        assert text in table
    refused = ub("run", "-b", "diabetes-range", "-m", "rl", "--db", str(db), cache=cache,
                 cwd=tmp_path)
    # As for any task: the job is recorded as failed, with the one-line reason.
    assert ("diabetes-range rl seed=0: failed (method 'rl' does not support regression tasks"
            in refused.stdout)


@pytest.mark.slow
def test_the_image_benchmark_learns_the_slant_and_blindspot_runs_on_the_cnn(cache):
    scenario = build_scenario("digits-slant-range", 0, cache)
    testing.check_splits("digits-slant-range", scenario)
    task = scenario.task

    def forget_mse(model):
        return float((task.predictions(model, scenario.forget) - scenario.forget.targets)
                     .pow(2).mean())

    test_mse = float((task.predictions(scenario.original, scenario.splits["test"])
                      - scenario.splits["test"].targets).pow(2).mean())
    # Seed 0: test MSE 0.014 (predicting the mean: 1); the retrained model extrapolates
    # badly to the slant it never saw (forget MSE 0.38 against the original's 0.008).
    assert test_mse < 0.1
    assert forget_mse(scenario.reference) > 10 * forget_mse(scenario.original)
    # Blindspot's attention maps on convolutional activations (seed 0: forget MSE 0.40).
    model, _ = unlearn(scenario, "blindspot")
    assert forget_mse(model) > 10 * forget_mse(scenario.original)
