"""Typed specs: training recipes, forget requests, benchmarks, hyperparameter resolution and
``--set`` assignments (YAML config files are read by ``cli/config.py``)."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError
from .params import OPTIMIZERS, PRECISIONS, check_values, param

FORGET_KINDS = ("random", "class", "subclass", "corrective", "hardest")
# Learning-rate schedules of training from scratch (``train.fit_recipe``).
SCHEDULES = ("cosine", "constant")
MANIPULATIONS = ("label_swap", "backdoor")


@dataclass(frozen=True)
class Recipe:
    """How a model is trained from scratch (the original and the retrained reference)."""

    epochs: int = param(20, ge=1)
    batch_size: int = param(64, ge=1)
    lr: float = param(0.05, gt=0)
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    optimizer: str = param("sgd", choices=OPTIMIZERS)
    # Language models: train (and unlearn) through LoRA adapters of this rank, merged into
    # the weights afterwards; 0 trains every weight.
    lora_rank: int = param(0, ge=0)
    # "fp32", or mixed precision "bf16" / "fp16" for every optimizer loop (see train.py).
    precision: str = param("fp32", choices=PRECISIONS)
    # "cosine": the task's decay to 0 over the run (language models warm up first);
    # "constant": ``lr`` throughout.
    schedule: str = param("cosine", choices=SCHEDULES)


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
      bi-level search (see ``requests.forget.select_hardest``).

    With ``requests`` = k > 1 the forget set arrives as k successive deletion requests.
    """

    # "dataset": a language data set defines the request itself (its ``forget`` split).
    kind: str = param("random", choices=(*FORGET_KINDS, "dataset"))
    fraction: float | None = param(0.1, gt=0, lt=1)
    count: int | None = param(None, ge=1)
    class_id: int | None = param(None, ge=0)
    groups: int = param(3, ge=2)
    group: int = param(0, ge=0)
    manipulation: str | None = param(None, choices=MANIPULATIONS)
    classes: tuple[int, ...] = param((3, 8), ge=0)
    manipulated_fraction: float = param(0.1, gt=0, le=1)
    known_fraction: float = param(0.5, gt=0, le=1)
    # Sequential requests: the forget set is split (seeded) into this many disjoint requests,
    # unlearned one after another from the previous request's model, each scored.
    requests: int = param(1, ge=1)
    # The validation request tuning runs on (``NAME[validation=1]``): a request of the same
    # kind disjoint from this one (see ``requests.validation.select_validation``).
    validation: bool = False
    # "hardest": the method whose worst case is sought, and the candidate pool's size as a
    # multiple of the forget set's.
    against: str | None = None
    pool_factor: float = param(3.0, ge=1)


# The request fields each kind reads (requests/forget.py, requests/manipulate.py); every kind also
# reads kind, requests and validation.
KIND_FIELDS = {
    "random": ("fraction", "count"),
    "class": ("class_id",),
    "subclass": ("class_id", "groups", "group"),
    "corrective": ("manipulation", "classes", "manipulated_fraction", "known_fraction"),
    "hardest": ("fraction", "count", "against", "pool_factor"),
    "dataset": (),
}
# The field a kind cannot do without, and how to give it.
KIND_NEEDS = {
    "class": ("class_id", "the class to forget: add class_id=N"),
    "subclass": ("class_id", "the class to split: add class_id=N"),
    "corrective": ("manipulation", "a manipulation: add manipulation=label_swap or backdoor"),
    "hardest": ("against", "the method whose worst case to find: add against=METHOD, "
                           "e.g. against=ga"),
}


def check_request(forget: ForgetSpec, keys: dict[str, str], where: str) -> None:
    """Refuse a request whose kind lacks the field it needs, or for which a variant set a
    field (``keys``: field name -> the key as written) that its kind does not read. Run once
    every key is applied: a variant may change the kind and set its fields together."""
    if forget.kind in KIND_NEEDS:
        name, hint = KIND_NEEDS[forget.kind]
        if getattr(forget, name) is None:
            raise UserError(f"{where}: forget_kind={forget.kind} needs {hint}")
    reads = KIND_FIELDS[forget.kind]
    for name, key in keys.items():
        if name not in reads + ("kind", "requests"):
            raise UserError(f"{where}: {key} does not apply to a {forget.kind} forget request "
                            f"(it reads {', '.join(reads)}); drop it, or change the kind with "
                            "forget_kind=KIND")
    check_values(forget, f"{where}: forget")
    if forget.kind == "subclass" and forget.group >= forget.groups:
        raise UserError(f"{where}: group={forget.group} does not exist among groups="
                        f"{forget.groups} (they are numbered 0..{forget.groups - 1})")


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
            if isinstance(value, int) and value in (0, 1):  # YAML's true/false are bools
                return bool(value)
            raise ValueError
        if kind in (int, float, str):
            # A bool is an int to Python and a list or mapping would become its repr: neither
            # is a number or a name the user meant.
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError
            number = value
            if kind is int and isinstance(value, str):  # "1000", also "1e3" (YAML keeps it text)
                text = value.strip()
                number = int(text) if text.lstrip("+-").isdigit() else float(text)
            if kind is int and isinstance(number, float) and not number.is_integer():
                raise ValueError
            return kind(number)
    except (TypeError, ValueError):
        raise UserError(f"{where}: expected {kind.__name__}, got {value!r}") from None
    return value


def variant_forget_fields() -> list[str]:
    """The ``ForgetSpec`` fields a benchmark variant may set by name: all but ``validation``,
    which has a key of its own (``spec_names.validation_variant``)."""
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
    """Build a hyperparameter dataclass from its defaults and ``overrides``; unknown names,
    values of the wrong type and values outside a field's declared range (``params.param``)
    are user errors."""
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
    resolved = params_type(**values)
    check_values(resolved, owner)
    return resolved


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

