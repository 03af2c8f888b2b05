"""MUSE's sustainability protocol: sequential disjoint requests on a document corpus, each
unlearned from the model the previous request left, each scored as the union so far."""
import dataclasses

import numpy as np
import pytest

import unlearnbench
from unlearnbench.errors import UserError
from unlearnbench.scenarios import get_spec


def sequence_spec(requests: int, **options):
    spec = get_spec("news-mini")
    return dataclasses.replace(
        spec, name=f"news-sequence-{requests}",
        dataset_options={"n_articles": 24, **options},
        forget=dataclasses.replace(spec.forget, requests=requests),
        recipe=dataclasses.replace(spec.recipe, epochs=2),
        model_options={"vocab_size": 512, "layers": 1, "hidden": 64})


@pytest.fixture(scope="module")
def stages(language_cache):
    return unlearnbench.scenario(sequence_spec(4), seed=0, cache=language_cache)


def test_each_stage_forgets_its_sustain_set_and_is_scored_on_the_union(stages):
    assert [s.request for s in stages] == [1, 2, 3, 4]
    sustain = [set(stages[-1].splits[f"sustain_{k}"].ids) for k in range(1, 5)]
    assert all(not a & b for i, a in enumerate(sustain) for b in sustain[i + 1:])  # disjoint
    for k, stage in enumerate(stages, start=1):
        assert set(stage.newly_forgotten.ids) == sustain[k - 1]
        assert set(stage.forget.ids) == set().union(*sustain[:k])
        # what is not yet requested is still retained
        assert not set(stage.retain.ids) & set(stage.forget.ids)
        assert set(stage.retain.ids) >= set().union(*sustain[k:])
        assert stage.original is stages[0].original
    # each stage has its own reference, retrained without the union so far
    fingerprints = {tuple(np.concatenate([p.detach().numpy().ravel()[:8]
                                          for p in s.reference.parameters()])) for s in stages}
    assert len(fingerprints) == 4


def test_the_chain_feeds_each_request_the_previous_model(stages):
    first, _ = unlearnbench.unlearn(stages[0], "ga", {"epochs": 1}, max_steps=2)
    second, timings = unlearnbench.unlearn(stages[1], "ga", {"epochs": 1}, max_steps=2,
                                           start=first)
    assert timings["steps"] >= 1
    from_original, _ = unlearnbench.unlearn(stages[1], "ga", {"epochs": 1}, max_steps=2)
    differs = any(not (a == b).all() for a, b in zip(second.parameters(),
                                                      from_original.parameters()))
    assert differs


def test_sequential_requests_need_sustain_sets(language_cache):
    with pytest.raises(UserError, match="sustain"):
        unlearnbench.scenario(sequence_spec(5), seed=0, cache=language_cache)
    with pytest.raises(UserError, match="forget="):
        unlearnbench.scenario(sequence_spec(2, forget="scale_2"), seed=0, cache=language_cache)
