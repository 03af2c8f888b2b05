"""Benchmark names to specs: ``get_spec("NAME[key=value,...]")`` reads a registered benchmark
and folds its variant keys in (model, recipe fields, retain, validation, loader options,
request fields), each checked before anything is trained; ``variant`` folds the ``--model`` /
``--lora`` / ``--precision`` flags into a name. ``scenarios.build_scenario`` turns a spec and
a seed into a scenario."""
from __future__ import annotations

import dataclasses
import inspect
import typing

from .data import DataBundle
from .errors import UserError
from .params import check_values
from .registry import benchmarks, datasets
from .specs import (BenchmarkSpec, Recipe, check_request, coerce, forget_field,
                    variant_forget_fields, with_forget_field)

_DATA_MEMO: dict[tuple, DataBundle] = {}


def load_data(spec: BenchmarkSpec) -> DataBundle:
    """Load (once per process) the benchmark's data set."""
    key = (spec.dataset, tuple(sorted(spec.dataset_options.items())))
    if key not in _DATA_MEMO:
        _DATA_MEMO[key] = datasets.get(spec.dataset).obj(**spec.dataset_options)
    return _DATA_MEMO[key]


# Variant keys that set a training-recipe field under another name; every field of
# ``Recipe`` is a variant key under its own name too (``epochs=2``, ``lr=0.01``).
RECIPE_KEYS = {"lora": "lora_rank"}

def get_spec(name: str) -> BenchmarkSpec:
    """A registered benchmark, or a variant of one: ``entities-forget05[model=DIR,lora=8]``
    trains another model (a registered name or a Hugging Face model directory), ``lora=R``
    trains and unlearns through LoRA adapters of rank R, a training-recipe field sets it
    (``epochs=N``, ``lr=0.01``, ``batch_size=32``; ``precision=bf16`` or fp16 trains and
    unlearns in mixed precision),
    ``retain=none`` withholds the retain set from unlearning methods (RWKU's forget-only
    setting), a key naming an option of the data set's loader sets it (a smaller
    ``n_entities`` for a quick run) and a key naming a ``ForgetSpec`` field, bare or prefixed
    ``forget_``, sets the forget request (``digits-random10[forget_kind=class,class_id=3]``,
    ``[requests=4]``, ``[fraction=0.2]``; a tuple as ``classes=3+8``). Loader options come
    first: the prefix reaches a field whose bare name a loader option takes (news'
    ``forget_fraction`` stays the loader's). A variant is a benchmark of its own name, so its
    records never mix with the original's; a variant on your own data
    (``npz-random10[path=FILE,name=NAME]``) is named by the data's content instead of its path
    (``content_name``). Every value must lie in its field's declared range, and a request
    field must be one its (final) kind reads (``specs.check_request``)."""
    base, bracket, rest = name.partition("[")
    spec = benchmarks.get(base).obj()
    if not bracket:
        return spec
    if not rest.endswith("]") or not rest[:-1]:
        raise UserError(f"benchmark {name!r}: write NAME[key=value,...], e.g. "
                        f"{base}[model=DIR,lora=8]")
    variant = _Variant(name, spec)
    items = rest[:-1].split(",")
    for item in items:
        key, _, value = item.partition("=")
        if not value:
            raise UserError(f"benchmark {name!r}: {item!r} has no value; write key=value")
        handler = next((apply for takes, apply in VARIANT_KEYS if takes(variant, key)),
                       _unknown_key)
        variant.spec = handler(variant, key, value)
    spec = variant.spec
    check_values(spec.recipe, f"benchmark {name!r}: recipe")
    if spec.recipe.lora_rank and spec.task != "language":
        raise UserError(f"benchmark {name!r}: LoRA applies to language models only")
    check_request(spec.forget, variant.request_keys, f"benchmark {name!r}")
    if variant.named_by_content:
        name = content_name(spec, base, items)
    return dataclasses.replace(spec, name=name)


class _Variant:
    """A benchmark variant being read, key by key: the spec so far and what the keys are
    checked against (the data set's loader options, the recipe's fields)."""

    def __init__(self, name: str, spec: BenchmarkSpec):
        self.name, self.spec = name, spec
        self.loader = inspect.signature(datasets.get(spec.dataset).obj).parameters
        self.named_by_content = datasets.get(spec.dataset).attributes.get("content_named", False)
        self.recipe_types = typing.get_type_hints(Recipe)
        self.request_keys: dict[str, str] = {}  # request field -> key as written, checked last

    def where(self, key: str = "") -> str:
        return f"benchmark {self.name!r}" + (f": {key}" if key else "")


def _refuse_data(v: _Variant, key: str, value: str) -> BenchmarkSpec:
    raise UserError(f"{v.where()}: data={value} is how results on your data are recorded; to "
                    "run, give the data itself: path=FILE (and name=NAME)")


def _set_model(v: _Variant, key: str, value: str) -> BenchmarkSpec:
    return dataclasses.replace(v.spec, model=value)


def _set_recipe(v: _Variant, key: str, value: str) -> BenchmarkSpec:
    field = RECIPE_KEYS.get(key, key)
    setting = coerce(value, v.recipe_types[field], v.where(key))
    return dataclasses.replace(v.spec, recipe=dataclasses.replace(v.spec.recipe,
                                                                  **{field: setting}))


def _set_retain(v: _Variant, key: str, value: str) -> BenchmarkSpec:
    if value not in ("none", "all"):
        raise UserError(f"{v.where()}: retain={value!r}: use retain=none (methods see the "
                        "forget set only) or retain=all")
    return dataclasses.replace(v.spec, retain_available=value == "all")


def _set_validation(v: _Variant, key: str, value: str) -> BenchmarkSpec:
    # the request `unlearnbench tune` runs on (see studies/tune.py)
    return validation_variant(v.spec, coerce(value, bool, v.where(key)), v.loader)


def _set_loader_option(v: _Variant, key: str, value: str) -> BenchmarkSpec:
    default = v.loader[key].default
    kind = type(default) if default not in (None, inspect.Parameter.empty) else str
    options = dict(v.spec.dataset_options, **{key: coerce(value, kind, v.where(key))})
    return dataclasses.replace(v.spec, dataset_options=options)


def _set_request_field(v: _Variant, key: str, value: str) -> BenchmarkSpec:
    if v.spec.task == "language" and forget_field(key) != "requests":
        raise UserError(f"{v.where(key)}: a language data set defines its own forget request; "
                        "of the request fields only requests=K applies (the data set's "
                        f"options: {', '.join(v.loader)})")
    v.request_keys[forget_field(key)] = key
    return dataclasses.replace(v.spec, forget=with_forget_field(v.spec.forget, key, value,
                                                                v.where()))


def _unknown_key(v: _Variant, key: str, value: str) -> BenchmarkSpec:
    fields = ", ".join(variant_forget_fields())
    options = (f"; or an option of data set {v.spec.dataset!r}: {', '.join(v.loader)}"
               if v.loader else "")
    raise UserError(f"{v.where()}: unknown variant key {key!r}; use model, lora, a "
                    f"training-recipe field ({', '.join(v.recipe_types)}), retain, validation, "
                    f"a forget-request field (bare or prefixed forget_): {fields}{options}")


# The variant keys, in order of precedence: (does this handler take the key?, apply it).
# Loader options come before request fields, so that a loader option keeps its bare name.
VARIANT_KEYS = [
    (lambda v, key: key == "data" and v.named_by_content, _refuse_data),
    (lambda v, key: key == "model", _set_model),
    (lambda v, key: RECIPE_KEYS.get(key, key) in v.recipe_types, _set_recipe),
    (lambda v, key: key == "retain", _set_retain),
    (lambda v, key: key == "validation", _set_validation),
    (lambda v, key: key in v.loader, _set_loader_option),
    (lambda v, key: forget_field(key) is not None, _set_request_field),
]


# Registered models that read images (C, H, W), not feature vectors.
IMAGE_MODELS = ("cnn", "resnet18")


def content_name(spec: BenchmarkSpec, base: str, items: list[str]) -> str:
    """The recorded name of a benchmark on your own data (``data/generic.py``): its ``path=``
    and ``name=`` become ``data=NAME@HASH``, the loaded data's content, so that a moved file
    keeps its results and a changed one is another benchmark; the model is named too, given
    or not (the recipe's fields are named where given). Loads the data (once a process)."""
    data = load_data(spec)
    if spec.model in IMAGE_MODELS and len(data.input_shape) != 3:
        raise UserError(f"benchmark {spec.name!r}: model={spec.model} reads images, and this "
                        f"data has feature vectors of shape {data.input_shape}; use model=mlp")
    kept = [item for item in items if item.partition("=")[0] not in ("path", "name", "model")]
    return f"{base}[{','.join([f'data={data.name}', f'model={spec.model}', *kept])}]"


def validation_variant(spec: BenchmarkSpec, on: bool, loader) -> BenchmarkSpec:
    """``validation=1``: classification requests select their validation forget set
    (``requests/validation.py``); a language data set expresses it with a loader option of the same
    name (entities: the people just before the forget people) or cannot be tuned."""
    if spec.task != "language":
        return dataclasses.replace(spec, forget=dataclasses.replace(spec.forget, validation=on))
    if "validation" not in loader:
        raise UserError(f"benchmark {spec.name!r}: data set {spec.dataset!r} has no validation "
                        "forget request disjoint from its forget set, so it cannot be tuned; tune "
                        "an entities or news benchmark (or tune classification benchmarks)")
    return dataclasses.replace(spec, dataset_options=dict(spec.dataset_options, validation=on))


def variant(name: str, model: str | None = None, lora: int | None = None,
            precision: str | None = None) -> str:
    """The benchmark name with ``--model`` / ``--lora`` / ``--precision`` folded in (see
    ``get_spec``); a precision equal to the benchmark's own adds nothing, so that its records
    stay the benchmark's."""
    if precision is not None and precision == get_spec(name).recipe.precision:
        precision = None
    items = ([f"model={model}"] if model else []) + ([f"lora={lora}"] if lora else []) + (
        [f"precision={precision}"] if precision else [])
    if not items:
        return name
    if name.endswith("]"):
        return f"{name[:-1]},{','.join(items)}]"
    return f"{name}[{','.join(items)}]"


