"""The digits-gen-class scenario the generation tests share (20 samples per class instead of
50, the same trained models), built once a session in one model cache that the command-line
test reuses."""
from __future__ import annotations

import dataclasses

import pytest

from unlearnbench.cache import ModelCache
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.scenarios import build_scenario, get_spec

_BUILT: dict = {}


def generation_cache_dir(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "generation-model-cache"


def generation_scenario(tmp_path_factory):
    if "scenario" not in _BUILT:
        spec = dataclasses.replace(get_spec("digits-gen-class"), name="digits-gen-test",
                                   model_options={"samples_per_class": 20})
        _BUILT["scenario"] = build_scenario(spec, 0,
                                            ModelCache(generation_cache_dir(tmp_path_factory)))
    return _BUILT["scenario"]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return generation_scenario(tmp_path_factory)


@pytest.fixture(scope="module")
def original_scores(scenario):
    return {n: r.value for n, r in evaluate(scenario, scenario.original,
                                            names=["gen_ua", "ira"]).items()}
