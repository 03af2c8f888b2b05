"""The contract every registered method must meet, checked with ``unlearnbench.testing`` (the
functions plugin authors run on their own methods) on real scenarios: digits for
classification methods (trained once for the module in a temporary model cache), the small
language scenario of ``conftest.py`` for language methods.

The tests are parametrised over ``registry.methods.names()``, so a newly registered method is
checked automatically: deterministic under a seed, never mutates the original, finite
weights, respects its step budget, typed hyperparameters with defaults, runs on the MLP and
the CNN, refuses tasks it does not support, and actually moves toward the retrained
reference on the forget set (random 10% and whole-class forgetting) while keeping test
accuracy within a stated bound.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

import unlearnbench
from unlearnbench import registry, testing
from unlearnbench.cache import ModelCache
from unlearnbench.errors import UserError
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.metrics.inference import InferenceCache
from unlearnbench.scenarios import get_spec

SEED = testing.SEED


def methods_of(task: str) -> list[str]:
    """The methods of ``task`` for any model (an MoE-only method is checked in test_moe.py)."""
    return [name for name in registry.methods.names()
            if task in registry.methods.get(name).attributes.get("tasks", ())
            and not registry.methods.get(name).attributes.get("architecture")]


# Methods that erase one whole class and refuse other requests (``class_only``) are checked
# on digits-class in their own test files.
METHODS = [name for name in methods_of("classification")
           if not registry.methods.get(name).attributes.get("class_only")]
LANGUAGE_METHODS = methods_of("language")


def assert_state_equal(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), f"{what}: different keys"
    for key in a:
        assert a[key].dtype == b[key].dtype, f"{what}: {key} dtype differs"
        assert torch.equal(a[key], b[key]), f"{what}: {key} differs"


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return ModelCache(tmp_path_factory.mktemp("methods-model-cache"))


@pytest.fixture(scope="module")
def scenario(model_cache):
    return unlearnbench.scenario("digits-random10", seed=SEED, cache=model_cache)


@pytest.fixture(scope="module")
def cnn_scenario(model_cache):
    spec = dataclasses.replace(get_spec("digits-random10"), name="digits-cnn-random10",
                               model="cnn")
    return unlearnbench.scenario(spec, seed=SEED, cache=model_cache)


@pytest.fixture(scope="module")
def class_scenario(model_cache):
    return unlearnbench.scenario("digits-class", seed=SEED, cache=model_cache)


def memoised_runs(scenario):
    """``run(method)``: the method run once with its defaults and seed ``SEED`` (memoised, so
    the contract checks share one run)."""
    runs: dict[str, testing.MethodRun] = {}

    def run(method: str) -> testing.MethodRun:
        if method not in runs:
            runs[method] = testing.run_method(method, scenario)
        return runs[method]

    return run


@pytest.fixture(scope="module")
def default_run(scenario):
    return memoised_runs(scenario)


@pytest.fixture(scope="module")
def evaluations(scenario):
    """One inference cache for all quality evaluations of this module."""
    return InferenceCache(scenario.task)


def test_there_are_classification_methods():
    for name in ("original", "retrain", "finetune", "ga", "rl"):
        assert name in METHODS


@pytest.mark.parametrize("method", registry.methods.names())
def test_declaration(method):
    """A one-line description, tasks, ``needs`` in the scenario's vocabulary (what the runner
    checks a benchmark gives), hyperparameters with defaults."""
    testing.check_method_declaration(method)


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_under_a_seed(scenario, default_run, method):
    testing.check_deterministic(method, scenario, default_run(method))


@pytest.mark.parametrize("method", METHODS)
def test_never_mutates_the_original(scenario, default_run, method):
    testing.check_leaves_the_original(method, scenario, default_run(method))


@pytest.mark.parametrize("method", METHODS)
def test_finite_weights(default_run, method):
    testing.check_finite_weights(method, default_run(method))


@pytest.mark.parametrize("method", METHODS)
def test_respects_step_budget(scenario, method):
    testing.check_step_budget(method, scenario)


@pytest.mark.parametrize("method", METHODS)
def test_hyperparameters_are_listed_as_declared(method):
    entry = registry.methods.get(method)
    if entry.params is None:
        return
    rows = entry.param_fields()  # what `unlearnbench list` shows
    assert [r[0] for r in rows] == [f.name for f in dataclasses.fields(entry.params)]


@pytest.mark.parametrize("method", METHODS)
def test_runs_on_the_cnn(cnn_scenario, method):
    """The same method on a convolutional model: the original untouched, finite weights,
    deterministic."""
    run = testing.run_method(method, cnn_scenario)
    testing.check_leaves_the_original(method, cnn_scenario, run)
    testing.check_finite_weights(method, run)
    testing.check_deterministic(method, cnn_scenario, run)


@pytest.mark.parametrize("method", METHODS)
def test_refuses_a_task_it_does_not_support(scenario, method):
    class SpeechTask:
        name = "speech"

    speech = dataclasses.replace(scenario, task=SpeechTask())
    with pytest.raises(UserError, match=f"method '{method}' does not support speech tasks"):
        unlearnbench.unlearn(speech, method)


QUALITY_METHODS = [m for m in METHODS if m not in testing.NO_OP_METHODS]
# Whole-class forgetting removes one of ten classes, so the retrained model loses that class's
# share of the test set (about 10 points). The utility bound is one-sided: an unlearned model
# may not lose more than 5 points of test accuracy beyond the retrained model's, i.e. half a
# class's worth — more means it damaged the classes it should keep. Keeping the forgotten
# class (test accuracy above the retrained model's) is under-forgetting, which the forget-
# accuracy criterion measures, not a loss of utility.
CLASS_TA_BOUND = 5.0


@pytest.fixture(scope="module")
def class_evaluations(class_scenario):
    return InferenceCache(class_scenario.task)


@pytest.mark.parametrize("method", QUALITY_METHODS)
def test_class_forgetting_moves_toward_retrained_and_keeps_test_accuracy(
        class_scenario, class_evaluations, method):
    """Whole-class forgetting (digits-class): |FA(u) − FA(R)| < |FA(o) − FA(R)| as in the
    random-forgetting test below, and TA(u) ≥ TA(R) − CLASS_TA_BOUND points."""
    run = testing.run_method(method, class_scenario)
    testing.check_moves_toward_reference(method, class_scenario, run, class_evaluations)
    ta = {role: evaluate(class_scenario, model, names=["ta"], cache=class_evaluations)["ta"].value
          for role, model in (("unlearned", run.model), ("retrained", class_scenario.reference))}
    assert ta["unlearned"] >= ta["retrained"] - CLASS_TA_BOUND, f"{method}: test acc {ta}"


@pytest.mark.parametrize("method", QUALITY_METHODS)
def test_moves_toward_retrained_reference_on_forget_set(scenario, evaluations, default_run,
                                                       method):
    """``check_moves_toward_reference`` (digits-random10, seed 0, the hyperparameters
    ``unlearn`` resolves for that benchmark): |FA(u) − FA(R)| < |FA(o) − FA(R)| for the
    forget-set accuracy FA. Avg. Gap is not the criterion because three of its four terms
    (RA, TA and part of MIA) do not measure forgetting at all: a method can lower it by
    raising test accuracy without forgetting anything."""
    testing.check_moves_toward_reference(method, scenario, default_run(method), evaluations)


def test_retrain_reproduces_reference_and_gap_is_exactly_zero(scenario, default_run):
    """With the scenario's seed (SEED) retrain is the reference, bit for bit."""
    model = default_run("retrain").model
    assert_state_equal(model.state_dict(), scenario.reference.state_dict(), "retrain")
    assert evaluate(scenario, model, names=["avg_gap"])["avg_gap"].value == 0.0


@pytest.mark.parametrize("typo, suggestion", [("finetun", "finetune"), ("retrian", "retrain"),
                                              ("orignal", "original")])
def test_unknown_method_suggests_nearest_name(scenario, typo, suggestion):
    with pytest.raises(UserError, match=suggestion) as info:
        unlearnbench.unlearn(scenario, typo)
    assert "did you mean" in str(info.value)
    assert typo in str(info.value)


# --------------------------------------------------------------------------- language methods

@pytest.fixture(scope="module")
def language_runs(language_scenario):
    return memoised_runs(language_scenario)


@pytest.fixture(scope="module")
def language_evaluations(language_scenario):
    return InferenceCache(language_scenario.task)


@pytest.mark.parametrize("method", LANGUAGE_METHODS)
def test_contract_on_language(language_scenario, language_runs, method):
    """Deterministic under a seed, the original untouched, finite weights."""
    run = language_runs(method)
    testing.check_leaves_the_original(method, language_scenario, run)
    testing.check_finite_weights(method, run)
    testing.check_deterministic(method, language_scenario, run)


@pytest.mark.parametrize("method", LANGUAGE_METHODS)
def test_respects_step_budget_on_language(language_scenario, method):
    testing.check_step_budget(method, language_scenario)


# ``testing.moves_by_default``: on language, the methods the benchmark tunes for tiny models.
LANGUAGE_QUALITY = [m for m in LANGUAGE_METHODS if m in testing.tiny_language_spec().method_params]


@pytest.mark.parametrize("method", LANGUAGE_QUALITY)
def test_moves_toward_the_retain_model_on_language(language_scenario, language_runs,
                                                   language_evaluations, method):
    """Each brings the forget set's answer NLL closer to the retain model's than the target's
    is."""
    testing.check_moves_toward_reference(method, language_scenario, language_runs(method),
                                         language_evaluations)
