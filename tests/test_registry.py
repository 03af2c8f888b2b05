"""The component registry: the decorator, typed hyperparameters, errors, discovery of modules
and the built-in components."""
from __future__ import annotations

import importlib
import sys
import textwrap
from dataclasses import dataclass

import pytest

from unlearnbench.errors import UserError
from unlearnbench.registry import ALL, Registry, benchmarks, datasets, methods, metrics, models


@pytest.fixture
def make_package(tmp_path, monkeypatch):
    """Write a throw-away package ``name`` with ``files`` ({module: source}) on sys.path."""
    created = []

    def make(name: str, files: dict[str, str]):
        root = tmp_path / name
        root.mkdir()
        for module, source in files.items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
        created.append(name)
        importlib.invalidate_caches()
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    yield make
    for name in created:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


@pytest.fixture
def widgets(make_package):
    return Registry("widgets", make_package("ub_test_empty_widgets", {"__init__": ""}))


@dataclass
class WidgetParams:
    size: int = 3
    scale: float = 0.5
    name: str = "w"
    loud: bool = False
    limit: float | None = None


def test_register_with_the_decorator(widgets):
    @widgets.register("spinner", params=WidgetParams, tasks=("classification",), exact=True)
    def spinner(ctx, params):
        """Spins the model around.

        More text that is not part of the description."""

    entry = widgets.get("spinner")
    assert entry.obj is spinner
    assert entry.name == "spinner"
    assert entry.description == "Spins the model around."
    assert entry.params is WidgetParams
    assert entry.attributes == {"tasks": ("classification",), "exact": True}
    assert entry.param_fields() == [("size", "int", 3), ("scale", "float", 0.5),
                                    ("name", "str", "w"), ("loud", "bool", False),
                                    ("limit", "float | None", None)]
    assert widgets.names() == ["spinner"]
    assert "spinner" in widgets and "spinne" not in widgets
    assert [e.name for e in widgets.entries()] == ["spinner"]


def test_description_argument_and_no_params(widgets):
    @widgets.register("plain", description="Given explicitly.")
    class Plain:
        """Docstring that is not used."""

    entry = widgets.get("plain")
    assert entry.description == "Given explicitly."
    assert entry.params is None and entry.param_fields() == []


def test_description_is_required(widgets):
    with pytest.raises(ValueError, match="needs a description or a docstring"):
        @widgets.register("mute")
        def mute():
            pass


def test_duplicate_registration(widgets):
    def first():
        """First."""

    def second():
        """Second."""

    widgets.register("dup")(first)
    widgets.register("dup")(first)  # the same object again (a module imported twice) is fine
    with pytest.raises(ValueError, match="registered twice"):
        widgets.register("dup")(second)
    assert widgets.get("dup").obj is first


def test_params_must_be_a_dataclass(widgets):
    class NotADataclass:
        size: int = 3

    with pytest.raises(TypeError, match="dataclass"):
        widgets.register("bad", params=NotADataclass)
    with pytest.raises(TypeError, match="dataclass"):
        widgets.register("bad", params=WidgetParams())  # an instance is refused too
    assert "bad" not in widgets


def test_unknown_name_suggests_close_names(widgets):
    for name in ("finetune", "fisher", "ga"):
        widgets.register(name, description=name)(object())
    with pytest.raises(UserError, match=r"unknown widget 'finetun': did you mean finetune\?"):
        widgets.get("finetun")
    with pytest.raises(UserError, match=r"run `unlearnbench list widgets`"):
        widgets.get("zzzzzzzz")


def test_modules_of_the_package_register_themselves(make_package):
    package = make_package("ub_test_gadgets", {
        "__init__": """
            from unlearnbench.registry import Registry
            gadgets = Registry("gadgets", __name__)
        """,
        "alpha": """
            from . import gadgets

            @gadgets.register("alpha", colour="red")
            def alpha():
                '''The first gadget.'''
        """,
        "beta": """
            from . import gadgets

            @gadgets.register("beta")
            class Beta:
                '''The second gadget.'''
        """,
    })
    registry = importlib.import_module(package).gadgets
    assert registry.names() == ["alpha", "beta"]  # found with no import by the caller
    assert registry.get("alpha").attributes == {"colour": "red"}
    assert registry.get("beta").description == "The second gadget."


# --------------------------------------------------------------------------- built-ins

def test_global_registries_list_the_builtins():
    assert set(ALL) == {"methods", "metrics", "benchmarks", "datasets", "models"}
    assert {"original", "retrain", "finetune", "ga", "rl"} <= set(methods.names())
    assert {"digits-random10", "digits-class", "mnist-random10", "mnist-class"} \
        <= set(benchmarks.names())
    assert {"ua", "ra", "ta", "mia_efficacy", "avg_gap", "unlearn_seconds"} <= set(metrics.names())
    assert {"digits", "mnist"} <= set(datasets.names())
    assert "mlp" in models.names()
    for registry in ALL.values():
        for entry in registry.entries():
            assert entry.description and "\n" not in entry.description


def test_builtin_method_hyperparameters():
    ga = methods.get("ga")
    fields = {name: (kind, default) for name, kind, default in ga.param_fields()}
    assert fields["lr"][0] == "float" and fields["epochs"][0] == "int"
    assert fields["lr"][1] == ga.params().lr
    assert "classification" in ga.attributes["tasks"]
    assert methods.get("original").params is None
    assert methods.get("retrain").params is None


def test_builtin_benchmarks_build_their_specs():
    spec = benchmarks.get("digits-class").obj()
    assert spec.name == "digits-class" and spec.dataset == "digits"
    assert spec.forget.kind == "class"
    spec = benchmarks.get("digits-random10").obj()
    assert spec.forget.kind == "random" and spec.forget.fraction == 0.1
    assert spec.dataset in datasets and spec.model in models


@pytest.mark.parametrize("name", benchmarks.names())
def test_a_benchmarks_tuned_method_params_name_real_methods_and_hyperparameters(name):
    # A typo in a benchmark's method_params would otherwise be ignored until that method runs
    # on it; resolving them also checks each value against the hyperparameter's allowed range.
    from unlearnbench.testing import check_benchmark_spec

    check_benchmark_spec(name)


def test_the_package_exposes_the_public_functions_after_every_submodule_is_imported():
    """The package loads its public functions lazily; a submodule named like one of them would,
    once imported, be bound on the package over the function. Import every submodule, then
    check that each public name is still the function."""
    import pkgutil

    import unlearnbench
    from unlearnbench import api

    for module in pkgutil.walk_packages(unlearnbench.__path__, "unlearnbench."):
        importlib.import_module(module.name)
    for name in ("scenario", "build_scenario", "unlearn", "evaluate", "delete"):
        assert getattr(unlearnbench, name) is getattr(api, name), name
