"""The independent retrain (``retrain_independent``, the noise floor of the language tables) on
the small language scenario, and the checks of ``benchmarks/calibrate.py`` on small synthetic
numbers. (The classification contract of every registered method, this one included, is in
``test_methods_contract.py``.)"""
from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import unlearnbench
from unlearnbench.cache import ModelCache
from unlearnbench.methods.retrain_independent import training_seed
from unlearnbench.sweep.jobs import plan
from unlearnbench.unlearning import train_cached as train_cached

SEED = 0


def calibrate_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "calibrate.py"
    spec = importlib.util.spec_from_file_location("calibrate", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["calibrate"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


calibrate = calibrate_module()


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    one, two = a.state_dict(), b.state_dict()
    return one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)


@pytest.fixture(scope="module")
def scenario(language_scenario):
    return language_scenario


@pytest.fixture(scope="module")
def independent(scenario):
    """The independent retrain at seed SEED, with the original's weights before and after."""
    before = snapshot(scenario.original)
    model, timings = unlearnbench.unlearn(scenario, "retrain_independent", seed=SEED)
    return model, timings, before, snapshot(scenario.original)


def test_it_is_not_the_reference_and_leaves_the_original_alone(scenario, independent):
    model, _, before, after = independent
    assert scenario.spec.model_seed == SEED  # the reference is trained with the run seed's value
    assert not same_weights(model, scenario.reference)
    assert model is not scenario.original
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_deterministic_under_a_seed_and_another_model_per_seed(scenario, independent, tmp_path):
    """Trained again in an empty cache, the same seed gives the same weights; seed 1 another."""
    model = independent[0]
    elsewhere = dataclasses.replace(scenario, cache=ModelCache(tmp_path / "cache"))
    again, timings = unlearnbench.unlearn(elsewhere, "retrain_independent", seed=SEED)
    assert timings["steps"] > 0  # really trained, not read from the first run's cache
    assert same_weights(model, again)
    other, _ = unlearnbench.unlearn(elsewhere, "retrain_independent", seed=SEED + 1)
    assert not same_weights(model, other)


def test_cached_like_a_reference_of_its_training_seed(scenario, independent):
    """A reference trained with the independent retrain's seed is the cached model itself."""
    model = independent[0]
    reference, meta = train_cached(scenario.cache, scenario.task, scenario.spec,
                                    scenario.task.data.training_split(False),
                                    training_seed(SEED), "retrained")
    assert meta["cached"] and meta["train_seconds"] > 0
    assert same_weights(model, reference)
    again, timings = unlearnbench.unlearn(scenario, "retrain_independent", seed=SEED)
    assert timings["steps"] == 0 and same_weights(model, again)


def test_a_capped_run_trains_within_the_cap_and_caches_nothing(scenario, tmp_path):
    cache = ModelCache(tmp_path / "cache")
    capped = dataclasses.replace(scenario, cache=cache)
    _, timings = unlearnbench.unlearn(capped, "retrain_independent", seed=SEED, max_steps=2)
    assert timings["steps"] == 2
    assert not list((tmp_path / "cache").rglob("*.safetensors"))


def test_language_tables_show_the_noise_floor_by_default():
    methods = {job.method for job in plan(["entities-forget05"], [], [0])}
    assert "retrain_independent" in methods
    assert "retrain_independent" not in {job.method for job in plan(["digits-random10"], [], [0])}


# -- the calibration checks on synthetic numbers ------------------------------------------------

COMPONENTS = {name: 0.5 for name in calibrate.UTILITY}
REFERENCE = {"forget_quality": 1.0, "forget_truth_ratio": 0.78, "forget_prob": 0.30,
             "retain_prob": 0.95, "privleak": 0.0, "model_utility": 0.75, **COMPONENTS}
ORIGINAL = {"forget_quality": 1e-25, "forget_truth_ratio": 0.62, "forget_prob": 0.98,
            "retain_prob": 0.97, "privleak": -90.0, "model_utility": 0.77, **COMPONENTS}


def null_runs(qualities, **values) -> list[dict]:
    return [dict(REFERENCE, forget_quality=q, **values) for q in qualities]


def test_every_check_passes_on_a_calibrated_benchmark():
    """Every TOFU check passes; MUSE's (VerbMem, KnowMem) are SKIP on entities-like numbers."""
    results = calibrate.checks(REFERENCE, ORIGINAL, null_runs([0.9, 0.6, 0.3, 0.04, 0.7],
                                                              forget_truth_ratio=0.76))
    assert [c.verdict for c in results if "mem" not in c.name.lower()] == ["PASS"] * 9, results


def test_null_forget_quality_needs_most_seeds_at_or_above_005():
    assert calibrate.null_forget_quality(null_runs([0.9, 0.6, 0.3, 0.04, 0.7])).passed
    assert calibrate.null_forget_quality(null_runs([0.9, 0.6, 0.3, 0.04, 0.01])).passed is False


@pytest.mark.parametrize("metric, near, far", [("forget_truth_ratio", 0.74, 0.70),
                                               ("forget_prob", 0.33, 0.40),
                                               ("privleak", -8.0, -15.0)])
def test_null_values_must_lie_near_the_reference(metric, near, far):
    assert calibrate.near_reference(metric, REFERENCE, null_runs([0.5], **{metric: near})).passed
    check = calibrate.near_reference(metric, REFERENCE, null_runs([0.5, 0.5], **{metric: far}))
    assert check.passed is False and check.verdict == "FAIL"


def test_separation_of_the_original():
    assert calibrate.separation_quality(ORIGINAL).passed
    assert calibrate.separation_quality(dict(ORIGINAL, forget_quality=0.01)).passed is False
    null = null_runs([0.5, 0.5])
    assert calibrate.separation_truth_ratio(ORIGINAL, REFERENCE, null).passed
    # within the margin of the reference's truth ratio
    close = dict(ORIGINAL, forget_truth_ratio=0.75)
    assert calibrate.separation_truth_ratio(close, REFERENCE, null).passed is False
    # below the reference, but an independent retrain is lower still
    noisy = null_runs([0.5], forget_truth_ratio=0.60)
    assert calibrate.separation_truth_ratio(ORIGINAL, REFERENCE, noisy).passed is False


def test_utility_within_ten_percent_with_every_component_far_from_zero():
    assert calibrate.utility(ORIGINAL, REFERENCE).passed
    assert calibrate.utility(dict(ORIGINAL, model_utility=0.60), REFERENCE).passed is False
    collapsed = dict(REFERENCE, world_facts_rouge=0.01)
    check = calibrate.utility(ORIGINAL, collapsed)
    assert check.passed is False and "world_facts_rouge of the reference" in check.detail


def test_privleak_of_the_original_must_be_strongly_negative():
    assert calibrate.privleak_target(ORIGINAL).passed
    assert calibrate.privleak_target(dict(ORIGINAL, privleak=-20.0)).passed is False


def test_a_metric_the_benchmark_lacks_is_skipped():
    """news-mini has no truth ratios and no model utility: those checks are SKIP, not FAIL."""
    news = {"privleak": -95.0, "forget_prob": 0.9}
    results = {c.name: c.verdict for c in calibrate.checks({"privleak": 0.0, "forget_prob": 0.3},
                                                           news, [{"privleak": 2.0,
                                                                   "forget_prob": 0.31}])}
    assert results["null forget quality"] == "SKIP" and results["model utility"] == "SKIP"
    assert results["null privleak"] == "PASS" and results["original PrivLeak"] == "PASS"
