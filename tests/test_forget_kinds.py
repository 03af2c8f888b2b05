"""Forget-request kinds beyond random and class: sub-class groups (k-means on the original's
features) and corrective scenarios (label swap, backdoor), with their metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import unlearnbench as ub
from unlearnbench.cache import ModelCache
from unlearnbench.data import make_split
from unlearnbench.requests.forget import select_forget
from unlearnbench.requests.manipulate import add_trigger, backdoor, swap_labels
from unlearnbench.errors import UserError
from unlearnbench.metrics.evaluation import evaluate, metric_names_for
from unlearnbench.specs import ForgetSpec


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ModelCache(tmp_path_factory.mktemp("kinds-cache"))


def toy_split(name, labels, size=4):
    labels = np.asarray(labels)
    inputs = np.arange(len(labels) * size * size, dtype=np.float32).reshape(len(labels), 1, size, size)
    return make_split(name, inputs / inputs.max(), labels)


# ---------------------------------------------------------------------------- sub-class

def test_subclass_picks_one_kmeans_cluster_of_the_class_largest_first():
    labels = np.array([7] * 9 + [1] * 5)
    train = toy_split("train", labels)
    # Three well separated groups inside class 7: sizes 4, 3, 2.
    features = np.zeros((len(labels), 2))
    features[:4] = [0, 0]
    features[4:7] = [10, 0]
    features[7:9] = [0, 10]
    features[9:] = [5, 5]
    spec = ForgetSpec("subclass", None, class_id=7, groups=3, group=0)
    np.testing.assert_array_equal(select_forget(spec, train, 10, 0, lambda: features), [0, 1, 2, 3])
    spec = ForgetSpec("subclass", None, class_id=7, groups=3, group=2)
    np.testing.assert_array_equal(select_forget(spec, train, 10, 0, lambda: features), [7, 8])


@pytest.mark.parametrize("spec, message", [
    (ForgetSpec("subclass", None, class_id=7, groups=1), "groups >= 2"),
    (ForgetSpec("subclass", None, class_id=7, groups=3, group=3), "group must be in 0..2"),
    (ForgetSpec("subclass", None, class_id=12), "unknown class 12"),
    (ForgetSpec("corrective", None), "needs a manipulation"),
])
def test_bad_requests_are_user_errors(spec, message):
    train = toy_split("train", [7] * 6 + [1] * 4)
    with pytest.raises(UserError, match=message):
        select_forget(spec, train, 10, 0, lambda: np.random.default_rng(0).normal(size=(10, 2)))


def test_subclass_scenario_forgets_part_of_one_class(cache):
    scenario = ub.scenario("digits-subclass", seed=0, cache=cache)
    forget_labels = scenario.forget.targets.numpy()
    assert set(forget_labels) == {7}
    sevens = int((scenario.retain.targets == 7).sum())
    assert sevens > 0, "the rest of the class stays in the retain set"
    again = ub.scenario("digits-subclass", seed=0, cache=cache)
    np.testing.assert_array_equal(scenario.forget.ids, again.forget.ids)


# ---------------------------------------------------------------------------- corrective

def test_label_swap_swaps_the_chosen_fraction_between_two_classes():
    train = toy_split("train", [3] * 10 + [8] * 10 + [1] * 10)
    test = toy_split("test", [3, 8, 1, 1, 3])
    swapped, positions, extra = swap_labels(train, test, (3, 8), 0.5, seed=0)
    assert len(positions) == 10
    before, after = train.targets.numpy(), swapped.targets.numpy()
    changed = np.flatnonzero(before != after)
    np.testing.assert_array_equal(changed, positions)
    assert all({before[i], after[i]} == {3, 8} for i in changed)
    assert torch.equal(swapped.inputs, train.inputs)
    np.testing.assert_array_equal(extra["affected_test"].targets.numpy(), [3, 8, 3])


def test_backdoor_patches_relabels_and_builds_a_clean_triggered_test_set():
    train = toy_split("train", [0] * 5 + [1] * 5 + [2] * 10)
    test = toy_split("test", [0, 1, 2, 2])
    poisoned, positions, extra = backdoor(train, test, 0, 0.2, seed=1)
    assert len(positions) == 3 and np.all(train.targets.numpy()[positions] != 0)
    assert (poisoned.targets.numpy()[positions] == 0).all()
    assert torch.equal(poisoned.inputs[positions], add_trigger(train.inputs[positions]))
    untouched = np.setdiff1d(np.arange(len(train)), positions)
    assert torch.equal(poisoned.inputs[untouched], train.inputs[untouched])
    assert (add_trigger(train.inputs)[..., -2:, -2:] == 1.0).all()
    triggered = extra["triggered_test"]
    np.testing.assert_array_equal(triggered.targets.numpy(), [1, 2, 2])  # clean labels, no 0s
    assert (triggered.inputs[..., -2:, -2:] == 1.0).all()


class Constant(nn.Module):
    """Predicts one class for every input."""

    def __init__(self, label, classes=10):
        super().__init__()
        self.logits = nn.Parameter(torch.nn.functional.one_hot(torch.tensor(label), classes).float())

    def forward(self, x):
        return self.logits.expand(len(x), -1)


@pytest.mark.parametrize("benchmark, kind", [("digits-labelswap", "label_swap"),
                                             ("digits-backdoor", "backdoor")])
def test_corrective_forget_set_is_the_known_part_of_the_manipulation(cache, benchmark, kind):
    scenario = ub.scenario(benchmark, seed=0, cache=cache)
    spec = scenario.spec.forget
    assert spec.manipulation == kind
    pool = scenario.task.data.train
    clean = ub.scenario("digits-random10", seed=0, cache=cache).task.data.train
    manipulated = np.flatnonzero((pool.targets != clean.targets).numpy()
                                 | (pool.inputs != clean.inputs).flatten(1).any(1).numpy())
    assert set(scenario.forget.ids) <= set(manipulated)
    assert len(scenario.forget) == round(spec.known_fraction * len(manipulated))
    unknown = set(manipulated) - set(scenario.forget.ids)
    assert unknown and unknown <= set(scenario.retain.ids), "the rest stays unknown, in retain"


def test_backdoor_metrics_known_answers(cache):
    scenario = ub.scenario("digits-backdoor", seed=0, cache=cache)
    assert {"attack_success", "trigger_accuracy"} <= set(metric_names_for(scenario))
    always_target = evaluate(scenario, Constant(0), names=["attack_success", "trigger_accuracy"])
    assert always_target["attack_success"].value == 100.0
    assert always_target["trigger_accuracy"].value == 0.0
    never_target = evaluate(scenario, Constant(1), names=["attack_success", "trigger_accuracy"])
    assert never_target["attack_success"].value == 0.0
    share_of_ones = float((scenario.splits["triggered_test"].targets == 1).float().mean()) * 100
    assert never_target["trigger_accuracy"].value == pytest.approx(share_of_ones)
    # The backdoor works on the original model: most triggered inputs go to the target.
    original = evaluate(scenario, scenario.original, names=["attack_success"])
    assert original["attack_success"].value > 80.0


def test_label_swap_metric_known_answer(cache):
    scenario = ub.scenario("digits-labelswap", seed=0, cache=cache)
    assert "affected_accuracy" in metric_names_for(scenario)
    assert "attack_success" not in metric_names_for(scenario)
    threes = float((scenario.splits["affected_test"].targets == 3).float().mean()) * 100
    result = evaluate(scenario, Constant(3), names=["affected_accuracy"])
    assert result["affected_accuracy"].value == pytest.approx(threes)


# ---------------------------------------------------------------------------- sequential

def test_sequential_requests_are_disjoint_and_accumulate(cache):
    stages = ub.scenario("digits-sequential", seed=0, cache=cache)
    assert [s.request for s in stages] == [1, 2, 3]
    requests = [set(s.newly_forgotten.ids) for s in stages]
    assert all(requests) and not (requests[0] & requests[1]) and not (requests[1] & requests[2])
    for i, stage in enumerate(stages):
        assert set(stage.forget.ids) == set().union(*requests[:i + 1])
        assert not set(stage.forget.ids) & set(stage.retain.ids)
        assert len(stage.forget) + len(stage.retain) == len(stage.task.data.train)
    # Each stage's reference is retrained without every request so far: retrain reproduces it.
    model, _ = ub.unlearn(stages[2], "retrain")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 stages[2].reference.state_dict().values()))


def test_sequential_runner_chains_models_and_resumes(cache, tmp_path):
    from unlearnbench.sweep.jobs import plan
    from unlearnbench.sweep.grid import run_grid
    from unlearnbench.store import Store

    store = Store(tmp_path / "seq.db")
    jobs = plan(["digits-sequential"], ["finetune"], [0], {"finetune": {"epochs": 1}})
    assert [j.request for j in jobs] == [1, 2, 3]
    assert run_grid(jobs, store, cache)["finished"] == 3
    stored = {r["request"]: r for r in store.runs()}
    assert sorted(stored) == [1, 2, 3]
    # Stage 2 starts from stage 1's model and forgets only request 2.
    stages = ub.scenario("digits-sequential", seed=0, cache=cache)
    first, _ = ub.unlearn(stages[0], "finetune", {"epochs": 1})
    second, _ = ub.unlearn(stages[1], "finetune", {"epochs": 1}, start=first)
    expected = evaluate(stages[1], second, names=["ua", "ra", "ta"])
    for name in ("ua", "ra", "ta"):
        assert stored[2]["metrics"][name] == pytest.approx(expected[name].value)
    # A lost middle record is recomputed alone; the others are kept, none duplicated.
    with store.db:
        store.db.execute("DELETE FROM runs WHERE request = 2")
    assert run_grid(jobs, store, cache) == {"skipped": 2, "finished": 1, "failed": 0}
    again = {r["request"]: r for r in store.runs()}
    assert sorted(again) == [1, 2, 3]
    assert again[1]["id"] == stored[1]["id"] and again[3]["id"] == stored[3]["id"]
    assert again[2]["metrics"]["ua"] == pytest.approx(stored[2]["metrics"]["ua"])
