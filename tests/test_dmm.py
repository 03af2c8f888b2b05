"""Datamodel Matching and Oracle Matching: the datamodel recovers a known linear population and
sums its coefficients over a removed set, the matching set and the oracles are what the
docstrings say, and on whole-class forgetting (digits-class) both land closer to the retrained
models' forget-set margins than fine-tuning does."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import unlearnbench
from unlearnbench.cache import ModelCache
from unlearnbench.methods import dmm, oracle_matching
from unlearnbench.methods.base import UnlearnContext
from unlearnbench.stats.population import margins
from unlearnbench.studies.population import retrained_models

SEED = 0
CLI = [str(Path(sys.executable).with_name("unlearnbench"))]


def test_datamodel_recovers_a_linear_population_and_sums_it_over_the_removed():
    models, examples, classes = 60, 7, 3
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    masks = (torch.rand(models, examples, generator=generator) < 0.5).float()
    intercept = torch.randn(examples, classes, generator=generator)
    own = torch.randn(examples, classes, generator=generator)
    per_class = torch.randn(examples, classes, classes, generator=generator)  # x, class k, logit
    onehot = torch.nn.functional.one_hot(labels, classes).float()
    counts = masks @ onehot
    population = dmm.SubsetPopulation(models, examples, classes)
    population.masks.copy_(masks)
    for m in range(models):
        others = counts[m].unsqueeze(0) - masks[m].unsqueeze(1) * onehot  # x, class k
        population.logits[m] = (intercept + masks[m].unsqueeze(1) * own
                                + torch.einsum("nk,nkc->nc", others, per_class))
    fitted_own, fitted_per_class = dmm.datamodel(population, labels, classes)
    # Exactly linear data: least squares (float64) recovers the coefficients up to the
    # float32 rounding of logits of magnitude ~10.
    assert torch.allclose(fitted_own, own, atol=1e-3)
    assert torch.allclose(fitted_per_class, per_class, atol=1e-3)

    removed = np.array([0, 4])  # a class-0 and a class-1 example
    effect = dmm.removal_effect(population, labels, classes, removed)
    # Example 0 is removed: its own coefficient, plus one other removed example of class 1.
    assert torch.allclose(effect[0], own[0] + per_class[0, 1], atol=1e-3)
    # Example 3 (class 0) is kept: one removed example of class 0 and one of class 1.
    assert torch.allclose(effect[3], per_class[3, 0] + per_class[3, 1], atol=1e-3)


@pytest.fixture(scope="module")
def class_scenario(tmp_path_factory):
    cache = ModelCache(tmp_path_factory.mktemp("dmm-model-cache"))
    return unlearnbench.scenario("digits-class", seed=SEED, cache=cache)


def context(scenario, seed=SEED):
    return UnlearnContext(scenario.task, scenario.original, scenario.forget, scenario.retain,
                          scenario.spec.recipe, seed, None, scenario.cache)


def test_matching_set_is_the_forget_set_and_three_times_as_many_retained(class_scenario):
    points = dmm.matching_set(context(class_scenario), 3.0)
    forget = class_scenario.forget
    assert list(points.ids[:len(forget)]) == list(forget.ids)
    rest = points.ids[len(forget):]
    assert len(rest) == 3 * len(forget)
    assert set(rest) <= set(class_scenario.retain.ids)
    again = dmm.matching_set(context(class_scenario), 3.0)
    other = dmm.matching_set(context(class_scenario, SEED + 1), 3.0)
    assert list(again.ids) == list(points.ids) and list(other.ids) != list(points.ids)


def test_oracles_are_retrained_models_apart_from_the_reference_and_cached(class_scenario):
    ctx = context(class_scenario)
    models = oracle_matching.oracles(ctx, 2)
    reference = class_scenario.reference.state_dict()
    for model in models:
        assert any(not torch.equal(value, reference[key])
                   for key, value in model.state_dict().items())
    steps = []
    handle = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: steps.append(1))
    try:
        again = oracle_matching.oracles(ctx, 2)
    finally:
        handle.remove()
    assert steps == []  # from the model cache
    for a, b in zip(models, again):
        for key, value in a.state_dict().items():
            assert torch.equal(value, b.state_dict()[key])


def forget_margin_distance(scenario, model, retrained_margins) -> float:
    """Mean over forget examples of the squared difference between the model's margin and the
    mean margin of the retrained models."""
    forget = scenario.forget
    own = margins(scenario.task.predict_logits(model, forget).numpy(), forget.targets.numpy())
    return float(np.mean((own - retrained_margins) ** 2))


def test_matching_lands_closer_to_retrained_margins_than_finetuning(class_scenario):
    """On digits-class the retrained models give the forgotten class margins around −14 and the
    original about +5. The criterion is the distance to the mean margin of 4 retrained models,
    not to the reference alone, which holds one model's training noise."""
    forget = class_scenario.forget
    retrained = np.mean([margins(class_scenario.task.predict_logits(m, forget).numpy(),
                                 forget.targets.numpy())
                         for m in retrained_models(class_scenario, 4)], axis=0)
    distance = {method: forget_margin_distance(class_scenario,
                                               unlearnbench.unlearn(class_scenario, method)[0],
                                               retrained)
                for method in ("finetune", "dmm", "oracle_matching")}
    original = forget_margin_distance(class_scenario, class_scenario.original, retrained)
    assert distance["oracle_matching"] < distance["dmm"] < distance["finetune"] < original, distance
    # The oracles are retrained models: matching them lands within the retrained models' own
    # spread (a few squared nats), far below fine-tuning's hundreds.
    assert distance["oracle_matching"] < 0.05 * distance["finetune"], distance


@pytest.mark.slow
def test_cli_runs_oracle_matching_and_records_it(tmp_path):
    env = dict(os.environ, NO_COLOR="1", OMP_NUM_THREADS="1",
               UNLEARNBENCH_CACHE=str(tmp_path / "cache"))
    db = tmp_path / "store.db"
    result = subprocess.run([*CLI, "run", "-b", "digits-class", "-m", "oracle_matching",
                             "--set", "oracle_matching.oracles=2", "--db", str(db)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT method, status, params FROM runs").fetchall()
    finally:
        con.close()
    assert [(method, status) for method, status, _ in rows] == [("oracle_matching", "finished")]
    assert '"oracles": 2' in rows[0][2]
