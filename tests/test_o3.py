"""O3 on the project's classifiers: the method contract on whole-class forgetting (the random
request's contract runs in test_methods_contract.py), its quality on digits-class, the
detector's gating (inputs unlike the forget set get the original), two class requests in a
row with orthogonal adapters, and the project's own sequential requests."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import unlearnbench
from unlearnbench import testing
from unlearnbench.cache import ModelCache
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.methods.base import UnlearnContext
from unlearnbench.methods.o3 import O3Model, O3Params, o3

ACCURACY = ["forget_accuracy", "ra", "ta"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ModelCache(tmp_path_factory.mktemp("o3-cache"))


@pytest.fixture(scope="module")
def class_scenario(cache):
    return unlearnbench.scenario("digits-class", seed=0, cache=cache)


def accuracies(scenario, model) -> dict[str, float]:
    return {k: r.value for k, r in evaluate(scenario, model, names=ACCURACY).items()}


def test_contract_on_class_forgetting(class_scenario):
    testing.check_method("o3", class_scenario)


def test_forgets_the_class_and_keeps_the_rest(class_scenario):
    """Forget accuracy falls from 100% to within 10 points of the retrained model's 0%;
    retain accuracy stays within 1 point of the original's (the detector keeps the other
    classes on the original); test accuracy within 3 points of the retrained model's (it
    loses the class's tenth of the test set, as retraining does)."""
    model, _ = unlearnbench.unlearn(class_scenario, "o3")
    got = accuracies(class_scenario, model)
    original = accuracies(class_scenario, class_scenario.original)
    retrained = accuracies(class_scenario, class_scenario.reference)
    assert got["forget_accuracy"] <= retrained["forget_accuracy"] + 10, got
    assert got["ra"] >= original["ra"] - 1, (got, original)
    assert abs(got["ta"] - retrained["ta"]) <= 3, (got, retrained)


def test_inputs_unlike_the_forget_set_get_the_original(class_scenario):
    """Where the gate is below 1e-3 the logits are the original's up to the gate times the
    adapter's output (logits of order 10: differences below 0.05; seed 0 measures 0.01). On
    digits-class seed 0, 92% of the retained examples (other classes) are there and 99.5%
    have a gate below ½, while 98% of the forget examples have one above ½."""
    model, _ = unlearnbench.unlearn(class_scenario, "o3")
    retain, forget = class_scenario.retain, class_scenario.forget
    with torch.no_grad():
        gates = model.gates(retain.inputs)[:, 0]
        off = gates < 1e-3
        difference = (model(retain.inputs) - class_scenario.original(retain.inputs)).abs()
        forget_gates = model.gates(forget.inputs)[:, 0]
    assert off.float().mean() >= 0.9
    assert difference[off].max() < 0.05
    assert (gates < 0.5).float().mean() >= 0.98
    assert (forget_gates > 0.5).float().mean() >= 0.95


def class_request(scenario, original, label: int, seed: int = 0,
                  orthogonal_weight: float = 0.1) -> torch.nn.Module:
    """``o3`` on the request "forget every training example of ``label``", from ``original``."""
    data = scenario.task.join("train", [scenario.forget, scenario.retain])
    chosen = (data.targets == label).numpy()
    forget = data.subset(np.flatnonzero(chosen), "forget")
    retain = data.subset(np.flatnonzero(~chosen), "retain")
    ctx = UnlearnContext(scenario.task, original, forget, retain, scenario.spec.recipe, seed)
    return o3(ctx, O3Params(orthogonal_weight=orthogonal_weight))


def class_accuracy(scenario, model, labels) -> float:
    test = scenario.splits["test"]
    chosen = torch.from_numpy(np.isin(test.targets.numpy(), labels))
    with torch.no_grad():
        predicted = model(test.inputs[chosen]).argmax(1)
    return float((predicted == test.targets[chosen]).float().mean()) * 100


def test_two_class_requests_in_a_row(class_scenario):
    """Forget 3, then 5 from that model: two adapters and two detectors; both classes' test
    accuracy falls from ~100% below 25% (retraining: 0%; seed 0 measures 18% and 4%, the
    test images are gated less surely than the trained-on ones), the other eight stay
    within 2 points of the original's."""
    first = class_request(class_scenario, class_scenario.original, 3)
    second = class_request(class_scenario, first, 5)
    assert isinstance(second, O3Model) and len(second.means) == 2
    assert all(layer.lora_a.shape[0] == 2 for layer in second.gated_layers())
    assert len(first.means) == 1  # the earlier request's model is left as it was
    others = [c for c in range(10) if c not in (3, 5)]
    assert class_accuracy(class_scenario, second, [3]) < 25
    assert class_accuracy(class_scenario, second, [5]) < 25
    assert (class_accuracy(class_scenario, second, others)
            >= class_accuracy(class_scenario, class_scenario.original, others) - 2)


def overlap(model: O3Model) -> float:
    """Σ_layers ‖A_2 A_1ᵀ‖²_F: what the orthogonality regulariser penalises."""
    return sum(float((layer.lora_a[1] @ layer.lora_a[0].T).pow(2).sum())
               for layer in model.gated_layers())


def test_the_regulariser_keeps_the_second_adapter_orthogonal(class_scenario):
    first = class_request(class_scenario, class_scenario.original, 3)
    free = class_request(class_scenario, first, 5, orthogonal_weight=0.0)
    kept = class_request(class_scenario, first, 5, orthogonal_weight=0.1)
    assert overlap(kept) < overlap(free)


def test_the_projects_sequential_requests(cache):
    """digits-sequential: each stage continues from the previous O3 model, one adapter per
    request."""
    stages = unlearnbench.scenario("digits-sequential", seed=0, cache=cache)
    model = None
    for count, stage in enumerate(stages, start=1):
        model, _ = unlearnbench.unlearn(stage, "o3", start=model)
        assert len(model.means) == count
        assert all(layer.lora_a.shape[0] == count for layer in model.gated_layers())
