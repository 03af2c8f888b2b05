"""The content-addressed model cache: round trips, corruption detection (never silently used),
cache keys, and deterministic training through ``build_scenario``.

Real digits training with a short recipe (2 epochs) keeps each training well under a second."""
from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from weights_fixtures import assert_same_weights, weights
from unlearnbench.cache import ModelCache, content_key, file_sha256
from unlearnbench.data import DataBundle, make_split
from unlearnbench.scenarios import build_scenario, get_spec
from unlearnbench.specs import Recipe

SMALL_RECIPE = Recipe(epochs=2, batch_size=64, lr=0.05)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The digits MLP is tiny: thread start-up and spinning cost more than they save (much more
    # on a busy 2-core machine), so train on one thread, as the command-line tests do.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def spec(one_thread):
    return dataclasses.replace(get_spec("digits-random10"), name="digits-random10-small",
                               recipe=SMALL_RECIPE)


def model_files(cache: ModelCache, role: str):
    """(weights, meta) paths of the cached model with this role ("original"/"retrained")."""
    found = []
    for meta_path in sorted((cache.root / "models").glob("*.json")):
        if json.loads(meta_path.read_text()).get("role") == role:
            found.append((meta_path.with_suffix(".safetensors"), meta_path))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def fresh(spec, one_thread, tmp_path_factory):
    """Weights of the seed-0 original and retrained models, trained in a cache of their own."""
    scenario = build_scenario(spec, 0, ModelCache(tmp_path_factory.mktemp("reference-cache")))
    assert scenario.original_meta["cached"] is False
    assert scenario.reference_meta["cached"] is False
    return {"original": weights(scenario.original), "retrained": weights(scenario.reference)}


# --------------------------------------------------------------------------- ModelCache

def test_round_trip(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    cache = ModelCache(tmp_path)
    cache.save("abc", model, {"role": "test", "examples": 12})
    weights_path, meta_path = cache.paths("abc")
    assert weights_path.is_file() and meta_path.is_file()
    assert not list(tmp_path.glob("models/*.tmp*"))  # no temporary files left behind
    meta = json.loads(meta_path.read_text())
    assert meta["sha256"] == file_sha256(weights_path)

    torch.manual_seed(1)
    other = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    loaded = cache.load("abc", other)
    assert loaded["role"] == "test" and loaded["examples"] == 12
    assert_same_weights(weights(other), weights(model))
    assert cache.load("missing", other) is None


def test_get_or_train_trains_once(tmp_path):
    cache = ModelCache(tmp_path)
    calls = []

    def make():
        torch.manual_seed(0)
        return nn.Linear(4, 2)

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.add_(1.0)
        return {"role": "t"}

    first, meta = cache.get_or_train("k", make, train)
    assert meta["cached"] is False and len(calls) == 1
    second, meta = cache.get_or_train("k", make, train)
    assert meta["cached"] is True and len(calls) == 1
    assert_same_weights(weights(first), weights(second))


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNBENCH_CACHE", str(tmp_path / "elsewhere"))
    assert ModelCache().root == tmp_path / "elsewhere"


# --------------------------------------------------------------------------- corruption

def truncate(weights_path, meta_path):
    data = weights_path.read_bytes()
    weights_path.write_bytes(data[: len(data) // 2])


def flip_byte(weights_path, meta_path):
    # A byte in the tensor data: the file still loads, as other weights. Only the checksum
    # tells.
    data = bytearray(weights_path.read_bytes())
    data[len(data) - 1001] ^= 0x40
    weights_path.write_bytes(bytes(data))


def empty_weights(weights_path, meta_path):
    weights_path.write_bytes(b"")


def garble_json(weights_path, meta_path):
    meta_path.write_text('{"role": "original", "sha256": ')


def json_not_an_object(weights_path, meta_path):
    meta_path.write_text("[1, 2, 3]")


def binary_json(weights_path, meta_path):
    meta_path.write_bytes(b"\xff\xfe\x00garbage\x80")


def wrong_checksum(weights_path, meta_path):
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))


def delete_json(weights_path, meta_path):
    meta_path.unlink()


def delete_weights(weights_path, meta_path):
    weights_path.unlink()


CORRUPTIONS = [truncate, flip_byte, empty_weights, garble_json, json_not_an_object, binary_json,
               wrong_checksum]
MISSING = [delete_json, delete_weights]


@pytest.mark.parametrize("damage", CORRUPTIONS + MISSING, ids=lambda f: f.__name__)
def test_damaged_cache_entry_is_retrained_and_rewritten(spec, fresh, tmp_path, damage):
    cache = ModelCache(tmp_path)
    build_scenario(spec, 0, cache)
    weights_path, meta_path = model_files(cache, "original")
    before = weights_path.read_bytes() if weights_path.exists() else None
    damage(weights_path, meta_path)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scenario = build_scenario(spec, 0, cache)
    messages = [str(w.message) for w in caught if "corrupt" in str(w.message)]
    if damage in CORRUPTIONS:
        assert len(messages) == 1 and weights_path.name in messages[0], messages
    else:
        assert messages == []  # an absent entry is simply built

    # Retrained, never loaded from the damaged files ...
    assert scenario.original_meta["cached"] is False
    assert_same_weights(weights(scenario.original), fresh["original"])
    # ... the untouched retrained model still comes from the cache ...
    assert scenario.reference_meta["cached"] is True
    assert_same_weights(weights(scenario.reference), fresh["retrained"])
    # ... and the entry is rewritten, intact.
    assert weights_path.is_file() and meta_path.is_file()
    meta = json.loads(meta_path.read_text())
    assert meta["sha256"] == file_sha256(weights_path)
    assert meta["role"] == "original"
    assert weights_path.read_bytes() == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = build_scenario(spec, 0, cache)
    assert again.original_meta["cached"] is True
    assert_same_weights(weights(again.original), fresh["original"])


def test_damaged_entry_through_get_or_train_never_returns_the_bad_weights(tmp_path):
    """The flipped weights load without error as a model; the checksum must refuse them."""
    cache = ModelCache(tmp_path)

    def make():
        torch.manual_seed(0)
        return nn.Linear(300, 10)

    def train(model):
        with torch.no_grad():
            model.weight.fill_(0.25)
        return {"role": "original"}

    good, _ = cache.get_or_train("k", make, train)
    weights_path, meta_path = cache.paths("k")
    flip_byte(weights_path, meta_path)
    with pytest.warns(UserWarning, match="corrupt"):
        model, meta = cache.get_or_train("k", make, train)
    assert meta["cached"] is False
    assert_same_weights(weights(model), weights(good))


# --------------------------------------------------------------------------- keys

def bundle(value: float = 0.0) -> DataBundle:
    x = np.zeros((6, 1, 2, 2), np.float32)
    x[3, 0, 1, 1] = value
    y = np.arange(6) % 3
    return DataBundle("toy", make_split("train", x, y), make_split("validation", x[:2], y[:2]),
                      make_split("test", x[:2], y[:2]), 3)


def key_parts(**changes):
    parts = {"data": bundle().fingerprint(), "model": "mlp", "recipe": Recipe(), "seed": 0,
             "train_ids": np.arange(10)}
    parts.update(changes)
    return parts


def test_content_key_is_stable():
    key = content_key(key_parts())
    assert key == content_key(key_parts())
    assert key == content_key(dict(reversed(list(key_parts().items()))))  # order of keys
    assert key == content_key(key_parts(train_ids=list(range(10))))  # arrays hash as lists
    assert key == content_key(key_parts(recipe=Recipe(epochs=20)))  # the same recipe
    assert key == content_key(key_parts(data=bundle(0.0).fingerprint()))
    assert len(key) == 24 and all(c in "0123456789abcdef" for c in key)


@pytest.mark.parametrize("change", [
    {"data": bundle(0.5).fingerprint()},
    {"model": "cnn"},
    {"recipe": Recipe(lr=0.01)},
    {"recipe": Recipe(epochs=21)},
    {"recipe": Recipe(optimizer="adam")},
    {"seed": 1},
    {"train_ids": np.arange(1, 11)},
    {"train_ids": np.arange(9)},
], ids=["data", "model", "recipe-lr", "recipe-epochs", "recipe-optimizer", "seed", "ids",
        "fewer-ids"])
def test_content_key_changes_with_what_determines_the_weights(change):
    assert content_key(key_parts(**change)) != content_key(key_parts())


def test_content_key_refuses_unhashable_values():
    with pytest.raises(TypeError):
        content_key({"x": object()})


def test_data_fingerprint_sees_every_value():
    assert bundle(0.0).fingerprint() == bundle(0.0).fingerprint()
    assert bundle(0.0).fingerprint() != bundle(1e-6).fingerprint()


# --------------------------------------------------------------------------- scenarios

def test_build_scenario_second_call_loads_from_cache(spec, fresh, tmp_path):
    cache = ModelCache(tmp_path)
    first = build_scenario(spec, 0, cache)
    assert first.original_meta["cached"] is False and first.reference_meta["cached"] is False
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "models").iterdir()}
    assert len(files) == 4  # two models, weights + metadata each

    second = build_scenario(spec, 0, cache)
    assert second.original_meta["cached"] is True and second.reference_meta["cached"] is True
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "models").iterdir()} == files
    assert_same_weights(weights(second.original), weights(first.original))
    assert_same_weights(weights(second.reference), weights(first.reference))
    for name in ("forget", "retain", "test", "validation"):
        np.testing.assert_array_equal(second.splits[name].ids, first.splits[name].ids)
    # The timing of the real training is kept with the model.
    assert second.retrain_seconds == first.retrain_seconds > 0
    # Forget and retain partition the training pool.
    ids = np.concatenate([first.forget.ids, first.retain.ids])
    assert len(np.unique(ids)) == len(ids)


def test_training_is_deterministic_under_a_seed(spec, fresh, tmp_path):
    # A second training, in another cache, gives bitwise the same weights.
    scenario = build_scenario(spec, 0, ModelCache(tmp_path / "a"))
    assert scenario.original_meta["cached"] is False
    assert_same_weights(weights(scenario.original), fresh["original"])
    assert_same_weights(weights(scenario.reference), fresh["retrained"])
    # Another seed: another forget set, other weights.
    other = build_scenario(spec, 1, ModelCache(tmp_path / "a"))
    assert not np.array_equal(other.forget.ids, scenario.forget.ids)
    assert not torch.equal(weights(other.original)["net.1.weight"],
                           fresh["original"]["net.1.weight"])
    assert len(list((tmp_path / "a" / "models").glob("*.safetensors"))) == 4
