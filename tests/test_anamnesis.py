"""The Anamnesis Index on cases whose answer is known: the original relearns at once (0 steps:
index 0), the retrained reference relearns exactly as itself (index 1), a model that never
reaches the threshold counts the cap, on the classification and the regression tracks; and
a model with nothing to train has no index."""
from __future__ import annotations

import copy

import pytest

import unlearnbench
from unlearnbench import testing
from unlearnbench.cache import ModelCache
from unlearnbench.metrics.anamnesis import MAX_STEPS, forget_loss, relearn_steps
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.metrics.evaluation import metric_names_for

from metric_fixtures import make_scenario


@pytest.fixture(scope="module", params=["digits-class", "diabetes-random10"])
def scenario(request, tmp_path_factory):
    return unlearnbench.scenario(request.param, seed=0,
                                 cache=ModelCache(tmp_path_factory.mktemp("anamnesis-cache")))


def index(scenario, model) -> float | None:
    return evaluate(scenario, model, names=["anamnesis_index"])["anamnesis_index"].value


def test_applies_to_classification_and_regression(scenario):
    assert "anamnesis_index" in metric_names_for(scenario)


def test_the_original_relearns_at_once(scenario):
    assert index(scenario, copy.deepcopy(scenario.original)) == 0.0


def test_the_retrained_model_scores_one(scenario):
    """Relearning is seeded: a copy of the reference takes the reference's own step count."""
    assert index(scenario, copy.deepcopy(scenario.reference)) == 1.0


def test_an_unlearned_model_lies_between(scenario):
    """Fine-tuning on the retain set forgets something but not everything."""
    model, _ = unlearnbench.unlearn(scenario, "finetune")
    assert 0.0 < index(scenario, model) < 1.0


def test_the_steps_count_up_to_the_cap(scenario):
    """The reference needs some steps to reach the original's forget loss; an unreachable
    threshold (a loss below 0) counts the cap."""
    forget = scenario.splits["forget"]
    train = scenario.task.join("train", [forget, scenario.splits["retain"]])
    threshold = 1.05 * forget_loss(scenario.task, scenario.original, forget)
    recipe = scenario.spec.recipe
    assert 0 < relearn_steps(scenario.task, scenario.reference, forget, train, threshold, recipe)
    assert relearn_steps(scenario.task, scenario.reference, forget, train, -1.0, recipe,
                         max_steps=5) == 5
    assert MAX_STEPS >= 100


def test_a_model_with_nothing_to_train_has_no_index():
    table = make_scenario()
    result = evaluate(table, table.original, names=["anamnesis_index"])["anamnesis_index"]
    assert result.value is None


def test_the_metric_contract(scenario):
    testing.check_metric("anamnesis_index", scenario)
