"""S3T: its slice orders, its accounting on a hand-made deletion with a known answer (which
sequence each affected shard falls back to, the slices lost, the steps retrained), exactness
(bitwise equal to training that sequence from scratch without the deleted points), and its
quality against SISA on the same request."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_methods_exact import count_steps

import unlearnbench
from unlearnbench import registry
from unlearnbench.cache import ModelCache
from unlearnbench.errors import UserError
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.methods import s3t, sisa
from unlearnbench.methods.base import UnlearnContext
from unlearnbench.train import StepBudget

SEED = 0
CLI = [str(Path(sys.executable).with_name("unlearnbench"))]
# S3T and SISA here are both exact ensembles of 5 shard models trained on the same retained
# data; they differ only in the slice order of two shard models, i.e. in training noise. 2
# points of test accuracy is 9 of the 445 digits test examples, above that noise (SISA's test
# accuracy over seeds 0-2 on digits has a standard deviation under half a point).
ACCURACY_MARGIN = 2.0


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    cache = ModelCache(tmp_path_factory.mktemp("s3t-model-cache"))
    return unlearnbench.scenario("digits-random10", seed=SEED, cache=cache)


def test_sequences_are_cyclic_rotations_spread_evenly():
    assert s3t.sequences(4, 4) == [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]]
    assert s3t.sequences(4, 2) == [[0, 1, 2, 3], [2, 3, 0, 1]]
    assert s3t.sequences(3, 1) == [[0, 1, 2]]  # SISA's order
    with pytest.raises(UserError, match="sequences"):
        s3t.sequences(4, 5)
    assert s3t.clean_prefix([1, 2, 3, 0], {0}) == 3
    assert s3t.clean_prefix([0, 1, 2, 3], {0}) == 0
    assert s3t.clean_prefix([0, 1, 2, 3], set()) == 4


@pytest.fixture(scope="module")
def request_by_hand(scenario):
    """One example in slice 0 of shard 0, one in slice 0 and one in slice 2 of shard 1, one in
    the last slice (3) of shard 3; shards 2 and 4 untouched."""
    data = sisa.training_data(scenario.forget, scenario.retain)
    layout = sisa.make_layout(data, 5, 4, SEED)
    chosen = np.array([layout.slices[0][0][3], layout.slices[1][0][0], layout.slices[1][2][4],
                       layout.slices[3][3][1]])
    rest = np.setdiff1d(np.arange(len(data)), chosen)
    return layout, data.subset(chosen, "forget"), data.subset(rest, "retain")


def run(scenario, method, params, forget, retain):
    ctx = UnlearnContext(scenario.task, scenario.original, forget, retain, scenario.spec.recipe,
                         SEED, StepBudget(), scenario.cache)
    entry = registry.methods.get(method)
    entry.attributes["prepare"](ctx, params)  # the untimed original training, not counted
    (model, steps) = count_steps(lambda: entry.obj(ctx, params))
    assert steps == ctx.budget.used
    return model, steps


def test_hand_made_deletion_has_the_known_accounting_and_is_exact(scenario, request_by_hand):
    layout, forget, retain = request_by_hand
    recipe = scenario.spec.recipe
    model, steps = run(scenario, "s3t", s3t.S3tParams(), forget, retain)
    # Orders 0123, 1230, 2301, 3012. Shard 0 (slice 0 dirty): order 1230 keeps 3 slices.
    # Shard 1 (slices 0, 2): 1230 and 3012 keep 1, the first wins. Shard 3 (slice 3): 0123
    # keeps 3. SISA (order 0123 only) loses 4 + 4 + 1 = 9 slices, S3T 1 + 3 + 1 = 5.
    assert model.s3t_info["affected"] == [(0, 1, 3), (1, 1, 1), (3, 0, 3)]
    assert model.s3t_info["lost_slices"] == 5

    epochs = sisa.stage_epochs(sisa.SisaParams(), recipe)
    orders = s3t.sequences(4, 4)
    expected = 0
    for shard, sequence, prefix in model.s3t_info["affected"]:
        kept = sisa.reduced_slices(layout, shard, forget.ids)
        for stage in range(prefix, 4):
            size = sum(len(kept[part]) for part in orders[sequence][:stage + 1])
            expected += epochs * -(-size // recipe.batch_size)
    assert steps == expected

    sisa_model, sisa_steps = run(scenario, "sisa", sisa.SisaParams(), forget, retain)
    assert sisa_model.sisa_info["retrained"] == [(0, 0), (1, 0), (3, 3)]
    sisa_lost = sum(4 - first for _, first in sisa_model.sisa_info["retrained"])
    assert model.s3t_info["lost_slices"] < sisa_lost == 9
    assert steps < sisa_steps

    # Exact: each shard model is its sequence trained from scratch on the retained data.
    for shard, sequence in [(0, 1), (1, 1), (2, 0), (3, 0), (4, 0)]:
        kept = sisa.reduced_slices(layout, shard, forget.ids)
        scratch = s3t.train_sequence(scenario.task, layout, shard, sequence, orders[sequence],
                                     recipe, epochs, SEED, slices=kept)
        for key, value in scratch.state_dict().items():
            assert torch.equal(model.members[shard].state_dict()[key], value), (shard, key)
    for shard in (2, 4):  # untouched: sequence 0 of S3T is SISA's shard model
        for key, value in sisa_model.members[shard].state_dict().items():
            assert torch.equal(model.members[shard].state_dict()[key], value)

    ta = {name: evaluate(scenario, m, names=["ta"])["ta"].value
          for name, m in (("s3t", model), ("sisa", sisa_model))}
    assert ta["s3t"] >= ta["sisa"] - ACCURACY_MARGIN, ta


def test_serving_the_prefix_costs_no_steps(scenario, request_by_hand):
    layout, forget, retain = request_by_hand
    model, steps = run(scenario, "s3t", s3t.S3tParams(retrain=False), forget, retain)
    assert steps == 0
    assert model.s3t_info["lost_slices"] == 5
    checkpoints, _ = s3t.prepare(scenario.task, layout, s3t.sequences(4, 4), scenario.spec.recipe,
                                 sisa.stage_epochs(sisa.SisaParams(), scenario.spec.recipe), SEED,
                                 scenario.cache)
    served = s3t.state_of(checkpoints, 1, 1, 0)  # shard 1 serves order 1230 after slice 1
    for key, value in model.members[1].state_dict().items():
        assert torch.equal(value, served[key])
    # Fewer slices in three shard models: some accuracy lost, bounded (3 of 20 slices gone).
    sisa_model, _ = run(scenario, "sisa", sisa.SisaParams(), forget, retain)
    ta = {name: evaluate(scenario, m, names=["ta"])["ta"].value
          for name, m in (("s3t", model), ("sisa", sisa_model))}
    assert ta["s3t"] >= ta["sisa"] - 2 * ACCURACY_MARGIN, ta


def test_serving_with_no_clean_prefix_left_is_a_user_error(scenario):
    # A random 10% leaves every slice (about 60 examples) dirty.
    with pytest.raises(UserError, match="s3t.retrain=true"):
        unlearnbench.unlearn(scenario, "s3t", {"retrain": False})


@pytest.mark.slow
def test_cli_refuses_more_sequences_than_slices(tmp_path):
    env = dict(os.environ, NO_COLOR="1", OMP_NUM_THREADS="1",
               UNLEARNBENCH_CACHE=str(tmp_path / "cache"))
    result = subprocess.run([*CLI, "run", "-b", "digits-random10", "-m", "s3t", "--set",
                             "s3t.sequences=5", "--db", str(tmp_path / "store.db")],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "error: s3t.sequences=5 exceeds s3t.slices=4" in result.stderr
