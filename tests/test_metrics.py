"""Every classification metric against cases whose answers are computed by hand: accuracy,
confidence, MIA-efficacy, Avg. Gap and the timing metrics on the hand-made lookup-table
scenario of ``metric_fixtures.py``."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from unlearnbench.metrics import mia as mia_module
from unlearnbench.metrics.evaluation import evaluate
from unlearnbench.metrics.mia import svc_mia_efficacy

from metric_fixtures import (CONFIDENCE, CORRECT, EXPECTED_R, EXPECTED_U, EXPECTED_U_GAP,
                             FORGET_IDS, R_ROWS, RETAIN_IDS, TEST_IDS, U_ROWS, TableModel,
                             make_scenario)

# --------------------------------------------------------------------------------------------
# Accuracy family
# --------------------------------------------------------------------------------------------
def test_lookup_model_is_what_the_hand_computation_assumes():
    """Guard for the fixture itself: confidences and correctness are the tabulated ones."""
    scenario = make_scenario()
    model = TableModel(U_ROWS)
    for name in ("forget", "retain", "test"):
        split = scenario.splits[name]
        logits = model(split.inputs)
        probabilities = torch.softmax(logits.double(), 1)
        confidence = probabilities[torch.arange(len(split)), split.targets].numpy()
        expected = [CONFIDENCE[k] for k in U_ROWS[name]]
        np.testing.assert_allclose(confidence, expected, rtol=1e-9)
        correct = (logits.argmax(1) == split.targets).numpy().astype(float)
        np.testing.assert_array_equal(correct, [CORRECT[k] for k in U_ROWS[name]])


def test_accuracy_metrics_hand_computed():
    scenario = make_scenario()
    results = evaluate(scenario, TableModel(U_ROWS),
                       names=["forget_accuracy", "ua", "ra", "ta"])
    assert results["forget_accuracy"].value == pytest.approx(75.0)  # 3 of 4 correct
    assert results["ua"].value == pytest.approx(25.0)
    assert results["ra"].value == pytest.approx(500.0 / 6.0)       # 5 of 6 correct
    assert results["ta"].value == pytest.approx(75.0)               # 3 of 4 correct

    fa, ua, ra, ta = (results[k] for k in ("forget_accuracy", "ua", "ra", "ta"))
    assert fa.split == "forget" and ua.split == "forget"
    assert ra.split == "retain" and ta.split == "test"
    np.testing.assert_array_equal(fa.ids, FORGET_IDS)
    np.testing.assert_array_equal(ua.ids, FORGET_IDS)
    np.testing.assert_array_equal(ra.ids, RETAIN_IDS)
    np.testing.assert_array_equal(ta.ids, TEST_IDS)
    np.testing.assert_array_equal(fa.per_example, [1, 1, 1, 0])
    np.testing.assert_array_equal(ua.per_example, [0, 0, 0, 1])
    np.testing.assert_array_equal(ra.per_example, [1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(ta.per_example, [1, 1, 0, 1])
    # Per-example values average to the reported percentage.
    for result in (fa, ua, ra, ta):
        assert 100.0 * result.per_example.mean() == pytest.approx(result.value)


def test_confidence_metrics_hand_computed():
    """Softmax probability of the true label: sure = 1/(1+9e^-10), unsure = e/(e+9),
    wrong = 1/(e+9) over 10 classes (see CONFIDENCE)."""
    results = evaluate(make_scenario(), TableModel(U_ROWS),
                       names=["forget_confidence", "test_confidence"])
    for name, split in (("forget_confidence", "forget"), ("test_confidence", "test")):
        expected = [CONFIDENCE[k] for k in U_ROWS[split]]
        np.testing.assert_allclose(results[name].per_example, expected, rtol=1e-9)
        assert results[name].value == pytest.approx(np.mean(expected))
    assert results["forget_confidence"].value == pytest.approx(
        (2 * CONFIDENCE["sure"] + CONFIDENCE["unsure"] + CONFIDENCE["wrong"]) / 4)


def test_accuracy_metrics_of_reference_hand_computed():
    scenario = make_scenario()
    results = evaluate(scenario, scenario.reference, names=list(EXPECTED_R))
    for name, expected in EXPECTED_R.items():
        assert results[name].value == pytest.approx(expected), name


# --------------------------------------------------------------------------------------------
# MIA-efficacy
# --------------------------------------------------------------------------------------------
def test_svc_mia_forget_like_non_members_is_100_and_like_members_is_0():
    members = np.array([0.99, 0.995, 0.999, 1.0, 0.985, 0.997])
    non_members = np.array([0.10, 0.25, 0.05, 0.30, 0.15, 0.20])
    value, predicted = svc_mia_efficacy(members, non_members, non_members.copy())
    assert value == pytest.approx(100.0)
    np.testing.assert_array_equal(predicted, np.zeros(6))
    value, predicted = svc_mia_efficacy(members, non_members, members.copy())
    assert value == pytest.approx(0.0)
    np.testing.assert_array_equal(predicted, np.ones(6))
    # Half like each: 50.
    value, _ = svc_mia_efficacy(members, non_members, np.array([0.999, 0.1]))
    assert value == pytest.approx(50.0)


def test_mia_metric_on_scenario_forget_equal_to_test_or_to_retain():
    """Through the registered metric: forget logits copied from the test (non-member) rows
    give efficacy 100; copied from the retain (member) rows give 0."""
    like_test = dict(U_ROWS, forget=list(U_ROWS["test"]))
    like_retain = dict(U_ROWS, forget=list(U_ROWS["retain"][:4]))
    scenario = make_scenario()
    result = evaluate(scenario, TableModel(like_test), names=["mia_efficacy"])["mia_efficacy"]
    assert result.value == pytest.approx(100.0)
    np.testing.assert_array_equal(result.per_example, np.zeros(4))
    result = evaluate(scenario, TableModel(like_retain), names=["mia_efficacy"])["mia_efficacy"]
    assert result.value == pytest.approx(0.0)
    np.testing.assert_array_equal(result.per_example, np.ones(4))


def test_mia_metric_hand_computed_with_ids():
    scenario = make_scenario()
    result = evaluate(scenario, TableModel(U_ROWS), names=["mia_efficacy"])["mia_efficacy"]
    assert result.value == pytest.approx(50.0)
    assert result.split == "forget"
    np.testing.assert_array_equal(result.ids, FORGET_IDS)
    # 1 = judged member: the two "sure" forget examples.
    np.testing.assert_array_equal(result.per_example, [1, 1, 0, 0])


def test_svc_mia_uses_first_len_non_member_members_behaviour():
    """Members beyond the first len(non_member) must not enter the attack: here they look
    exactly like non-members and outnumber them 20 to 1, so using them would make the attack
    call the target a member (efficacy 0); balanced, it calls it a non-member (100)."""
    members = np.concatenate([np.full(5, 0.9), np.full(100, 0.05)])
    non_members = np.full(5, 0.05)
    value, _ = svc_mia_efficacy(members, non_members, np.full(3, 0.05))
    assert value == pytest.approx(100.0)


class RecordingSVC:
    """Stands in for sklearn's SVC to record what the attack is fitted on."""

    fits: list = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def fit(self, features, labels):
        RecordingSVC.fits.append((self.kwargs, np.array(features), np.array(labels)))
        return self

    def predict(self, features):
        return np.ones(len(features))


def test_svc_mia_fits_balanced_classes_with_first_members(monkeypatch):
    monkeypatch.setattr(mia_module, "SVC", RecordingSVC)
    RecordingSVC.fits = []
    members = np.arange(10, dtype=float) / 10 + 0.01
    non_members = np.array([0.5, 0.6, 0.7])
    svc_mia_efficacy(members, non_members, np.array([0.2]))
    kwargs, features, labels = RecordingSVC.fits[-1]
    assert kwargs == {"C": 3, "gamma": "auto", "kernel": "rbf"}
    assert features.shape == (6, 1)
    np.testing.assert_array_equal(features[:, 0], np.concatenate([members[:3], non_members]))
    np.testing.assert_array_equal(labels, [1, 1, 1, 0, 0, 0])

    # Fewer members than non-members: non-members are cut to match (classes stay balanced).
    svc_mia_efficacy(members[:2], non_members, np.array([0.2]))
    _, features, labels = RecordingSVC.fits[-1]
    np.testing.assert_array_equal(features[:, 0], np.concatenate([members[:2], non_members[:2]]))
    np.testing.assert_array_equal(labels, [1, 1, 0, 0])

    # The documented cap on the attack's training set: the first max_per_class of each.
    svc_mia_efficacy(members, non_members, np.array([0.2]), max_per_class=2)
    _, features, labels = RecordingSVC.fits[-1]
    np.testing.assert_array_equal(features[:, 0], np.concatenate([members[:2], non_members[:2]]))
    np.testing.assert_array_equal(labels, [1, 1, 0, 0])


def test_mia_metric_attack_uses_retain_vs_test_confidences(monkeypatch):
    """The metric's members are the retain set's true-label confidences (first len(test) of
    them), its non-members the test set's, and it predicts on the forget set."""
    monkeypatch.setattr(mia_module, "SVC", RecordingSVC)
    RecordingSVC.fits = []
    scenario = make_scenario()
    evaluate(scenario, TableModel(U_ROWS), names=["mia_efficacy"])
    _, features, labels = RecordingSVC.fits[-1]
    expected = [CONFIDENCE[k] for k in U_ROWS["retain"][:4]] + \
        [CONFIDENCE[k] for k in U_ROWS["test"]]
    np.testing.assert_allclose(features[:, 0], expected, rtol=1e-9)
    np.testing.assert_array_equal(labels, [1, 1, 1, 1, 0, 0, 0, 0])


# --------------------------------------------------------------------------------------------
# Avg. Gap
# --------------------------------------------------------------------------------------------
def test_avg_gap_of_reference_itself_is_zero():
    scenario = make_scenario()
    assert evaluate(scenario, scenario.reference, names=["avg_gap"])["avg_gap"].value == 0.0
    # A different object with the same weights as the reference: also exactly 0.
    twin = copy.deepcopy(scenario.reference)
    assert evaluate(scenario, twin, names=["avg_gap"])["avg_gap"].value == 0.0


def test_avg_gap_hand_computed():
    scenario = make_scenario()
    results = evaluate(scenario, TableModel(U_ROWS))
    for name, expected in EXPECTED_U.items():
        assert results[name].value == pytest.approx(expected), name
    # (|25-50| + |83.33-100| + |75-50| + |50-100|) / 4
    assert results["avg_gap"].value == pytest.approx(EXPECTED_U_GAP)
    assert results["avg_gap"].value == pytest.approx(29.166666666666668)


def test_avg_gap_is_symmetric_in_sign_of_differences():
    """Absolute differences: swapping which model is the reference keeps the gap."""
    swapped = make_scenario(reference_rows=U_ROWS)
    value = evaluate(swapped, TableModel(R_ROWS), names=["avg_gap"])["avg_gap"].value
    assert value == pytest.approx(EXPECTED_U_GAP)


# --------------------------------------------------------------------------------------------
# Efficiency
# --------------------------------------------------------------------------------------------
def test_speedup_and_timings_from_given_values():
    scenario = make_scenario(train_seconds=2.0)
    timings = {"unlearn_seconds": 0.5, "unlearn_cpu_seconds": 0.75, "steps": 3}
    results = evaluate(scenario, TableModel(U_ROWS), timings=timings,
                       names=["speedup", "unlearn_seconds", "unlearn_cpu_seconds",
                              "retrain_seconds"])
    assert results["speedup"].value == pytest.approx(4.0)  # 2.0 / 0.5
    assert results["unlearn_seconds"].value == pytest.approx(0.5)
    assert results["unlearn_cpu_seconds"].value == pytest.approx(0.75)
    assert results["retrain_seconds"].value == pytest.approx(2.0)


def test_timing_metrics_without_timings_are_none():
    scenario = make_scenario(train_seconds=2.0)
    results = evaluate(scenario, TableModel(U_ROWS),
                       names=["speedup", "unlearn_seconds", "unlearn_cpu_seconds",
                              "retrain_seconds"])
    assert results["speedup"].value is None
    assert results["unlearn_seconds"].value is None
    assert results["unlearn_cpu_seconds"].value is None
    assert results["retrain_seconds"].value == pytest.approx(2.0)  # from the cache metadata
