"""The contract every registered classification method must meet, checked on real digits
scenarios (trained once for the module in a temporary model cache).

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
from torch.optim.optimizer import register_optimizer_step_post_hook

import unlearnbench
from unlearnbench import registry
from unlearnbench.cache import ModelCache
from unlearnbench.errors import UserError
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.metrics.inference import InferenceCache
from unlearnbench.scenarios import DATA_KINDS, get_spec

SEED = 0


def classification_methods() -> list[str]:
    return [name for name in registry.methods.names()
            if "classification" in registry.methods.get(name).attributes.get("tasks", ())]


METHODS = classification_methods()


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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


@pytest.fixture(scope="module")
def evaluations(scenario):
    """One shared inference cache for all quality evaluations of this module, and the
    original model's scores (the baseline each method must beat)."""
    cache = InferenceCache(scenario.task)
    original = evaluate(scenario, scenario.original, cache=cache)
    reference = evaluate(scenario, scenario.reference, cache=cache)
    return cache, original, reference


@dataclasses.dataclass
class Run:
    model: torch.nn.Module
    timings: dict
    changed_in_original: list
    changed_in_reference: list


@pytest.fixture(scope="module")
def default_run(scenario):
    """``default_run(method)``: the method run once with its defaults and seed ``SEED``
    (memoised, so the contract checks share one run), with the names of any tensors of the
    original or the reference that differ after the run from before it."""
    runs: dict[str, Run] = {}

    def run(method: str) -> Run:
        if method not in runs:
            original_before = snapshot(scenario.original)
            reference_before = snapshot(scenario.reference)
            model, timings = unlearnbench.unlearn(scenario, method, seed=SEED)
            runs[method] = Run(model, timings, changed(original_before, scenario.original),
                               changed(reference_before, scenario.reference))
        return runs[method]

    return run


def changed(before: dict, model: torch.nn.Module) -> list[str]:
    after = model.state_dict()
    if after.keys() != before.keys():
        return ["<keys>"]
    return [k for k in before if before[k].dtype != after[k].dtype
            or not torch.equal(before[k], after[k])]


def test_there_are_classification_methods():
    for name in ("original", "retrain", "finetune", "ga", "rl"):
        assert name in METHODS


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_under_a_seed(scenario, default_run, method):
    again, _ = unlearnbench.unlearn(scenario, method, seed=SEED)
    assert_state_equal(default_run(method).model.state_dict(), again.state_dict(), method)


@pytest.mark.parametrize("method", METHODS)
def test_never_mutates_the_original(scenario, default_run, method):
    run = default_run(method)
    model = run.model
    assert model is not scenario.original
    assert model is not scenario.reference
    assert run.changed_in_original == [], f"{method} changed the original"
    assert run.changed_in_reference == [], f"{method} changed the reference"
    # The returned model owns its weights: no tensor shares storage with the original.
    original_pointers = {t.data_ptr() for t in scenario.original.state_dict().values()}
    for key, tensor in model.state_dict().items():
        assert tensor.data_ptr() not in original_pointers, f"{method}: {key} shares storage"


@pytest.mark.parametrize("method", METHODS)
def test_finite_weights(default_run, method):
    for key, tensor in default_run(method).model.state_dict().items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), f"{method}: {key} has NaN/inf"


@pytest.mark.parametrize("method", METHODS)
def test_respects_step_budget(scenario, method):
    """With max_steps=3 at most 3 real optimizer steps happen (counted by a global hook on
    every torch optimizer), and every real step is charged to the budget."""
    steps = []
    handle = register_optimizer_step_post_hook(
        lambda optimizer, args, kwargs: steps.append(optimizer))
    try:
        _, timings = unlearnbench.unlearn(scenario, method, seed=SEED, max_steps=3)
    finally:
        handle.remove()
    assert len(steps) <= 3, f"{method} took {len(steps)} optimizer steps with max_steps=3"
    assert timings["steps"] <= 3
    assert len(steps) <= timings["steps"], \
        f"{method}: {len(steps)} real steps but only {timings['steps']} charged to the budget"


@pytest.mark.parametrize("method", registry.methods.names())
def test_declares_the_data_it_needs(method):
    """``needs`` (what the runner checks a benchmark gives) uses the scenario's vocabulary."""
    needs = registry.methods.get(method).attributes.get("needs")
    assert needs is not None, f"{method} does not declare needs=(...)"
    assert set(needs) <= set(DATA_KINDS), f"{method}: unknown needs {set(needs) - set(DATA_KINDS)}"


@pytest.mark.parametrize("method", METHODS)
def test_hyperparameters_are_dataclasses_with_defaults(method):
    entry = registry.methods.get(method)
    assert entry.description and "\n" not in entry.description
    if entry.params is None:
        return
    assert dataclasses.is_dataclass(entry.params) and isinstance(entry.params, type)
    for field in dataclasses.fields(entry.params):
        has_default = field.default is not dataclasses.MISSING or \
            field.default_factory is not dataclasses.MISSING
        assert has_default, f"{method}.{field.name} has no default"
    entry.params()  # constructible with no arguments
    rows = entry.param_fields()  # what `unlearnbench list` shows
    assert [r[0] for r in rows] == [f.name for f in dataclasses.fields(entry.params)]


@pytest.mark.parametrize("method", METHODS)
def test_runs_on_the_cnn(cnn_scenario, method):
    """The same method on a convolutional model: finite weights, the original untouched,
    deterministic."""
    before = snapshot(cnn_scenario.original)
    model, _ = unlearnbench.unlearn(cnn_scenario, method, seed=SEED)
    assert changed(before, cnn_scenario.original) == []
    assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())
    again, _ = unlearnbench.unlearn(cnn_scenario, method, seed=SEED)
    assert_state_equal(model.state_dict(), again.state_dict(), f"{method} on the CNN")


@pytest.mark.parametrize("method", METHODS)
def test_refuses_a_task_it_does_not_support(scenario, method):
    class SpeechTask:
        name = "speech"

    speech = dataclasses.replace(scenario, task=SpeechTask())
    with pytest.raises(UserError, match=f"method '{method}' does not support speech tasks"):
        unlearnbench.unlearn(speech, method)


QUALITY_METHODS = [m for m in METHODS if m != "original"]
# Whole-class forgetting removes one of ten classes, so the retrained model loses that class's
# share of the test set (about 10 points). The utility bound is one-sided: an unlearned model
# may not lose more than 5 points of test accuracy beyond the retrained model's, i.e. half a
# class's worth — more means it damaged the classes it should keep. Keeping the forgotten
# class (test accuracy above the retrained model's) is under-forgetting, which the forget-
# accuracy criterion measures, not a loss of utility.
CLASS_TA_BOUND = 5.0


@pytest.mark.parametrize("method", QUALITY_METHODS)
def test_class_forgetting_moves_toward_retrained_and_keeps_test_accuracy(class_scenario, method):
    """Whole-class forgetting (digits-class): |FA(u) − FA(R)| < |FA(o) − FA(R)| as in the
    random-forgetting test below, and TA(u) ≥ TA(R) − CLASS_TA_BOUND points."""
    cache = InferenceCache(class_scenario.task)
    names = ["forget_accuracy", "ta"]
    original = evaluate(class_scenario, class_scenario.original, names=names, cache=cache)
    reference = evaluate(class_scenario, class_scenario.reference, names=names, cache=cache)
    model, _ = unlearnbench.unlearn(class_scenario, method, seed=SEED)
    unlearned = evaluate(class_scenario, model, names=names, cache=cache)
    target = reference["forget_accuracy"].value
    summary = (f"{method}: forget acc {unlearned['forget_accuracy'].value:.2f} (original "
               f"{original['forget_accuracy'].value:.2f}, retrained {target:.2f}); test acc "
               f"{unlearned['ta'].value:.2f} (retrained {reference['ta'].value:.2f})")
    assert abs(unlearned["forget_accuracy"].value - target) < \
        abs(original["forget_accuracy"].value - target), summary
    assert unlearned["ta"].value >= reference["ta"].value - CLASS_TA_BOUND, summary


@pytest.mark.parametrize("method", QUALITY_METHODS)
def test_moves_toward_retrained_reference_on_forget_set(scenario, evaluations, default_run,
                                                       method):
    """Criterion: |FA(u) − FA(R)| < |FA(o) − FA(R)|, with FA the forget-set accuracy of the
    unlearned model u, the original o and the retrained reference R (digits-random10, seed 0,
    the hyperparameters ``unlearn`` resolves for that benchmark).

    Why this criterion: unlearning is about the forget set, and the retrained model is the
    target, so the fair question is whether the method brings the forget-set behaviour
    closer to the retrained model's. It is an absolute distance, so overshooting (e.g. a
    collapsed gradient-ascent model at 0% forget accuracy when the reference sits near
    96%) does not count as progress. Avg. Gap is not used as the pass criterion because
    three of its four terms (RA, TA and part of MIA) do not measure forgetting at all: a
    method can lower it by raising test accuracy without forgetting anything. Avg. Gap is
    reported in the failure message for context."""
    cache, original, reference = evaluations
    run = default_run(method)
    unlearned = evaluate(scenario, run.model, cache=cache, timings=run.timings)
    target = reference["forget_accuracy"].value
    before = abs(original["forget_accuracy"].value - target)
    after = abs(unlearned["forget_accuracy"].value - target)
    summary = (f"{method}: forget acc {unlearned['forget_accuracy'].value:.2f} "
               f"(original {original['forget_accuracy'].value:.2f}, retrained {target:.2f}); "
               f"avg gap {unlearned['avg_gap'].value:.3f} (original "
               f"{original['avg_gap'].value:.3f})")
    assert after < before, summary


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
