"""MUFAC's loss-based LR membership inference, forgetting score and NoMUS, and ZRF, against
cases whose answers are known.

As in ``test_metrics.py``, the scenario is driven by a "lookup-table" model: each example's
single input feature is its row number in a logits table and the model returns that row, so
every loss and every output distribution is chosen by the test. For ZRF the scenario's
random network is replaced by another lookup table (the real one is checked separately).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from unlearnbench import registry
from unlearnbench.data import DataBundle, make_split
from unlearnbench.metrics import mufac as mufac_module
from unlearnbench.metrics import zrf as zrf_module
from unlearnbench.metrics.evaluation import Evaluation, evaluate
from unlearnbench.metrics.inference import InferenceCache
from unlearnbench.metrics.mufac import (balanced_loss_samples, loss_lr_mia, nomus_score,
                                        per_sample_loss)
from unlearnbench.metrics.zrf import (RANDOM_MODEL_SEED_OFFSET, js_divergence,
                                      reference_code_zrf)
from unlearnbench.unlearning import Scenario
from unlearnbench.specs import BenchmarkSpec, ForgetSpec, Recipe
from unlearnbench.tasks.classification import ClassificationTask

NUM_CLASSES = 10
LN2 = math.log(2.0)
SPLIT_ORDER = ("forget", "retain", "test", "validation")
NEW_METRICS = ("mia_loss_lr", "forgetting_score", "nomus", "zrf")

# Losses of the row kinds (cross-entropy of the true label y):
#   "sure"   : logit 10 on y        -> loss log(1 + 9 e^-10)  ~ 4.1e-4 (correct)
#   "unsure" : logit 1 on y         -> loss log((e + 9) / e)  ~ 1.46   (correct)
#   "wrong"  : logit 1 on (y+1)%10  -> loss log(e + 9)        ~ 2.46   (wrong)
#   "onehot" : logit 1000 on y      -> softmax exactly one-hot on y in float64
#   "onehot_other": logit 1000 on (y+1)%10 -> exactly one-hot on another class
LOSS = {"sure": math.log(1 + 9 * math.exp(-10)), "unsure": math.log((math.e + 9) / math.e),
        "wrong": math.log(math.e + 9)}


def logits_row(kind: str, label: int) -> torch.Tensor:
    row = torch.zeros(NUM_CLASSES)
    hot = {"sure": (label, 10.0), "unsure": (label, 1.0), "wrong": ((label + 1) % 10, 1.0),
           "onehot": (label, 1000.0), "onehot_other": ((label + 1) % 10, 1000.0)}
    if kind == "uniform":
        return row
    index, value = hot[kind]
    row[index] = value
    return row


def labels_of(name: str, size: int) -> list[int]:
    offset = {"forget": 1, "retain": 0, "test": 3, "validation": 5}[name]
    return [(offset + i) % NUM_CLASSES for i in range(size)]


class TableModel(nn.Module):
    """Returns row ``x[:, 0]`` of a fixed logits table; counts its forward calls."""

    def __init__(self, rows: dict[str, list[str]]):
        super().__init__()
        table = [logits_row(kind, label) for name in SPLIT_ORDER
                 for kind, label in zip(rows[name], labels_of(name, len(rows[name])))]
        self.register_buffer("table", torch.stack(table))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.table[x[:, 0].long()]


def make_scenario(rows: dict[str, list[str]], seed: int = 0) -> Scenario:
    """Splits sized after ``rows``; original and reference both return ``rows``."""
    splits, start = {}, 0
    for name in SPLIT_ORDER:
        size = len(rows[name])
        inputs = np.arange(start, start + size, dtype=np.float32)[:, None]
        splits[name] = make_split(name, inputs, labels_of(name, size),
                                  np.arange(size) + 1000 * SPLIT_ORDER.index(name))
        start += size
    data = DataBundle("table", splits["retain"], splits["validation"], splits["test"],
                      NUM_CLASSES)
    task = ClassificationTask(data, "mlp")
    spec = BenchmarkSpec("table", "table", "mlp", Recipe(), ForgetSpec())
    return Scenario(spec, seed, task, splits, TableModel(rows), TableModel(rows),
                    original_meta={"train_seconds": 1.0}, reference_meta={"train_seconds": 1.0})


def rows_with(forget: list[str], test: list[str], retain=None) -> dict[str, list[str]]:
    return {"forget": forget, "retain": retain or ["sure"] * 6, "test": test,
            "validation": ["sure"] * 2}


def with_random_model(scenario: Scenario, rows: dict[str, list[str]]) -> list[int]:
    """Make the scenario's task return a lookup-table "random" model; returns the seeds it
    was asked for."""
    seeds = []

    def fresh_model(seed):
        seeds.append(seed)
        return TableModel(rows)

    scenario.task.fresh_model = fresh_model
    return seeds


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------
def test_new_metrics_are_registered_for_classification_with_one_line_descriptions():
    for name in NEW_METRICS:
        entry = registry.metrics.get(name)
        assert entry.attributes["tasks"] == ("classification",), name
        assert entry.description and "\n" not in entry.description, name


# --------------------------------------------------------------------------------------------
# Jensen–Shannon divergence and ZRF
# --------------------------------------------------------------------------------------------
def test_js_divergence_known_values():
    p = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    q = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    js = js_divergence(p, q)
    assert js.dtype == torch.float64 and js.shape == (4,)
    assert js[0].item() == 0.0                      # identical (one-hot)
    assert js[1].item() == pytest.approx(0.0, abs=1e-15)  # identical (spread)
    assert js[2].item() == pytest.approx(LN2, rel=1e-12)  # disjoint supports: ln 2
    # p = (0, 1, 0), q = (.5, .5, 0): m = (.25, .75, 0);
    # KL(p||m) = ln(1/.75); KL(q||m) = .5 ln(.5/.25) + .5 ln(.5/.75)
    expected = 0.5 * math.log(1 / 0.75) + 0.5 * (0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75))
    assert js[3].item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.215762, abs=1e-6)
    # Symmetric.
    torch.testing.assert_close(js_divergence(q, p), js)


def test_zrf_model_equal_to_random_model_is_one():
    rows = rows_with(["sure", "unsure", "wrong", "onehot"], ["sure"] * 4)
    scenario = make_scenario(rows, seed=3)
    seeds = with_random_model(scenario, rows)
    result = evaluate(scenario, TableModel(rows), names=["zrf"])["zrf"]
    assert result.value == 1.0
    np.testing.assert_array_equal(result.per_example, np.ones(4))
    assert result.split == "forget"
    np.testing.assert_array_equal(result.ids, scenario.splits["forget"].ids)
    assert seeds == [3 + RANDOM_MODEL_SEED_OFFSET]   # deterministic per scenario seed


def test_zrf_disjoint_one_hot_outputs_is_one_minus_ln2():
    model_rows = rows_with(["onehot"] * 4, ["sure"] * 4)
    random_rows = rows_with(["onehot_other"] * 4, ["sure"] * 4)
    scenario = make_scenario(model_rows)
    with_random_model(scenario, random_rows)
    result = evaluate(scenario, TableModel(model_rows), names=["zrf"])["zrf"]
    assert result.value == pytest.approx(1.0 - LN2, rel=1e-12)   # ~ 0.30685
    np.testing.assert_allclose(result.per_example, np.full(4, 1.0 - LN2), rtol=1e-12)


def test_zrf_mixed_is_the_mean_of_per_example_values():
    """Two forget examples identical to the random model (1), two disjoint (1 − ln 2), one
    one-hot against uniform over 10 classes (hand-computed)."""
    model_rows = rows_with(["onehot", "onehot", "onehot", "onehot", "onehot"], ["sure"] * 4)
    random_rows = rows_with(["onehot", "onehot_other", "onehot", "onehot_other", "uniform"],
                            ["sure"] * 4)
    scenario = make_scenario(model_rows)
    with_random_model(scenario, random_rows)
    result = evaluate(scenario, TableModel(model_rows), names=["zrf"])["zrf"]
    # one-hot p vs uniform q: m = (.55 on y, .05 elsewhere);
    # KL(p||m) = ln(1/.55); KL(q||m) = .1 ln(.1/.55) + .9 ln(.1/.05)
    js_uniform = 0.5 * math.log(1 / 0.55) + 0.5 * (0.1 * math.log(0.1 / 0.55) + 0.9 * LN2)
    expected = [1.0, 1.0 - LN2, 1.0, 1.0 - LN2, 1.0 - js_uniform]
    np.testing.assert_allclose(result.per_example, expected, rtol=1e-12)
    assert result.value == pytest.approx(float(np.mean(expected)), rel=1e-12)


def test_zrf_random_model_is_the_tasks_fresh_model_and_shares_the_cache():
    """Without a stand-in: the random network is ``fresh_model(seed + offset)`` (not the
    original's initialisation, ``fresh_model(seed)``); evaluating that network itself gives
    ZRF = 1 in a single pass, since it and the metric's random model share cache entries."""
    rows = rows_with(["sure", "unsure", "wrong", "sure"], ["sure"] * 4)
    scenario = make_scenario(rows, seed=5)
    random_net = scenario.task.fresh_model(5 + RANDOM_MODEL_SEED_OFFSET)
    cache = InferenceCache(scenario.task)
    result = evaluate(scenario, random_net, names=["zrf"], cache=cache)["zrf"]
    assert result.value == 1.0
    assert cache.passes == 1

    # The metric builds the same network whatever the global RNG state, and leaves it as is.
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    ev = Evaluation(scenario, random_net, cache)
    rebuilt = zrf_module.random_model(ev)
    assert torch.equal(torch.random.get_rng_state(), state)
    for a, b in zip(rebuilt.state_dict().values(), random_net.state_dict().values()):
        assert torch.equal(a, b)
    original_init = scenario.task.fresh_model(5)
    assert not all(torch.equal(a, b) for a, b in
                   zip(original_init.state_dict().values(), random_net.state_dict().values()))
    # Another scenario seed, another random network.
    other = zrf_module.random_model(Evaluation(make_scenario(rows, seed=6), random_net, cache))
    assert not all(torch.equal(a, b) for a, b in
                   zip(other.state_dict().values(), random_net.state_dict().values()))


def test_zrf_costs_one_random_pass_per_cache():
    rows = rows_with(["sure", "unsure", "wrong", "sure"], ["sure"] * 4)
    scenario = make_scenario(rows)
    cache = InferenceCache(scenario.task)
    first = TableModel(rows)
    evaluate(scenario, first, names=["zrf"], cache=cache)
    assert cache.passes == 2 and first.calls == 1      # the model's forget pass + the random
    second = TableModel(rows_with(["wrong"] * 4, ["sure"] * 4))
    evaluate(scenario, second, names=["zrf"], cache=cache)
    assert cache.passes == 3 and second.calls == 1     # the random model's logits are reused
    # The reference holds the same table as ``first``: same weights, no new pass at all.
    evaluate(scenario, scenario.reference, names=["zrf"], cache=cache)
    assert cache.passes == 3 and scenario.reference.calls == 0


def test_reference_code_zrf_reproduces_the_codes_quirks():
    """The reference code's number: KL(m||p) (not KL(p||m)), averaged over every element
    (so divided by the class count as well as the example count)."""
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=torch.float64)
    q = torch.tensor([[0.3, 0.3, 0.4], [0.6, 0.3, 0.1]], dtype=torch.float64)
    m = (p + q) / 2
    by_hand = 0.5 * (m * (m / p).log()).sum() / 6 + 0.5 * (m * (m / q).log()).sum() / 6
    assert reference_code_zrf(p, q) == pytest.approx(1.0 - by_hand.item(), rel=1e-12)
    assert reference_code_zrf(p, p) == pytest.approx(1.0, abs=1e-15)
    # Not the JS-based value the metric reports.
    assert reference_code_zrf(p, q) != pytest.approx(1 - js_divergence(p, q).mean().item())


# --------------------------------------------------------------------------------------------
# Loss-based LR membership inference (MUFAC)
# --------------------------------------------------------------------------------------------
def test_per_sample_loss_is_cross_entropy_of_the_true_label():
    logits = torch.stack([logits_row(k, 2) for k in ("sure", "unsure", "wrong")])
    losses = per_sample_loss(logits, torch.tensor([2, 2, 2]))
    np.testing.assert_allclose(losses, [LOSS["sure"], LOSS["unsure"], LOSS["wrong"]],
                               rtol=1e-6)


def test_lr_mia_perfectly_separable_is_one():
    rng = np.random.default_rng(0)
    forget = rng.uniform(0.0, 1e-3, size=300)    # tiny losses: members
    unseen = rng.uniform(2.0, 5.0, size=200)     # large losses: non-members
    assert loss_lr_mia(forget, unseen, seed=0) == 1.0
    # Swapping the roles separates just as well (the attack learns the direction).
    assert loss_lr_mia(unseen, forget, seed=0) == 1.0


def test_lr_mia_same_distribution_is_one_half():
    """Forget and unseen losses drawn from one distribution: no classifier beats chance.
    40,000 samples, 10% = 4,000 per test split (balanced): one split's accuracy has standard
    deviation sqrt(.25 / 4000) = 0.0079, and the mean of 10 splits at most that much (less,
    as the splits are nearly independent); the expectation is exactly 0.5 for any rule that
    ignores the label. 0.03 is more than 3.5 standard deviations."""
    rng = np.random.default_rng(1)
    forget = rng.exponential(1.0, size=20000)
    unseen = rng.exponential(1.0, size=20000)
    assert loss_lr_mia(forget, unseen, seed=0) == pytest.approx(0.5, abs=0.03)


def test_lr_mia_identical_losses_is_exactly_one_half():
    """Every loss equal: the attack predicts one class, and every stratified test split is
    half forget, half unseen (40 samples -> 4 per split)."""
    assert loss_lr_mia(np.full(20, 0.7), np.full(25, 0.7), seed=0) == 0.5


def test_balanced_loss_samples_cuts_the_larger_set_seeded():
    forget = np.arange(10, dtype=float)
    unseen = np.arange(100, 104, dtype=float)
    f, u = balanced_loss_samples(forget, unseen, seed=0)
    assert len(f) == len(u) == 4
    np.testing.assert_array_equal(u, unseen)           # the smaller set is kept whole
    assert set(f) <= set(forget) and len(set(f)) == 4  # a subset, without repetition
    f_again, _ = balanced_loss_samples(forget, unseen, seed=0)
    np.testing.assert_array_equal(f, f_again)          # deterministic per seed
    draws = {tuple(balanced_loss_samples(forget, unseen, seed=s)[0]) for s in range(5)}
    assert len(draws) > 1                              # and it depends on the seed
    # The unseen set is cut when it is the larger one.
    u_big = np.arange(100, 130, dtype=float)
    f, u = balanced_loss_samples(forget, u_big, seed=0)
    np.testing.assert_array_equal(f, forget)
    assert len(u) == 10 and set(u) <= set(u_big)


class RecordingSplit:
    """Stands in for StratifiedShuffleSplit to record its settings."""

    made: list = []

    def __init__(self, **kwargs):
        RecordingSplit.made.append(kwargs)
        from sklearn.model_selection import StratifiedShuffleSplit
        self.inner = StratifiedShuffleSplit(**kwargs)

    def split(self, *args, **kwargs):
        return self.inner.split(*args, **kwargs)

    def get_n_splits(self, *args, **kwargs):
        return self.inner.get_n_splits(*args, **kwargs)


def test_lr_mia_uses_the_reference_split_settings(monkeypatch):
    monkeypatch.setattr(mufac_module, "StratifiedShuffleSplit", RecordingSplit)
    RecordingSplit.made = []
    loss_lr_mia(np.linspace(0, 1, 50), np.linspace(1, 2, 50), seed=0)
    assert RecordingSplit.made[-1] == {"n_splits": 10, "test_size": 0.1, "random_state": 0}
    # Tiny sets: 2 test samples (one per class) where 10% would be fewer.
    loss_lr_mia(np.linspace(0, 1, 4), np.linspace(1, 2, 4), seed=0)
    assert RecordingSplit.made[-1] == {"n_splits": 10, "test_size": 2, "random_state": 0}
    # Fewer than 2 samples a class: no attack, NaN.
    assert math.isnan(loss_lr_mia(np.array([0.1]), np.array([1.0, 2.0]), seed=0))


def test_mia_metrics_on_scenario_separable():
    """Forget examples all "sure" (loss 4e-4), test examples "unsure"/"wrong" (1.46 / 2.46):
    MIA 1, forgetting score 0.5; TA 50% -> NoMUS = (0.5 + 1 − 2·0.5) / 2 = 0.25."""
    rows = rows_with(["sure"] * 30, ["unsure", "wrong"] * 10)
    scenario = make_scenario(rows)
    results = evaluate(scenario, TableModel(rows), names=["mia_loss_lr", "forgetting_score",
                                                          "nomus", "ta"])
    assert results["ta"].value == pytest.approx(50.0)
    assert results["mia_loss_lr"].value == 1.0
    assert results["forgetting_score"].value == 0.5
    assert results["nomus"].value == pytest.approx(0.25)


def test_mia_metrics_on_scenario_indistinguishable():
    """Forget and test examples all "unsure" (same loss): MIA exactly 0.5, forgetting score
    0; TA 100% -> NoMUS = (1 + 1) / 2 = 1."""
    rows = rows_with(["unsure"] * 24, ["unsure"] * 20)
    scenario = make_scenario(rows)
    results = evaluate(scenario, TableModel(rows), names=["mia_loss_lr", "forgetting_score",
                                                          "nomus"])
    assert results["mia_loss_lr"].value == 0.5
    assert results["forgetting_score"].value == 0.0
    assert results["nomus"].value == pytest.approx(1.0)


def test_mia_metric_subsamples_with_the_scenario_seed(monkeypatch):
    seeds = []
    real = mufac_module.balanced_loss_samples

    def recording(forget, unseen, seed):
        seeds.append(seed)
        return real(forget, unseen, seed)

    monkeypatch.setattr(mufac_module, "balanced_loss_samples", recording)
    rows = rows_with(["sure", "unsure"] * 15, ["unsure", "wrong"] * 10)
    first = evaluate(make_scenario(rows, seed=7), TableModel(rows), names=["mia_loss_lr"])
    again = evaluate(make_scenario(rows, seed=7), TableModel(rows), names=["mia_loss_lr"])
    assert seeds == [7, 7]
    assert first["mia_loss_lr"].value == again["mia_loss_lr"].value


def test_mia_metric_forget_losses_are_the_models_cross_entropy(monkeypatch):
    """The attack sees the forget set's per-example losses (label 1) and the test set's."""
    seen = {}

    def recording(forget, unseen, seed):
        seen["forget"], seen["unseen"] = np.array(forget), np.array(unseen)
        return 0.5

    monkeypatch.setattr(mufac_module, "loss_lr_mia", recording)
    rows = rows_with(["sure", "unsure", "wrong"], ["wrong", "unsure"])
    evaluate(make_scenario(rows), TableModel(rows), names=["mia_loss_lr"])
    np.testing.assert_allclose(seen["forget"], [LOSS["sure"], LOSS["unsure"], LOSS["wrong"]],
                               rtol=1e-6)
    np.testing.assert_allclose(seen["unseen"], [LOSS["wrong"], LOSS["unsure"]], rtol=1e-6)


# --------------------------------------------------------------------------------------------
# NoMUS
# --------------------------------------------------------------------------------------------
def test_nomus_hand_values():
    assert nomus_score(0.8, 0.6) == pytest.approx(0.8)    # (0.8 + 1 − 0.2) / 2
    assert nomus_score(0.8, 0.4) == pytest.approx(0.8)    # |MIA − 0.5| is symmetric
    assert nomus_score(1.0, 0.5) == pytest.approx(1.0)    # best
    assert nomus_score(0.0, 1.0) == pytest.approx(0.0)    # worst
    assert nomus_score(0.0, 0.0) == pytest.approx(0.0)
    assert nomus_score(0.5, 0.75) == pytest.approx(0.5)   # (0.5 + 0.5) / 2


# MUFAC README, ResNet-18 (test accuracy, forgetting score |MIA − 0.5| -- labelled "MIA" in
# the README --, final score NoMUS). docs/metrics.md quotes Original 0.5839, Retrained 0.6995,
# SCRUB 0.6577, Advanced NegGrad 0.6863.
MUFAC_TABLE = [
    ("Original", 0.5951, 0.2136, 0.5839),
    ("Retrained", 0.488, 0.0445, 0.6995),
    ("Fine-tuning", 0.6055, 0.2129, 0.5898),
    ("Grad Asc", 0.4048, 0.0485, 0.6539),
    ("SCRUB", 0.5984, 0.1415, 0.6577),
    ("Advanced NegGrad", 0.5633, 0.0953, 0.6863),
    ("MUCAC multi-label Original", 0.8852, 0.0568, 0.8858),
]


@pytest.mark.parametrize("name, test_acc, forgetting, expected", MUFAC_TABLE)
def test_nomus_reproduces_the_mufac_table(name, test_acc, forgetting, expected):
    """Inputs and output are rounded to 4 decimals (±5e-5 each): the formula's error is at
    most (5e-5 + 2·5e-5) / 2 + 5e-5 = 1.25e-4."""
    for mia in (0.5 + forgetting, 0.5 - forgetting):     # either side of 0.5
        assert nomus_score(test_acc, mia) == pytest.approx(expected, abs=1.25e-4), name


def test_nomus_metric_reads_ta_and_mia(monkeypatch):
    """On the scenario: TA 80% (4 of 5 test examples correct) and an MIA of 0.6 give 0.8."""
    monkeypatch.setattr(mufac_module, "loss_lr_mia", lambda forget, unseen, seed: 0.6)
    rows = rows_with(["sure"] * 4, ["sure", "unsure", "sure", "wrong", "sure"])
    results = evaluate(make_scenario(rows), TableModel(rows), names=["ta", "nomus",
                                                                     "forgetting_score"])
    assert results["ta"].value == pytest.approx(80.0)
    assert results["forgetting_score"].value == pytest.approx(0.1)
    assert results["nomus"].value == pytest.approx(0.8)

