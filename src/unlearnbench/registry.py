"""One registry type for every kind of component.

A component is one module with one decorator::

    @methods.register("ga", params=GradientAscentParams, tasks=("classification",))
    def gradient_ascent(ctx, params): ...

The modules of the component packages (``unlearnbench.methods``, ``.metrics``, ``.data``,
``.models``, ``.benchmarks``) are imported on first look-up, so a new file registers itself
with no edit anywhere else; so are installed plugins (``plugins.py``). A component registered
from outside the package (a plugin) may not take a built-in's name.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import pkgutil
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import UserError
from .plugins import load_installed, origin


@dataclass(frozen=True)
class Entry:
    """A registered component: its name, the object, a one-line description, its typed
    hyperparameters (a dataclass, or None) and free-form attributes (tasks it supports...)."""

    name: str
    obj: Any
    description: str
    params: type | None = None
    attributes: dict = field(default_factory=dict)

    def param_fields(self) -> list[tuple[str, str, Any]]:
        """(name, type name, default) for each hyperparameter."""
        if self.params is None:
            return []
        hints = typing.get_type_hints(self.params)
        return [(f.name, type_name(hints.get(f.name, f.type)), f.default)
                for f in dataclasses.fields(self.params)]


def type_name(kind) -> str:
    """``float`` -> "float"; ``int | None`` -> "int | None"."""
    return getattr(kind, "__name__", None) if isinstance(kind, type) else str(kind)


def first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0].strip()


class Registry:
    """Named components of one kind (methods, metrics, ...)."""

    def __init__(self, kind: str, package: str,
                 check: Callable[[str, dict], None] | None = None):
        self.kind = kind
        self.package = package
        self.check = check  # called with (name, attributes) on registration; raises if wrong
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def register(self, name: str, *, params: type | None = None, description: str | None = None,
                 **attributes) -> Callable:
        """Decorator: register ``obj`` under ``name``. The description defaults to the first
        line of its docstring."""
        if params is not None and not (isinstance(params, type) and dataclasses.is_dataclass(params)):
            raise TypeError(f"{self.kind} {name!r}: params must be a dataclass (the class, "
                            "not an instance)")

        def decorate(obj):
            if not _built_in(obj):
                self._load()  # the built-ins first, whatever the import order, to check names
            if name in self._entries and self._entries[name].obj is not obj:
                taken = self._entries[name].obj
                if _built_in(taken) and not _built_in(obj):
                    raise UserError(f"{origin(obj)} registers the {self._singular()} {name!r}, "
                                    f"a built-in name ({origin(taken)}); register it under "
                                    "another name")
                raise ValueError(f"{self.kind} {name!r} is registered twice ({origin(taken)} "
                                 f"and {origin(obj)})")
            text = description or first_line(getattr(obj, "__doc__", None))
            if not text:
                raise ValueError(f"{self.kind} {name!r} needs a description or a docstring")
            if self.check is not None:
                self.check(f"{origin(obj)} registers the {self._singular()} {name!r}", attributes)
            self._entries[name] = Entry(name, obj, text, params, dict(attributes))
            return obj

        return decorate

    def _load(self) -> None:
        # Import every module of the component package once, so that each registers itself.
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__, self.package + "."):
            importlib.import_module(info.name)
        load_installed()

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def get(self, name: str) -> Entry:
        self._load()
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else \
                f"run `unlearnbench list {self.kind}` to see them"
            raise UserError(f"unknown {self._singular()} {name!r}: {hint}")
        return self._entries[name]

    def _singular(self) -> str:
        return self.kind[:-1] if self.kind.endswith("s") else self.kind


# What a metric's registration says about reading it; every table, ranking and tuning
# objective reads it from there (`check_metric`).
#   goal: how it is ranked: "higher", "lower", "retrain" (closest to the retrained
#     reference's value) or a number (closest to it: 0 for PrivLeak, 0.5 for an attack's
#     accuracy);
#   title: its display name; unit: one of UNITS; group: what it measures, one of GROUPS;
#   column (optional): its place among a leaderboard table's columns (ascending);
#   headline (optional, with a column): a table's rank aggregates it; the first headline
#     column a table has is its sort metric;
#   tasks, splits: where it applies (`metrics.evaluation`); suite (optional): a name
#     `--metrics` accepts for every metric of that suite (tofu, muse, mia...);
#   applies (optional): a test of the scenario, False where the metric does not apply
#     beyond its tasks and splits (the routing metrics: a model with routers);
#   on_request (optional): True for a metric computed only when named (by itself or its
#     suite), not in the default evaluation: it costs more than reading model outputs (the
#     Anamnesis Index relearns, the concept vectors project every MLP value vector).
GOALS = ("higher", "lower", "retrain")
# "score": dimensionless and of either sign (a z-score such as Min-K%++'s)
UNITS = ("%", "fraction", "ratio", "nats", "bits", "s", "score")
GROUPS = ("forget", "privacy", "utility", "overall", "cost")
METRIC_ATTRIBUTES = {"goal", "title", "unit", "group", "column", "headline", "tasks", "splits",
                     "suite", "applies", "on_request"}


def check_metric(who: str, attributes: dict) -> None:
    """Refuse a metric registration that leaves out, or misspells, what `GOALS`, `UNITS` and
    `GROUPS` describe (``who``: "FILE registers the metric 'NAME'")."""
    goal = attributes.get("goal")
    if not (goal in GOALS or (isinstance(goal, (int, float)) and not isinstance(goal, bool))):
        raise UserError(f"{who} with goal={goal!r}; give goal= one of {', '.join(GOALS)} or "
                        "the number that is best")
    for key, allowed in (("unit", UNITS), ("group", GROUPS)):
        if attributes.get(key) not in allowed:
            raise UserError(f"{who} with {key}={attributes.get(key)!r}; give {key}= one of "
                            f"{', '.join(allowed)}")
    if not isinstance(attributes.get("title"), str) or not attributes["title"].strip():
        raise UserError(f"{who} without a title; give title= its display name")
    if attributes.get("headline") and attributes.get("column") is None:
        raise UserError(f"{who} as a headline without a column; give column= its place")
    unknown = sorted(set(attributes) - METRIC_ATTRIBUTES)
    if unknown:
        raise UserError(f"{who} with {', '.join(unknown)}, which nothing reads; leave "
                        f"{'it' if len(unknown) == 1 else 'them'} out")


def _built_in(obj) -> bool:
    return (getattr(obj, "__module__", None) or "").startswith("unlearnbench.")


methods = Registry("methods", "unlearnbench.methods")
metrics = Registry("metrics", "unlearnbench.metrics", check=check_metric)
benchmarks = Registry("benchmarks", "unlearnbench.benchmarks")
datasets = Registry("datasets", "unlearnbench.data")
models = Registry("models", "unlearnbench.models")

ALL = {r.kind: r for r in (methods, metrics, benchmarks, datasets, models)}
