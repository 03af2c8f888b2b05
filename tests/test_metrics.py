"""Every registered classification metric against cases whose answers are computed by hand.

The hand-made scenario uses a "lookup-table" model: each example's single input feature holds
its row number in a logits table, and the model returns that row. So every prediction and
every true-label confidence is chosen by the test, and UA / RA / TA / forget accuracy /
MIA-efficacy / Avg. Gap are known exactly (see the tables below). The last test runs every
registered classification metric on a real (small) scenario, in the spirit of sklearn's
``check_estimator``, so that a newly registered metric is checked automatically.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import unlearnbench
from unlearnbench import registry
from unlearnbench.cache import ModelCache
from unlearnbench.data import DataBundle, make_split
from unlearnbench.metrics import mia as mia_module
from unlearnbench.metrics.evaluation import MetricResult, evaluate
from unlearnbench.metrics.inference import InferenceCache
from unlearnbench.metrics.mia import svc_mia_efficacy
from unlearnbench.scenario import Scenario
from unlearnbench.specs import BenchmarkSpec, ForgetSpec, Recipe
from unlearnbench.tasks.classification import ClassificationTask

NUM_CLASSES = 10

# --------------------------------------------------------------------------------------------
# A scenario whose every logit is chosen by hand
# --------------------------------------------------------------------------------------------
# Kinds of rows (logits over 10 classes, for an example whose true label is y):
#   "sure"   : logit 10 on y, 0 elsewhere   -> correct, confidence 1/(1+9e^-10) ~ 0.9996
#   "unsure" : logit 1 on y, 0 elsewhere    -> correct, confidence e/(e+9)      ~ 0.232
#   "wrong"  : logit 1 on (y+1)%10, 0 else  -> wrong,   confidence 1/(e+9)      ~ 0.085
# Members (retain) are all "sure"; non-members (test) are "unsure"/"wrong", so the SVC attack
# separates them cleanly: a forget example is judged a member iff it is "sure".
CONFIDENCE = {
    "sure": 1.0 / (1.0 + 9.0 * math.exp(-10.0)),
    "unsure": math.e / (math.e + 9.0),
    "wrong": 1.0 / (math.e + 9.0),
}
CORRECT = {"sure": 1.0, "unsure": 1.0, "wrong": 0.0}

# Split sizes and their (deliberately non-trivial) example ids.
FORGET_IDS = np.array([10, 3, 7, 42])
RETAIN_IDS = np.array([0, 1, 2, 4, 5, 6])
TEST_IDS = np.array([100, 101, 102, 103])
VALIDATION_IDS = np.array([200, 201])
FORGET_Y = [1, 2, 3, 4]
RETAIN_Y = [0, 5, 6, 7, 8, 9]
TEST_Y = [9, 8, 7, 6]
VALIDATION_Y = [0, 1]

# The evaluated model "U" and the retrained reference "R".
#   U: forget sure,sure,unsure,wrong -> forget acc 3/4 = 75, UA 25;
#      MIA predicts member for the two "sure" -> efficacy 2/4 non-members = 50
#      retain: 5 of 6 correct -> RA 83.33 (the wrong one is the 6th: beyond the first
#      len(test) = 4 retain examples, so it is not used as an attack member)
#      test: 3 of 4 correct -> TA 75
#   R: forget unsure,wrong,wrong,unsure -> forget acc 50, UA 50, MIA 100 (no "sure")
#      retain all correct -> RA 100; test 2 of 4 -> TA 50
#   Avg. Gap(U) = (|25-50| + |83.33-100| + |75-50| + |50-100|) / 4
#               = (25 + 100/6 + 25 + 50) / 4 = 29.1666...
U_ROWS = {
    "forget": ["sure", "sure", "unsure", "wrong"],
    "retain": ["sure", "sure", "sure", "sure", "sure", "wrong"],
    "test": ["unsure", "unsure", "wrong", "unsure"],
    "validation": ["sure", "sure"],
}
R_ROWS = {
    "forget": ["unsure", "wrong", "wrong", "unsure"],
    "retain": ["sure"] * 6,
    "test": ["unsure", "wrong", "wrong", "unsure"],
    "validation": ["sure", "sure"],
}
ORIGINAL_ROWS = {name: ["sure"] * len(rows) for name, rows in U_ROWS.items()}
EXPECTED_U = {"forget_accuracy": 75.0, "ua": 25.0, "ra": 500.0 / 6.0, "ta": 75.0,
              "mia_efficacy": 50.0}
EXPECTED_R = {"forget_accuracy": 50.0, "ua": 50.0, "ra": 100.0, "ta": 50.0,
              "mia_efficacy": 100.0}
EXPECTED_U_GAP = (25.0 + 100.0 / 6.0 + 25.0 + 50.0) / 4.0

SPLIT_ORDER = ("forget", "retain", "test", "validation")
SPLIT_IDS = {"forget": FORGET_IDS, "retain": RETAIN_IDS, "test": TEST_IDS,
             "validation": VALIDATION_IDS}
SPLIT_Y = {"forget": FORGET_Y, "retain": RETAIN_Y, "test": TEST_Y, "validation": VALIDATION_Y}


def _offsets() -> dict[str, int]:
    """Row number of each split's first example in the shared logits table."""
    out, start = {}, 0
    for name in SPLIT_ORDER:
        out[name] = start
        start += len(SPLIT_Y[name])
    return out


OFFSETS = _offsets()
TOTAL_ROWS = sum(len(y) for y in SPLIT_Y.values())


def logits_row(kind: str, label: int) -> torch.Tensor:
    row = torch.zeros(NUM_CLASSES)
    if kind == "sure":
        row[label] = 10.0
    elif kind == "unsure":
        row[label] = 1.0
    elif kind == "wrong":
        row[(label + 1) % NUM_CLASSES] = 1.0
    else:
        raise ValueError(kind)
    return row


class TableModel(nn.Module):
    """Returns row ``x[:, 0]`` of a fixed logits table; counts its forward calls."""

    def __init__(self, rows: dict[str, list[str]]):
        super().__init__()
        table = torch.zeros(TOTAL_ROWS, NUM_CLASSES)
        for name in SPLIT_ORDER:
            for i, (kind, label) in enumerate(zip(rows[name], SPLIT_Y[name])):
                table[OFFSETS[name] + i] = logits_row(kind, label)
        self.register_buffer("table", table)  # part of the state_dict -> of the fingerprint
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.table[x[:, 0].long()]


def make_splits() -> dict:
    splits = {}
    for name in SPLIT_ORDER:
        rows = np.arange(len(SPLIT_Y[name]), dtype=np.float32)[:, None] + OFFSETS[name]
        splits[name] = make_split(name, rows, SPLIT_Y[name], SPLIT_IDS[name])
    return splits


def make_scenario(model_rows=ORIGINAL_ROWS, reference_rows=R_ROWS,
                  train_seconds: float = 2.0) -> Scenario:
    splits = make_splits()
    data = DataBundle("table", splits["retain"], splits["validation"], splits["test"],
                      NUM_CLASSES)
    task = ClassificationTask(data, "mlp")
    spec = BenchmarkSpec("table", "table", "mlp", Recipe(), ForgetSpec())
    return Scenario(spec, 0, task, splits, TableModel(model_rows), TableModel(reference_rows),
                    original_meta={"train_seconds": 3.0},
                    reference_meta={"train_seconds": train_seconds})


def classification_metric_names() -> list[str]:
    """Classification metrics that apply to every scenario (those needing a corrective
    scenario's extra splits are checked in test_forget_kinds.py)."""
    return [e.name for e in registry.metrics.entries()
            if "classification" in e.attributes.get("tasks", ()) and not e.attributes.get("splits")]


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


# --------------------------------------------------------------------------------------------
# Shared inference cache
# --------------------------------------------------------------------------------------------
def test_all_metrics_make_one_pass_per_model_and_split():
    scenario = make_scenario()
    model = TableModel(U_ROWS)
    cache = InferenceCache(scenario.task)
    results = evaluate(scenario, model, cache=cache,
                       timings={"unlearn_seconds": 0.5, "unlearn_cpu_seconds": 0.5})
    assert set(results) == set(classification_metric_names())
    # The classification metrics read forget, retain and test (never validation), for the
    # model and for the reference (Avg. Gap): 2 models x 3 splits = 6 distinct pairs, plus
    # ZRF's randomly initialised model on the forget set: 7.
    assert cache.passes == 7
    assert model.calls == 3            # one batch per split (splits are far below 512)
    assert scenario.reference.calls == 3
    assert scenario.original.calls == 0

    # Evaluating again, or evaluating another object holding the same weights, adds nothing.
    evaluate(scenario, model, cache=cache)
    evaluate(scenario, copy.deepcopy(model), cache=cache)
    assert cache.passes == 7
    assert model.calls == 3

    # A second model sharing the cache adds passes for that model only (the reference's
    # and the random model's logits are reused).
    other = TableModel(dict(U_ROWS, forget=["wrong"] * 4))
    results = evaluate(scenario, other, cache=cache)
    assert cache.passes == 10
    assert other.calls == 3
    assert scenario.reference.calls == 3
    assert results["forget_accuracy"].value == 0.0  # not the first model's stale logits


def test_each_metric_alone_passes_only_over_the_splits_it_needs():
    """Every metric alone with a fresh cache passes only over the model's and the reference's
    forget/retain/test splits (never validation), plus ZRF's random model on forget."""
    for name in classification_metric_names():
        scenario = make_scenario()
        model = TableModel(U_ROWS)
        cache = InferenceCache(scenario.task)
        evaluate(scenario, model, names=[name], cache=cache,
                 timings={"unlearn_seconds": 0.5, "unlearn_cpu_seconds": 0.5})
        assert cache.passes == model.calls + scenario.reference.calls + (name == "zrf"), name
        assert model.calls <= 3 and scenario.reference.calls <= 3, name


# --------------------------------------------------------------------------------------------
# check_estimator-style sweep over every registered classification metric
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The real digits-random10 scenario (trained once for this module) and a finetuned
    model with its timings."""
    cache = ModelCache(tmp_path_factory.mktemp("metrics-model-cache"))
    scenario = unlearnbench.scenario("digits-random10", seed=0, cache=cache)
    model, timings = unlearnbench.unlearn(scenario, "finetune", {"epochs": 1}, seed=0)
    return scenario, model, timings


def test_some_classification_metrics_are_registered():
    names = classification_metric_names()
    for expected in ("forget_accuracy", "ua", "ra", "ta", "mia_efficacy", "avg_gap", "speedup",
                     "unlearn_seconds", "retrain_seconds"):
        assert expected in names


@pytest.mark.parametrize("name", classification_metric_names())
def test_check_metric(name, digits):
    scenario, model, timings = digits
    entry = registry.metrics.get(name)
    # A one-line description (shown by `unlearnbench list metrics`).
    assert isinstance(entry.description, str) and entry.description.strip()
    assert "\n" not in entry.description

    with_timings = evaluate(scenario, model, names=[name], timings=timings)[name]
    without_timings = evaluate(scenario, model, names=[name])[name]
    for result, has_timings in ((with_timings, True), (without_timings, False)):
        assert isinstance(result, MetricResult)
        if result.value is None:
            # Only a timing metric, only without timings, may have no value.
            assert not has_timings, f"{name} returned None even with timings"
            assert isinstance(with_timings.value, float), \
                f"{name} is None without timings but not a timing metric"
            continue
        assert isinstance(result.value, float) and not isinstance(result.value, bool), \
            f"{name}: value {result.value!r} is not a float"
        assert math.isfinite(result.value), f"{name}: value {result.value} is not finite"
        if result.per_example is not None:
            assert result.split in scenario.splits, name
            assert result.ids is not None, name
            per_example = np.asarray(result.per_example)
            assert per_example.ndim == 1
            assert len(per_example) == len(result.ids) == len(scenario.splits[result.split])
            np.testing.assert_array_equal(result.ids, scenario.splits[result.split].ids)
            assert np.isfinite(per_example.astype(float)).all(), name
        elif result.ids is not None:
            assert result.split in scenario.splits, name


def test_real_scenario_reference_sanity(digits):
    """On the real scenario the identities that hold by definition hold."""
    scenario, model, timings = digits
    results = evaluate(scenario, model, timings=timings)
    assert results["ua"].value == pytest.approx(100.0 - results["forget_accuracy"].value)
    assert evaluate(scenario, scenario.reference, names=["avg_gap"])["avg_gap"].value == 0.0
    assert results["speedup"].value == pytest.approx(
        scenario.reference_meta["train_seconds"] / timings["unlearn_seconds"])
    for name in ("forget_accuracy", "ua", "ra", "ta", "mia_efficacy"):
        assert 0.0 <= results[name].value <= 100.0, name
