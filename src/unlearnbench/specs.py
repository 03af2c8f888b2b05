"""Typed specs: training recipes, forget requests, benchmarks, hyperparameter resolution and
YAML run configs (safe-loaded; a config can only hold plain values, never name objects)."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


@dataclass(frozen=True)
class Recipe:
    """How a model is trained from scratch (the original and the retrained reference)."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"  # "sgd", "adam" or "adamw"
    # Language models: train (and unlearn) through LoRA adapters of this rank, merged into
    # the weights afterwards; 0 trains every weight.
    lora_rank: int = 0
    # "fp32", or mixed precision "bf16" / "fp16" for every optimizer loop (see train.py).
    precision: str = "fp32"


@dataclass(frozen=True)
class ForgetSpec:
    """Which training examples a deletion request names.

    - "random": a seeded random ``fraction`` (or ``count``) of the training set;
    - "class": every training example of class ``class_id``;
    - "subclass": one group inside class ``class_id``: the training examples of that class are
      clustered into ``groups`` clusters (seeded k-means on the original model's penultimate
      features) and cluster number ``group`` (clusters ordered by size, largest first) is
      forgotten — a writing style, say; the analogue of MUFAC's identity-level forgetting;
    - "corrective": the training data is manipulated before training (``manipulation``
      "label_swap": ``manipulated_fraction`` of the examples of ``classes`` (a, b) get the
      other label; "backdoor": ``manipulated_fraction`` of the other classes' training examples
      get a trigger patch and label ``classes[0]``) and only ``known_fraction`` of the manipulated examples
      are known: they form the forget set (the corrective-unlearning setting);
    - "hardest": the ``fraction`` (or ``count``) of the training set hardest to unlearn for
      method ``against`` (Fan et al. 2024, "Challenging Forgets"), chosen among a seeded
      candidate pool ``pool_factor`` times that size by a one-shot proxy of the paper's
      bi-level search (see ``data.forget.select_hardest``).

    With ``requests`` = k > 1 the forget set arrives as k successive deletion requests.
    """

    kind: str = "random"
    fraction: float | None = 0.1
    count: int | None = None
    class_id: int | None = None
    groups: int = 3
    group: int = 0
    manipulation: str | None = None
    classes: tuple[int, ...] = (3, 8)
    manipulated_fraction: float = 0.1
    known_fraction: float = 0.5
    # Sequential requests: the forget set is split (seeded) into this many disjoint requests,
    # unlearned one after another from the previous request's model, each scored.
    requests: int = 1
    # The validation request tuning runs on (``NAME[validation=1]``): a request of the same
    # kind disjoint from this one (see ``data.validation.select_validation``).
    validation: bool = False
    # "hardest": the method whose worst case is sought, and the candidate pool's size as a
    # multiple of the forget set's.
    against: str | None = None
    pool_factor: float = 3.0


@dataclass(frozen=True)
class BenchmarkSpec:
    """A data set, a model, a training recipe and a forget request."""

    name: str
    dataset: str
    model: str
    recipe: Recipe
    forget: ForgetSpec
    dataset_options: dict = field(default_factory=dict)
    task: str = "classification"  # or "language"
    model_options: dict = field(default_factory=dict)  # e.g. a tiny LM's {"vocab_size": 2048}
    # Hyperparameters tuned for this benchmark, applied over a method's defaults (and under
    # the user's overrides), e.g. {"ga": {"lr": 1e-4}} where the generic default diverges.
    method_params: dict = field(default_factory=dict)
    # Whether unlearning methods may read the retain set. RWKU's setting has no retain corpus:
    # ``NAME[retain=none]`` gives methods the forget set only (evaluation still scores retain).
    retain_available: bool = True
    # Train the target and retain models with this seed whatever the run's seed (TOFU's fixed
    # fine-tuned targets): the run seed then varies the unlearning only. None: per-seed models.
    model_seed: int | None = None


def coerce(value: Any, kind: Any, where: str) -> Any:
    """Convert a config/CLI value to a dataclass field's declared type."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        kind = options[0]
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes"):
                    return True
                if value.lower() in ("false", "0", "no"):
                    return False
                raise ValueError
            return bool(value)
        if kind in (int, float, str):
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return kind(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: expected {kind.__name__}, got {value!r}") from None
    return value


FORGET_KINDS = ("random", "class", "subclass", "corrective", "hardest")


def variant_forget_fields() -> list[str]:
    """The ``ForgetSpec`` fields a benchmark variant may set by name: all but ``validation``,
    which has a key of its own (``scenarios.validation_variant``)."""
    return [f.name for f in dataclasses.fields(ForgetSpec) if f.name != "validation"]


def forget_field(key: str) -> str | None:
    """The ``ForgetSpec`` field a benchmark-variant key names: the field's own name
    (``requests``, ``class_id``) or that name prefixed ``forget_`` (``forget_kind``); None
    when it names none of ``variant_forget_fields()``."""
    names = variant_forget_fields()
    for candidate in (key, key.removeprefix("forget_")):
        if candidate in names:
            return candidate
    return None


def with_forget_field(forget: ForgetSpec, key: str, value: str, where: str) -> ForgetSpec:
    """``forget`` with the field that ``key`` names (see ``forget_field``) set from the text
    ``value``, coerced to the field's type (a tuple is written with ``+``: ``classes=3+8``).
    The kind must be one of ``FORGET_KINDS`` and ``against`` a registered method."""
    from .registry import methods

    name = forget_field(key)
    kind = typing.get_type_hints(ForgetSpec)[name]
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        parsed = tuple(coerce(part, item, f"{where}: {key}") for part in value.split("+"))
    else:
        parsed = coerce(value, kind, f"{where}: {key}")
    if name == "kind" and parsed not in FORGET_KINDS:
        raise UserError(f"{where}: unknown forget kind {parsed!r}; use "
                        f"{', '.join(FORGET_KINDS)}")
    if name == "requests" and parsed < 1:
        raise UserError(f"{where}: requests must be at least 1, got {parsed}")
    if name == "against" and parsed is not None:
        methods.get(parsed)  # an unknown name is a UserError naming the close matches
    return dataclasses.replace(forget, **{name: parsed})


def resolve_params(params_type: type | None, overrides: dict[str, Any], owner: str):
    """Build a hyperparameter dataclass from its defaults and ``overrides``; unknown names and
    values of the wrong type are user errors."""
    if params_type is None:
        if overrides:
            raise UserError(f"{owner} takes no hyperparameters, got {', '.join(overrides)}")
        return None
    hints = typing.get_type_hints(params_type)
    names = [f.name for f in dataclasses.fields(params_type)]
    values = {}
    for key, value in overrides.items():
        if key not in names:
            raise UserError(f"{owner} has no hyperparameter {key!r}; it has: {', '.join(names)}")
        values[key] = coerce(value, hints[key], f"{owner}.{key}")
    return params_type(**values)


def parse_assignments(items: typing.Iterable[str]) -> dict[str, dict[str, str]]:
    """``["ga.lr=0.01", "finetune.epochs=3"]`` -> ``{"ga": {"lr": "0.01"}, ...}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        target, eq, value = item.partition("=")
        method, dot, key = target.partition(".")
        if not eq or not dot or not method or not key:
            raise UserError(f"--set {item!r}: write METHOD.PARAM=VALUE, for example ga.lr=0.001")
        out.setdefault(method, {})[key] = value
    return out


CONFIG_KEYS = {"benchmark", "benchmarks", "methods", "seeds", "db", "cache_dir", "device",
               "params", "max_steps", "threads", "workers", "retry_failed", "model", "lora",
               "curve_every", "curve_metrics", "metrics", "precision"}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML run config. It may say everything the ``run`` flags say::

        benchmarks: [digits-random10]
        methods: [finetune, ga]
        seeds: 3
        params: {ga: {lr: 0.001}}
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config file {str(path)!r} is not valid YAML: "
                        f"{str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {str(path)!r} must hold a mapping of option: value")
    unknown = set(data) - CONFIG_KEYS
    if unknown:
        raise UserError(f"config file {str(path)!r}: unknown keys {', '.join(sorted(unknown))}; "
                        f"allowed: {', '.join(sorted(CONFIG_KEYS))}")
    if "seeds" in data and (not isinstance(data["seeds"], int) or isinstance(data["seeds"], bool)):
        raise UserError(f"config file {str(path)!r}: seeds must be a whole number, got "
                        f"{data['seeds']!r}")
    params = data.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise UserError(f"config file {str(path)!r}: params must map each method to its "
                        "hyperparameters, e.g. params: {ga: {lr: 0.001}}")
    return data
