"""The parametric-trace metrics (``metrics/concept_vectors.py``) on the small language scenario:
a value vector planted to promote the forget tokens is the one located, and the metrics give
their known answers on models whose located vectors are left, scaled or flipped."""
from __future__ import annotations

import copy

import pytest
import torch

from unlearnbench.metrics.concept_vectors import (forget_tokens, locate, top_tokens,
                                                   value_matrices)
from unlearnbench.metrics.evaluation import evaluate

from language_fixtures import scenario as scenario  # fixtures: see there

NAMES = ["concept_cosine", "concept_norm_ratio", "concept_jaccard",
         "concept_restored_forget_prob", "forget_prob"]


@pytest.fixture(scope="module")
def planted(scenario):
    """The scenario with an original whose block-0 unit 3 writes the unembedding rows of the
    forget tokens (scaled to stand out): the vector a locator must find first."""
    model = copy.deepcopy(scenario.original)
    tokens = forget_tokens(scenario.task, scenario.forget, scenario.retain)
    unembedding = model.get_output_embeddings().weight.detach()
    with torch.no_grad():
        direction = unembedding[tokens].sum(0)
        weight = value_matrices(model)[0]
        weight[:, 3] = direction / direction.norm() * weight.norm(dim=0).max() * 4
    return copy.copy(scenario), model, tokens


def test_forget_tokens_are_distinctive_of_the_forget_answers(scenario):
    from collections import Counter

    tokens = forget_tokens(scenario.task, scenario.forget, scenario.retain).tolist()
    forget = Counter(t for a in scenario.task.encode(scenario.forget.records)[1] for t in a)
    retain = Counter(t for a in scenario.task.encode(scenario.retain.records)[1] for t in a)
    assert tokens
    for t in tokens:
        assert forget[t] >= 2
        assert forget[t] / sum(forget.values()) >= 4 * (retain[t] + 1) / sum(retain.values())
    # every answer ends with <eos>: shared, so not distinctive
    assert forget[scenario.task.eos_id] == len(scenario.forget)
    assert scenario.task.eos_id not in tokens


def test_the_planted_vector_is_located_first(planted):
    scenario, model, tokens = planted
    places = locate(model, tokens)
    assert places[0] == (0, 3)
    assert len(places) == len(set(places)) <= 10
    # its top tokens are mostly forget tokens: the reason it ranks first
    unembedding = model.get_output_embeddings().weight.detach()
    k = max(1, unembedding.shape[0] // 160)
    top = top_tokens(unembedding, value_matrices(model)[0][:, 3:4].detach(), k)[0]
    assert torch.isin(top, tokens).float().mean() > 0.5


def scored(scenario, original, change):
    """The metrics of ``change``(a copy of ``original``) against ``original``."""
    scenario = copy.copy(scenario)
    scenario.original = original
    model = copy.deepcopy(original)
    change(model)
    return {name: result.value for name, result in evaluate(scenario, model, NAMES).items()}


def test_known_answers_on_scaled_and_flipped_vectors(planted):
    scenario, model, tokens = planted
    places = locate(model, tokens)

    def scale(factor):
        def change(m):
            with torch.no_grad():
                for block, unit in places:
                    value_matrices(m)[block][:, unit] *= factor
        return change

    same = scored(scenario, model, lambda m: None)
    assert same["concept_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert same["concept_norm_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert same["concept_jaccard"] == pytest.approx(1.0)
    doubled = scored(scenario, model, scale(2.0))
    assert doubled["concept_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert doubled["concept_norm_ratio"] == pytest.approx(2.0, rel=1e-5)
    assert doubled["concept_jaccard"] == pytest.approx(1.0)  # same direction, same top tokens
    flipped = scored(scenario, model, scale(-1.0))
    assert flipped["concept_cosine"] == pytest.approx(-1.0, abs=1e-5)
    assert flipped["concept_jaccard"] < 0.2  # the most demoted tokens are other tokens
    # only the located vectors changed: putting them back restores the original's answers
    assert flipped["concept_restored_forget_prob"] == pytest.approx(same["forget_prob"],
                                                                    rel=1e-4)
    assert flipped["forget_prob"] != pytest.approx(same["forget_prob"], rel=1e-3)


def test_no_value_for_a_model_without_value_vectors(scenario):
    from unlearnbench.metrics.evaluation import Evaluation
    from unlearnbench.metrics.inference import InferenceCache

    wrapper = torch.nn.Sequential(torch.nn.Linear(2, 2))  # ULD's pair is such a model
    ev = Evaluation(scenario, wrapper, InferenceCache(scenario.task))
    assert value_matrices(wrapper) is None
    for name in NAMES[:4]:
        assert ev.value(name).value is None


def test_computed_on_request_only(scenario):
    from unlearnbench.metrics.evaluation import metric_names_for

    assert set(NAMES[:4]) <= set(metric_names_for(scenario))  # they apply here...
    defaults = evaluate(scenario, scenario.original, None)
    assert not set(NAMES[:4]) & set(defaults)  # ...but are not computed unless named
    assert "forget_prob" in defaults
