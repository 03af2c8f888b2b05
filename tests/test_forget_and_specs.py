"""Forget-set selection and the typed specs: hyperparameter resolution and --set parsing
(YAML config files: test_config_schema.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from unlearnbench.data import make_split
from unlearnbench.requests.forget import select_forget
from unlearnbench.errors import UserError
from unlearnbench.specs import ForgetSpec, parse_assignments, resolve_params


def split_of(targets) -> object:
    targets = np.asarray(targets, dtype=np.int64)
    return make_split("train", np.zeros((len(targets), 1, 2, 2), np.float32), targets)


@pytest.fixture
def train():
    # 203 examples, 10 classes of uneven size, in a shuffled order.
    rng = np.random.default_rng(7)
    return split_of(rng.permutation(np.arange(203) % 10))


# --------------------------------------------------------------------------- select_forget

@pytest.mark.parametrize("n, fraction",
                         [(203, 0.1), (203, 0.5), (25, 0.1), (1215, 0.1), (10, 0.15)])
def test_random_fraction_gives_round_fn_sorted_unique_positions(n, fraction):
    positions = select_forget(ForgetSpec("random", fraction), split_of(np.arange(n) % 10), 10, 0)
    assert len(positions) == int(round(fraction * n))
    assert positions.dtype == np.int64
    assert np.all(np.diff(positions) > 0)  # sorted and unique
    assert positions.min() >= 0 and positions.max() < n


def test_random_selection_is_seeded(train):
    spec = ForgetSpec("random", 0.2)
    a = select_forget(spec, train, 10, seed=3)
    np.testing.assert_array_equal(a, select_forget(spec, train, 10, seed=3))
    b = select_forget(spec, train, 10, seed=4)
    assert len(a) == len(b)
    assert not np.array_equal(a, b)


def test_random_count(train):
    positions = select_forget(ForgetSpec("random", fraction=None, count=17), train, 10, 0)
    assert len(positions) == 17 and len(np.unique(positions)) == 17
    # A count wins over a fraction.
    assert len(select_forget(ForgetSpec("random", fraction=0.5, count=5), train, 10, 0)) == 5
    assert len(select_forget(ForgetSpec("random", None, count=len(train) - 1), train, 10, 0)) \
        == len(train) - 1


@pytest.mark.parametrize("class_id", [0, 3, 9])
def test_class_forgetting_gives_exactly_that_class(train, class_id):
    positions = select_forget(ForgetSpec("class", None, class_id=class_id), train, 10, seed=5)
    np.testing.assert_array_equal(positions, np.flatnonzero(train.targets.numpy() == class_id))
    # The seed plays no part.
    np.testing.assert_array_equal(
        positions, select_forget(ForgetSpec("class", None, class_id=class_id), train, 10, seed=6))


@pytest.mark.parametrize("spec, match", [
    (ForgetSpec("random", 0.0), "fraction"),
    (ForgetSpec("random", 1.0), "fraction"),
    (ForgetSpec("random", 1.5), "fraction"),
    (ForgetSpec("random", -0.1), "fraction"),
    (ForgetSpec("random", None), "fraction"),
    (ForgetSpec("random", 0.001), "empty"),         # 0.2 examples round to 0
    (ForgetSpec("random", 0.999), "whole training set"),  # 202.8 rounds to all 203
    (ForgetSpec("random", None, count=0), "positive"),
    (ForgetSpec("random", None, count=-3), "positive"),
    (ForgetSpec("random", None, count=203), "whole training set"),
    (ForgetSpec("random", None, count=500), "whole training set"),
    (ForgetSpec("class", None, class_id=10), "unknown class"),
    (ForgetSpec("class", None, class_id=-1), "unknown class"),
    (ForgetSpec("class", None, class_id=None), "unknown class"),
    (ForgetSpec("sorted", 0.1), "unknown forget kind"),
])
def test_bad_forget_requests_are_user_errors(train, spec, match):
    with pytest.raises(UserError, match=match):
        select_forget(spec, train, 10, 0)


def test_class_with_no_examples_or_all_examples():
    with pytest.raises(UserError, match="no training examples"):
        select_forget(ForgetSpec("class", None, class_id=9), split_of(np.arange(50) % 5), 10, 0)
    with pytest.raises(UserError, match="whole training set"):
        select_forget(ForgetSpec("class", None, class_id=2), split_of(np.full(30, 2)), 10, 0)


# --------------------------------------------------------------------------- resolve_params

@dataclass
class Params:
    epochs: int = 5
    lr: float = 0.01
    nesterov: bool = False
    optimizer: str = "sgd"
    clip: float | None = None


def test_resolve_params_defaults():
    assert resolve_params(Params, {}, "m") == Params()
    assert resolve_params(None, {}, "m") is None


def test_resolve_params_coerces_strings():
    p = resolve_params(Params, {"epochs": "3", "lr": "1e-3", "nesterov": "true",
                                "optimizer": "adam", "clip": "0.5"}, "m")
    assert p == Params(3, 0.001, True, "adam", 0.5)
    assert type(p.epochs) is int and type(p.lr) is float and type(p.nesterov) is bool
    for text, value in [("True", True), ("yes", True), ("1", True),
                        ("false", False), ("No", False), ("0", False)]:
        assert resolve_params(Params, {"nesterov": text}, "m").nesterov is value
    assert resolve_params(Params, {"clip": "none"}, "m").clip is None
    assert resolve_params(Params, {"clip": None}, "m").clip is None


def test_resolve_params_plain_values_from_yaml():
    p = resolve_params(Params, {"epochs": 4, "lr": 1, "nesterov": True, "optimizer": 7}, "m")
    assert p == Params(4, 1.0, True, "7")
    assert type(p.lr) is float
    assert resolve_params(Params, {"epochs": 2.0}, "m").epochs == 2


@pytest.mark.parametrize("overrides, match", [
    ({"epoch": 3}, r"m has no hyperparameter 'epoch'; it has: epochs, lr"),
    ({"epochs": "abc"}, r"m\.epochs: expected int, got 'abc'"),
    ({"epochs": 2.5}, r"m\.epochs: expected int"),
    ({"lr": "fast"}, r"m\.lr: expected float"),
    ({"nesterov": "maybe"}, r"m\.nesterov: expected bool"),
    ({"clip": "big"}, r"m\.clip: expected float"),
])
def test_resolve_params_errors(overrides, match):
    with pytest.raises(UserError, match=match):
        resolve_params(Params, overrides, "m")


def test_resolve_params_for_a_method_without_hyperparameters():
    with pytest.raises(UserError, match="takes no hyperparameters"):
        resolve_params(None, {"lr": 1}, "original")


# --------------------------------------------------------------------------- --set parsing

def test_parse_assignments():
    assert parse_assignments([]) == {}
    assert parse_assignments(["ga.lr=0.01", "finetune.epochs=3", "ga.epochs=2", "x.name=a=b"]) == {
        "ga": {"lr": "0.01", "epochs": "2"}, "finetune": {"epochs": "3"}, "x": {"name": "a=b"}}
    # The last assignment of a name wins.
    assert parse_assignments(["ga.lr=1", "ga.lr=2"]) == {"ga": {"lr": "2"}}


@pytest.mark.parametrize("item", ["nonsense", "ga=1", "ga.lr", ".lr=1", "ga.=1", "=1", ""])
def test_parse_assignments_errors(item):
    with pytest.raises(UserError, match="METHOD.PARAM=VALUE"):
        parse_assignments([item])
