"""Hyperparameters, training recipes and forget requests carry declared ranges, and a value
outside them is refused when a run is planned, before anything trains: by ``plan`` (run,
tune), ``unlearning.unlearn``, population runs, benchmark variants and the deletion workflow."""
from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

import unlearnbench as ub
from unlearnbench.cache import ModelCache
from unlearnbench.cli import main
from unlearnbench.errors import UserError
from unlearnbench.params import PRECISIONS, allowed
from unlearnbench.studies.population import run_population
from unlearnbench.registry import benchmarks, methods
from unlearnbench.sweep.jobs import plan
from unlearnbench.scenarios import build_scenario, get_spec
from unlearnbench.specs import ForgetSpec, Recipe, resolve_params
from unlearnbench.store import Store

_SCRIPT = Path(sys.executable).with_name("unlearnbench")
CLI = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "unlearnbench.cli"]


def declared_fields(params_type) -> list[dataclasses.Field]:
    """The fields that need a declared range: every one but the on/off switches."""
    hints = typing.get_type_hints(params_type)
    return [f for f in dataclasses.fields(params_type) if hints[f.name] is not bool]


# --------------------------------------------------------------------------- the contract

@pytest.mark.parametrize("method", [e.name for e in methods.entries() if e.params is not None])
def test_every_hyperparameter_declares_its_range(method):
    params_type = methods.get(method).params
    undeclared = [f.name for f in declared_fields(params_type) if allowed(f) is None]
    assert not undeclared, f"{method}: declare the allowed values of {undeclared} with param()"
    resolve_params(params_type, {}, method)  # and the defaults lie inside them


def test_recipe_and_request_fields_declare_their_ranges():
    for spec_type in (Recipe, ForgetSpec):
        undeclared = [f.name for f in declared_fields(spec_type)
                      if allowed(f) is None and f.name != "against"]  # a method name
        assert not undeclared, f"{spec_type.__name__}: {undeclared}"


def test_precision_names_match_the_training_loop():
    from unlearnbench.train import PRECISIONS as TRAINED

    assert set(PRECISIONS) == set(TRAINED)


@pytest.mark.parametrize("benchmark", [e.name for e in benchmarks.entries()])
def test_benchmark_values_and_tuning_ranges_lie_inside_the_declared_ranges(benchmark):
    """A benchmark's tuned hyperparameters are accepted, and `tune` never proposes a value
    that the planner would refuse (both ends of every searched range are allowed)."""
    from unlearnbench.studies.tune import search_space

    spec = get_spec(benchmark)
    for entry in methods.entries():
        if entry.params is None or spec.task not in entry.attributes.get("tasks", ()):
            continue
        fields = {f.name: f for f in dataclasses.fields(entry.params)}
        for name, distribution in search_space(spec, entry.name).items():
            ends = getattr(distribution, "choices", None) or (distribution.low, distribution.high)
            assert all(allowed(fields[name]).admits(v) for v in ends), (entry.name, name, ends)


# --------------------------------------------------------------------------- plan()

@pytest.mark.parametrize("method, name, value, message", [
    ("finetune", "epochs", "0", "finetune.epochs=0 is not allowed: it must be an integer >= 1"),
    ("finetune", "epochs", "-1", "finetune.epochs=-1 is not allowed"),
    ("finetune", "lr", "nan", "finetune.lr=nan is not allowed: it must be a finite number > 0"),
    ("finetune", "lr", "-0.01", "finetune.lr=-0.01 is not allowed"),
    ("finetune", "lr", "0", "finetune.lr=0.0 is not allowed"),
    ("ga", "lr", "inf", "ga.lr=inf is not allowed: it must be a finite number > 0"),
    ("finetune", "batch_size", "0", "finetune.batch_size=0 is not allowed: it must be an "
                                    "integer >= 1"),
    ("finetune", "momentum", "1", r"finetune.momentum=1.0 is not allowed: .* in \[0, 1\)"),
    ("neggrad_plus", "beta", "1.5", r"neggrad_plus.beta=1.5 is not allowed: .* in \[0, 1\]"),
    ("salun", "mask_fraction", "0", r"salun.mask_fraction=0.0 .* in \(0, 1\]"),
    ("scrub", "kd_T", "0", "scrub.kd_T=0.0 is not allowed: it must be a finite number > 0"),
    ("scrub", "weight_decay", "-1e-4", "scrub.weight_decay=-0.0001 is not allowed"),
    ("eu_k", "epochs", "0", "eu_k.epochs=0 is not allowed"),
    ("graddiff", "optimizer", "rmsprop", "graddiff.optimizer='rmsprop' is not allowed: it must "
                                         "be one of sgd, adam, adamw"),
    ("iu", "hessian", "kfac", "iu.hessian='kfac' is not allowed: it must be one of diagonal, "
                              "woodfisher"),
    ("sisa", "shards", "0", "sisa.shards=0 is not allowed"),
])
def test_plan_refuses_a_value_outside_its_range(method, name, value, message):
    with pytest.raises(UserError, match=message) as info:
        plan(["digits-random10"], [method], [0], {method: {name: value}})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("method, values", [
    ("amnesiac", {"repair_epochs": 0}),  # the subtraction without repair
    ("scrub", {"msteps": 0, "alpha": 0.0, "max_grad_norm": 0.0}),
    ("neggrad_plus", {"beta": 1.0}),  # plain fine-tuning
    ("eu_k", {"epochs": "none"}),  # the recipe's
    ("ga", {"lr": 1e30}),  # finite: allowed, if it diverges it is recorded as failed
])
def test_plan_accepts_the_edges_a_method_supports(method, values):
    (job,) = plan(["digits-random10"], [method], [0], {method: values})
    for name, value in values.items():
        assert job.params[name] == (None if value == "none" else value)


def test_language_values_are_checked_too():
    with pytest.raises(UserError, match="npo.beta=0.0 is not allowed"):
        plan(["entities-forget05"], ["npo"], [0], {"npo": {"beta": 0}})
    with pytest.raises(UserError, match="npo.retain_term='mse' is not allowed"):
        plan(["entities-forget05"], ["npo"], [0], {"npo": {"retain_term": "mse"}})
    (job,) = plan(["entities-forget05"], ["task_vector"], [0], {"task_vector": {"alpha": -1}})
    assert job.params["alpha"] == -1.0  # negation of the negation: any finite scale


def test_population_refuses_before_building_anything(tmp_path):
    store = Store(tmp_path / "runs.db")
    with pytest.raises(UserError, match="ga.epochs=0 is not allowed"):
        run_population("digits-random10", ["ga"], 3, store, params={"ga": {"epochs": 0}},
                       cache=ModelCache(tmp_path / "cache"))
    assert store.runs() == [] and not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- benchmark variants

@pytest.mark.parametrize("variant, message", [
    ("digits-random10[epochs=-3]", "recipe.epochs=-3 is not allowed: it must be an integer >= 1"),
    ("digits-random10[epochs=0]", "recipe.epochs=0 is not allowed"),
    ("digits-random10[lr=nan]", "recipe.lr=nan is not allowed: it must be a finite number > 0"),
    ("digits-random10[batch_size=0]", "recipe.batch_size=0 is not allowed"),
    ("digits-random10[momentum=1]", "recipe.momentum=1.0 is not allowed"),
    ("digits-random10[optimizer=rmsprop]", "recipe.optimizer='rmsprop' is not allowed"),
    ("digits-random10[fraction=1.5]", r"forget.fraction=1.5 is not allowed: .* in \(0, 1\)"),
    ("digits-random10[count=0]", "forget.count=0 is not allowed"),
    ("digits-labelswap[classes=-1+7]", "forget.classes=.-1, 7. is not allowed: each item"),
    ("digits-random10[class_id=99]", "class_id does not apply to a random forget request "
                                     r"\(it reads fraction, count\)"),
    ("digits-random10[against=ga]", "against does not apply to a random forget request"),
    ("digits-class[manipulation=backdoor]", "manipulation does not apply to a class forget"),
    ("digits-class[fraction=0.2]", "fraction does not apply to a class forget request"),
    ("digits-class[forget_pool_factor=2]", "forget_pool_factor does not apply to a class"),
    ("digits-random10[forget_kind=class]", "forget_kind=class needs the class to forget: add "
                                           "class_id=N"),
    ("digits-random10[forget_kind=subclass,class_id=-1]", "forget.class_id=-1 is not allowed"),
    ("digits-subclass[group=3]", r"group=3 does not exist among groups=3 \(they are numbered "
                                 r"0..2\)"),
])
def test_bad_variants_are_refused(variant, message):
    with pytest.raises(UserError, match=message) as info:
        get_spec(variant)
    assert str(info.value).startswith(f"benchmark {variant!r}: ") and "\n" not in str(info.value)


def test_good_variants_still_apply():
    spec = get_spec("digits-random10[forget_kind=class,class_id=3]")
    assert (spec.forget.kind, spec.forget.class_id) == ("class", 3)
    spec = get_spec("digits-random10[class_id=3,forget_kind=subclass,group=1]")  # any order
    assert (spec.forget.kind, spec.forget.class_id, spec.forget.group) == ("subclass", 3, 1)
    spec = get_spec("digits-random10[epochs=2,lr=0.1,batch_size=32,optimizer=adam]")
    assert spec.recipe == dataclasses.replace(get_spec("digits-random10").recipe, epochs=2,
                                              lr=0.1, batch_size=32, optimizer="adam")
    spec = get_spec("digits-random10[kind=hardest,against=finetune,pool_factor=2]")
    assert (spec.forget.against, spec.forget.pool_factor) == ("finetune", 2.0)


def test_a_class_the_data_lacks_is_refused_before_training(tmp_path):
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(UserError, match="unknown class 99: classes are 0..9"):
        build_scenario("digits-class[class_id=99]", 0, cache)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # nothing trained


# --------------------------------------------------------------------------- unlearning.unlearn

def test_unlearn_refuses_before_the_method_runs(tmp_path):
    scenario = build_scenario("digits-random10[epochs=1]", 0, ModelCache(tmp_path / "cache"))
    with pytest.raises(UserError, match="finetune.epochs=0 is not allowed"):
        ub.unlearn(scenario, "finetune", {"epochs": 0})
    with pytest.raises(UserError, match="ga.lr=-0.1 is not allowed"):
        ub.unlearn(scenario, "ga", {"lr": -0.1})


# --------------------------------------------------------------------------- the CLI

@pytest.mark.slow
def test_run_with_zero_epochs_exits_2_and_stores_nothing(tmp_path):
    db = tmp_path / "runs.db"
    Store(db)  # a real, empty store: the refused run must add nothing to it
    env = dict(os.environ, UNLEARNBENCH_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    result = subprocess.run([*CLI, "run", "-b", "digits-random10[epochs=1]", "-m", "finetune",
                             "--set", "finetune.epochs=0", "--db", str(db), "--no-progress"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == ("error: finetune.epochs=0 is not allowed: it must be an "
                                     "integer >= 1")
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)
    assert not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- deletion requests

NET_PY = '''
from torch import nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        return self.layers(x.flatten(1))
'''


@pytest.fixture(scope="module")
def user_files(tmp_path_factory) -> Path:
    """A user's model (module file + safetensors, untrained: nothing here gets to unlearn it)
    and 100 digits with string ids."""
    import torch
    from safetensors.torch import save_model
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("user")
    (root / "net.py").write_text(NET_PY)
    namespace = {}
    exec(NET_PY, namespace)
    torch.manual_seed(0)
    save_model(namespace["MLP"](), str(root / "net.safetensors"))
    x, y = load_digits(return_X_y=True)
    np.savez(root / "train.npz", x=(x[:100] / 16).astype(np.float32), y=y[:100],
             ids=np.array([f"d{i}" for i in range(100)]))
    return root


@pytest.mark.parametrize("settings, message", [
    (["epochs=0"], "ga.epochs=0 is not allowed: it must be an integer >= 1"),
    (["ga.epochs=-2"], "ga.epochs=-2 is not allowed"),
    (["lr=nan"], "ga.lr=nan is not allowed"),
    (["recipe.epochs=0"], "recipe.epochs=0 is not allowed: it must be an integer >= 1"),
    (["recipe.lr=-1"], "recipe.lr=-1.0 is not allowed"),
    (["recipe.batch_size=0"], "recipe.batch_size=0 is not allowed"),
    (["recipe.optimizer=lbfgs"], "recipe.optimizer='lbfgs' is not allowed: it must be one of "
                                 "sgd, adam, adamw"),
])
def test_deletion_refuses_bad_settings_before_training(settings, message, user_files, tmp_path,
                                                       capsys):
    args = ["unlearn", "--model", f"{user_files}/net.py:MLP,{user_files}/net.safetensors",
            "--data", f"{user_files}/train.npz", "--forget", "d3,d17", "--method", "ga",
            "--retrain", "--out", str(tmp_path / "out"), "--db", str(tmp_path / "store.db")]
    for item in settings:
        args += ["--set", item]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert message in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "store.db").exists()


def test_delete_api_refuses_a_bad_retrain_recipe(user_files, tmp_path):
    with pytest.raises(UserError, match="recipe.epochs=0 is not allowed"):
        ub.delete(model=f"{user_files}/net.py:MLP,{user_files}/net.safetensors",
                  data=str(user_files / "train.npz"), forget=["d3"], method="finetune",
                  out=str(tmp_path / "out"), db=str(tmp_path / "store.db"), retrain=True,
                  recipe={"epochs": 0})
    assert not (tmp_path / "out").exists()
