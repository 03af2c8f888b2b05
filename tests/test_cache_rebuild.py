"""The model cache's rebuild of an entry that fails to load, and its removal of the temporary
files dead writers left behind.

Real digits training with a short recipe (2 epochs) keeps each training well under a second."""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from weights_fixtures import assert_same_weights, weights
from unlearnbench.cache import ModelCache, file_sha256
from unlearnbench.scenarios import build_scenario, get_spec
from unlearnbench.specs import Recipe


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: more threads only cost time on a busy machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def spec(one_thread):
    return dataclasses.replace(get_spec("digits-random10"), name="digits-random10-small",
                               recipe=Recipe(epochs=2, batch_size=64, lr=0.05))


@pytest.fixture(scope="module")
def clean(spec, tmp_path_factory):
    """The seed-0 original trained in a cache of its own."""
    scenario = build_scenario(spec, 0, ModelCache(tmp_path_factory.mktemp("clean")))
    return weights(scenario.original)


def original_files(cache: ModelCache):
    for meta_path in (cache.root / "models").glob("*.json"):
        if json.loads(meta_path.read_text())["role"] == "original":
            return meta_path.with_suffix(".safetensors"), meta_path
    raise AssertionError("no cached original")


def other_last_layer(state):
    """Every tensor but the last replaced by other values of its shape, the last one given
    another shape: the first ones load, the last one fails."""
    names = list(state)
    changed = {name: torch.full_like(value, 0.5) for name, value in state.items()}
    changed[names[-1]] = torch.zeros(len(state[names[-1]]) + 1)
    return changed


def one_tensor_missing(state):
    changed = {name: torch.full_like(value, 0.5) for name, value in state.items()}
    del changed[list(state)[-1]]
    return changed


@pytest.mark.parametrize("replace", [other_last_layer, one_tensor_missing],
                         ids=lambda f: f.__name__)
def test_an_entry_that_fails_to_load_is_rebuilt_from_a_fresh_model(spec, clean, tmp_path,
                                                                   replace):
    # A valid checksum: the file is intact, it holds another architecture's weights.
    cache = ModelCache(tmp_path)
    build_scenario(spec, 0, cache)
    weights_path, meta_path = original_files(cache)
    save_file(replace(load_file(str(weights_path))), str(weights_path))
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(dict(meta, sha256=file_sha256(weights_path))))

    with pytest.warns(UserWarning, match="corrupt"):
        rebuilt = build_scenario(spec, 0, cache)
    assert rebuilt.original_meta["cached"] is False
    assert_same_weights(weights(rebuilt.original), clean)
    # The cache now holds the good model.
    assert_same_weights(load_file(str(weights_path)), clean)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = build_scenario(spec, 0, cache)
    assert again.original_meta["cached"] is True
    assert_same_weights(weights(again.original), clean)


def test_get_or_train_builds_a_model_once_and_again_only_after_a_failed_load(tmp_path):
    cache = ModelCache(tmp_path)
    built = []

    def make(outputs=2):
        built.append(outputs)
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 3), nn.Linear(3, outputs))

    def train(model):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(1.0)
        return {"role": "t"}

    good, _ = cache.get_or_train("k", make, train)
    assert len(built) == 1  # nothing to load: one model, trained
    cache.save("k", make(outputs=5), {"role": "t"})  # another architecture, intact
    built.clear()
    with pytest.warns(UserWarning, match="corrupt"):
        model, meta = cache.get_or_train("k", make, train)
    assert meta["cached"] is False and len(built) == 2
    assert_same_weights(weights(model), weights(good))


# --------------------------------------------------------------------------- temporary files

def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_write_removes_the_temporary_files_of_dead_writers_only(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    host = socket.gethostname()
    dead, alive = dead_pid(), os.getppid()
    leftovers = {  # name: whether the write must remove it
        f"a.safetensors.tmp{dead}.{host}": True,
        f"a.json.tmp{dead}.{host}": True,
        f"b.safetensors.tmp{dead}": True,  # the name written before hosts were recorded
        f"c.safetensors.tmp{alive}.{host}": False,  # its writer is still running
        f"d.safetensors.tmp{os.getpid()}": False,
        f"e.safetensors.tmp{dead}.another-host.example": False,  # cannot be probed from here
        "f.safetensors": False,
    }
    for name in leftovers:
        (models / name).write_bytes(b"partial")

    ModelCache(tmp_path).save("k", nn.Linear(3, 2), {"role": "t"})
    left = {path.name for path in models.iterdir()}
    assert left == {name for name, removed in leftovers.items() if not removed} | {
        "k.safetensors", "k.json"}
