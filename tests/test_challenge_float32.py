"""The challenge's ε on the float32 path (``float32=True``) against a port of the official
code (google-deepmind/unlearning_evaluation, metric.py), and against the float64 default."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearnbench.studies.population import population_name
from unlearnbench.stats.challenge_rules import rule_table
from unlearnbench.stats.population import (
    example_epsilons,
    forget_quality,
    logit_scaled_confidence,
)

DELTA = 1e-5
_SCRIPT = Path(sys.executable).with_name("unlearnbench")
CLI = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "unlearnbench.cli"]


def official_confidence(logits, targets):
    """metric.py's compute_logit_scaled_confidence on a network's float32 logits."""
    logits = np.array(logits, np.float32)
    count = logits.shape[0]
    logits -= np.max(logits, axis=1, keepdims=True)
    probs = np.array(np.exp(logits), dtype=np.float64)
    probs /= np.sum(probs, axis=1, keepdims=True)
    prob_correct = probs[np.arange(count), targets[:count]]
    probs[np.arange(count), targets[:count]] = 0
    prob_wrong = np.sum(probs, axis=1)
    return np.log(prob_correct + 1e-45) - np.log(prob_wrong + 1e-45)


def official_epsilons(unlearned, retrained, delta=DELTA):
    """metric.py's _get_epsilons after the positive / negative split, on the CPU: torch
    float32 single-threshold grid, float64 double-threshold grids, float32 rates, ε from
    NumPy on the float32 rates."""
    retrain_is_positive = np.median(retrained, 0) > np.median(unlearned, 0)
    pos_all = np.where(retrain_is_positive, retrained, unlearned)
    neg_all = np.where(retrain_is_positive, unlearned, retrained)
    epsilons = []
    for i in range(pos_all.shape[1]):
        pos, neg = pos_all[:, i], neg_all[:, i]
        pos_diff, neg_diff = np.ptp(pos), np.ptp(neg)
        if min(pos_diff, neg_diff) / max(pos_diff, neg_diff) < 0.01:
            epsilons.append(50)
            continue
        pos, neg = torch.from_numpy(pos), torch.from_numpy(neg)
        # double threshold: the peakier population is predicted inside [left, right]
        peaky, other = (neg, pos) if pos_diff >= neg_diff else (pos, neg)
        width = min(pos_diff, neg_diff)
        low, high = (peaky.min() + width - 2.0).numpy(), (peaky.max() + 2.0).numpy()
        rights = np.linspace(low, high, num=int(np.ceil((high - low) * 100)))
        left = torch.from_numpy(np.concatenate(
            [np.linspace(r - width - 2.0, r - width + 2.0, num=400) for r in rights]))
        right = torch.from_numpy(np.repeat(rights, 400))

        def inside(c):
            return ((left <= c[:, None]) & (c[:, None] <= right)).type(torch.float32)
        fnr_d, fpr_d = torch.mean(1 - inside(peaky), 0), torch.mean(inside(other), 0)
        # single threshold: torch.linspace in the default float32
        pooled = torch.cat([pos, neg])
        thresholds = torch.linspace(pooled.min(), pooled.max(),
                                    int(torch.ceil((pooled.max() - pooled.min()) * 100)))
        fnr_s = torch.mean((pos[:, None] < thresholds).type(torch.float32), 0)
        fpr_s = torch.mean((neg[:, None] >= thresholds).type(torch.float32), 0)
        fnr = torch.cat([fnr_d, fnr_s]).numpy()
        fpr = torch.cat([fpr_d, fpr_s]).numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            eps = np.clip(np.nanmax([np.log(1 - delta - fpr) - np.log(fnr),
                                     np.log(1 - delta - fnr) - np.log(fpr)], axis=0), 0, None)
        eps[(fpr == 0) & (fnr == 0)] = np.inf
        eps[(fpr == 0) != (fnr == 0)] = np.nan
        epsilons.append(np.nanmax(eps))
    return np.clip(epsilons, 0, 50)


def populations(seed, models=8, examples=6):
    rng = np.random.default_rng(seed)
    centre = rng.normal(0, 3, examples)
    retrained = centre + rng.normal(0, 1, (models, examples)) * rng.uniform(0.3, 2, examples)
    shift = rng.choice([0.0, 0.3, 1.0, 4.0], examples)
    unlearned = centre + shift + rng.normal(0, 1, (models, examples)) * rng.uniform(0.3, 2)
    return unlearned, retrained


def test_confidences_take_the_exponentials_in_float32():
    """The same operations as the official code (float32 shift and exp, float64 after):
    equal to rounding; float32's exp moves s by ~1e-7 relative, visible against float64."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (50, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 50)
    s32 = logit_scaled_confidence(logits, labels, float32=True)
    np.testing.assert_allclose(s32, official_confidence(logits, labels), rtol=1e-12)
    difference = np.abs(s32 - logit_scaled_confidence(logits, labels))
    assert difference.max() > 1e-9 and difference.max() < 1e-5


def test_rates_and_epsilons_are_float32():
    table = rule_table(8, 8, DELTA, np.float32)
    assert table.dtype == np.float32
    fnr, fpr = np.float32(2) / np.float32(8), np.float32(3) / np.float32(8)
    assert table[2, 3] == max(np.log(np.float32(1 - DELTA) - fpr) - np.log(fnr),
                              np.log(np.float32(1 - DELTA) - fnr) - np.log(fpr))
    assert example_epsilons(*populations(0), float32=True).dtype == np.float32


@pytest.mark.parametrize("seed", [0, 1])
def test_float32_path_follows_the_official_code(seed):
    """Same counts, then the same float32 operations on the rates: ε to float32 rounding
    (rtol 1e-6, a few float32 ulps), and the same buckets."""
    unlearned, retrained = populations(seed)
    eps = example_epsilons(unlearned, retrained, float32=True)
    expected = official_epsilons(unlearned, retrained)
    np.testing.assert_allclose(eps, expected, rtol=1e-6)
    assert forget_quality(eps, 8) == forget_quality(expected, 8)


def test_both_paths_agree_on_typical_data():
    """Rates k/N differ by float32 rounding (~6e-8 relative), so each ε by ~1e-6 at most
    (ε ≤ ln N + 12 for finite values); F is the same unless an ε sits that close to a
    bucket boundary, which random normal data does not produce."""
    unlearned, retrained = populations(3, models=16, examples=40)
    eps32 = example_epsilons(unlearned, retrained, float32=True)
    eps64 = example_epsilons(unlearned, retrained)
    assert eps64.dtype == np.float64
    np.testing.assert_allclose(eps32, eps64, rtol=1e-6, atol=1e-6)
    assert forget_quality(eps32, 16) == forget_quality(eps64, 16)


def test_a_score_on_a_float32_threshold_flips_the_bucket():
    """The pooled scores span [0, 1]: 100 thresholds, the 47th = 46/99 in float64 but a
    little below it in torch's float32 grid. A retrained (positive) score placed exactly on
    the float32 threshold, above every unlearned score: that threshold separates the two
    populations perfectly (ε = ∞, capped at 50) in the official computation, while the float64
    grid's threshold lies above the score and finds no perfect rule (ε = ln 3 from another)."""
    on_threshold = float(torch.linspace(0.0, 1.0, 100)[46])
    assert on_threshold < 46 / 99
    retrained = np.array([[on_threshold], [0.65], [0.87], [1.0]])
    unlearned = np.array([[0.0], [0.05], [0.12], [0.463]])
    eps32 = example_epsilons(unlearned, retrained, float32=True)
    assert eps32[0] == official_epsilons(unlearned, retrained)[0] == 50
    assert example_epsilons(unlearned, retrained)[0] == pytest.approx(np.log(3), abs=1e-4)


@pytest.mark.slow
def test_population_command_takes_the_float32_path(tmp_path):
    """`unlearnbench population --float32` stores its records under a name of their own."""
    from unlearnbench.store import Store

    db = tmp_path / "runs.db"
    env = dict(os.environ, UNLEARNBENCH_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1",
               NO_COLOR="1", COLUMNS="250")
    result = subprocess.run([*CLI, "population", "-b", "digits-random10", "-m", "original",
                             "--models", "3", "--float32", "--db", str(db)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    name = population_name("digits-random10", 3, float32=True)
    assert name == "digits-random10 population N=3 float32" and name in result.stdout
    [run] = Store(db).runs(name)
    assert run["status"] == "finished" and run["metrics"]["challenge_forget_quality"] == 0.0
