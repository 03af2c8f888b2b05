"""BenchmarkSpec + seed -> Scenario: the splits, the original model (trained on forget +
retain) and the retrained reference (trained on retain only), both from the model cache."""
from __future__ import annotations

import dataclasses
import inspect
import time
import typing
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from .cache import ModelCache, content_key
from .data import DataBundle, Split
from .data.documents import N_GROUPS
from .data.forget import select_forget
from .data.manipulate import backdoor, swap_labels
from .data.validation import select_validation
from .errors import UserError
from .registry import benchmarks, datasets
from .params import check_values
from .specs import (BenchmarkSpec, ForgetSpec, Recipe, check_request, coerce, forget_field,
                    variant_forget_fields, with_forget_field)
from .tasks.classification import ClassificationTask
from .train import synchronize
from .worst_case import residual_fit

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

# The data a method may declare in ``needs`` (see ``Scenario.available_data``).
DATA_KINDS = ("forget", "retain", "refusals")


@dataclass
class Scenario:
    spec: BenchmarkSpec
    seed: int
    task: ClassificationTask
    splits: dict[str, Split]
    original: nn.Module
    reference: nn.Module
    original_meta: dict = field(default_factory=dict)
    reference_meta: dict = field(default_factory=dict)
    # Sequential requests: which request this stage is (1-based) and the examples it newly
    # asks to forget; ``forget`` then holds every example requested so far.
    request: int | None = None
    newly_forgotten: Split | None = None
    # Where the scenario's models are cached; methods with cached artefacts of their own
    # (SISA's shard checkpoints) use it too.
    cache: ModelCache | None = None

    @property
    def forget(self) -> Split:
        return self.splits["forget"]

    @property
    def retain(self) -> Split:
        return self.splits["retain"]

    def available_data(self) -> set[str]:
        """What an unlearning method may read here, in the vocabulary of a method's ``needs``:
        the forget set, the retain set (unless withheld), the data set's refusal strings."""
        refusals = getattr(getattr(self.task, "data", None), "refusals", ())
        return ({"forget"} | ({"retain"} if self.spec.retain_available else set())
                | ({"refusals"} if refusals else set()))

    @property
    def retrain_seconds(self) -> float:
        return float(self.reference_meta["train_seconds"])


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
    loader = inspect.signature(datasets.get(spec.dataset).obj).parameters
    named_by_content = datasets.get(spec.dataset).attributes.get("content_named", False)
    recipe_types = typing.get_type_hints(Recipe)
    request_keys = {}  # forget-request field -> the key as written, checked once all are set
    items = rest[:-1].split(",")
    for item in items:
        key, _, value = item.partition("=")
        if not value:
            raise UserError(f"benchmark {name!r}: {item!r} has no value; write key=value")
        if key == "data" and named_by_content:
            raise UserError(f"benchmark {name!r}: data={value} is how results on your data are "
                            "recorded; to run, give the data itself: path=FILE (and name=NAME)")
        if key == "model":
            spec = dataclasses.replace(spec, model=value)
        elif RECIPE_KEYS.get(key, key) in recipe_types:
            field = RECIPE_KEYS.get(key, key)
            setting = coerce(value, recipe_types[field], f"benchmark {name!r}: {key}")
            spec = dataclasses.replace(spec, recipe=dataclasses.replace(spec.recipe,
                                                                         **{field: setting}))
        elif key == "retain":
            if value not in ("none", "all"):
                raise UserError(f"benchmark {name!r}: retain={value!r}: use retain=none (methods "
                                "see the forget set only) or retain=all")
            spec = dataclasses.replace(spec, retain_available=value == "all")
        elif key == "validation":  # the request `unlearnbench tune` runs on (see tune.py)
            spec = validation_variant(spec, coerce(value, bool, f"{name}: validation"), loader)
        elif key in loader:
            default = loader[key].default
            kind = type(default) if default not in (None, inspect.Parameter.empty) else str
            options = dict(spec.dataset_options, **{key: coerce(value, kind, f"{name}: {key}")})
            spec = dataclasses.replace(spec, dataset_options=options)
        elif forget_field(key):
            if spec.task == "language" and forget_field(key) != "requests":
                raise UserError(f"benchmark {name!r}: {key}: a language data set defines its own "
                                "forget request; of the request fields only requests=K applies "
                                f"(the data set's options: {', '.join(loader)})")
            spec = dataclasses.replace(spec, forget=with_forget_field(spec.forget, key, value,
                                                                      f"benchmark {name!r}"))
            request_keys[forget_field(key)] = key
        else:
            fields = ", ".join(variant_forget_fields())
            options = (f"; or an option of data set {spec.dataset!r}: {', '.join(loader)}"
                       if loader else "")
            raise UserError(f"benchmark {name!r}: unknown variant key {key!r}; use model, lora, "
                            f"a training-recipe field ({', '.join(recipe_types)}), retain, "
                            f"validation, a forget-request field (bare or prefixed forget_): "
                            f"{fields}{options}")
    check_values(spec.recipe, f"benchmark {name!r}: recipe")
    if spec.recipe.lora_rank and spec.task != "language":
        raise UserError(f"benchmark {name!r}: LoRA applies to language models only")
    check_request(spec.forget, request_keys, f"benchmark {name!r}")
    if named_by_content:
        name = content_name(spec, base, items)
    return dataclasses.replace(spec, name=name)


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
    (``data/validation.py``); a language data set expresses it with a loader option of the same
    name (entities: the people just before the forget people) or cannot be tuned."""
    if spec.task != "language":
        return dataclasses.replace(spec, forget=dataclasses.replace(spec.forget, validation=on))
    if "validation" not in loader:
        raise UserError(f"benchmark {spec.name!r}: data set {spec.dataset!r} has no validation "
                        "forget request disjoint from its forget set, so it cannot be tuned; tune "
                        "an entities benchmark (or tune classification benchmarks)")
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


def _train_cached(cache: ModelCache, task: ClassificationTask, spec: BenchmarkSpec,
                  train_split: Split, seed: int, role: str) -> tuple[nn.Module, dict]:
    # The device is part of the key: a model trained on a GPU is not the CPU's bit for bit
    # (Amnesiac's replay needs that), and its training time is another device's.
    key = content_key({"data": task.fingerprint(), "model": spec.model,
                       "recipe": spec.recipe, "seed": seed, "device": task.device.type,
                       "train_ids": np.asarray(train_split.ids)})

    def train(model):
        wall, cpu = time.perf_counter(), time.process_time()
        task.fit(model, train_split, spec.recipe, seed)
        synchronize(task.device)
        return {"role": role, "benchmark": spec.name, "seed": seed, "examples": len(train_split),
                "train_seconds": time.perf_counter() - wall,
                "train_cpu_seconds": time.process_time() - cpu}

    return cache.get_or_train(key, lambda: task.fresh_model(seed), train)


def manipulate(data: DataBundle, forget: ForgetSpec, seed: int
               ) -> tuple[DataBundle, np.ndarray | None, dict[str, Split]]:
    """Apply a corrective scenario's manipulation to the training pool (the original is then
    trained on manipulated data); other kinds leave the data as it is."""
    if forget.kind != "corrective":
        return data, None, {}
    if forget.manipulation == "label_swap":
        train, positions, extra = swap_labels(data.train, data.test, forget.classes,
                                              forget.manipulated_fraction, seed)
    elif forget.manipulation == "backdoor":
        if not 0 <= forget.classes[0] < data.num_classes:
            raise UserError(f"unknown backdoor target class {forget.classes[0]}")
        train, positions, extra = backdoor(data.train, data.test, forget.classes[0],
                                           forget.manipulated_fraction, seed)
    else:
        raise UserError(f"unknown manipulation {forget.manipulation!r}: use label_swap or backdoor")
    return dataclasses.replace(data, train=train), positions, extra


def check_class_id(forget: ForgetSpec, num_classes: int) -> None:
    """Refuse a class request for a class the data set lacks now, before any training
    (``select_forget`` only gets to it once the original is trained)."""
    if forget.kind in ("class", "subclass") and not (
            forget.class_id is not None and 0 <= forget.class_id < num_classes):
        raise UserError(f"unknown class {forget.class_id!r}: classes are 0..{num_classes - 1}; "
                        "set class_id to one of them")


def build_scenario(spec: BenchmarkSpec | str, seed: int, cache: ModelCache | None = None,
                   device: str = "cpu") -> Scenario | list[Scenario]:
    """Materialise a benchmark for one seed. The seed picks the forget set (and a corrective
    scenario's manipulated examples) and initialises and shuffles the training of both models.
    A benchmark with sequential requests gives one Scenario per request."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    cache = cache or ModelCache()
    if spec.task == "language":
        return _language_scenario(spec, seed, cache, device)
    data, manipulated, extra_splits = manipulate(load_data(spec), spec.forget, seed)
    check_class_id(spec.forget, data.num_classes)
    task = ClassificationTask(data, spec.model, device)
    original, original_meta = _train_cached(cache, task, spec, data.train, seed, "original")
    forget_positions = select_forget(
        spec.forget, data.train, data.num_classes, seed,
        features=lambda: task.features(original, data.train).numpy(), manipulated=manipulated,
        residual_fit=lambda pool: residual_fit(spec, seed, cache, task, data, original,
                                               original_meta, pool))
    if spec.forget.validation:
        forget_positions = select_validation(spec.forget, data.train, data.num_classes, seed,
                                             forget_positions,
                                             lambda: task.features(original, data.train).numpy())
    retain_positions = np.setdiff1d(np.arange(len(data.train)), forget_positions)
    splits = {
        "forget": data.train.subset(forget_positions, "forget"),
        "retain": data.train.subset(retain_positions, "retain"),
        "test": data.test,
        "validation": data.validation,
        **extra_splits,
    }
    if spec.forget.requests > 1:
        return _sequence(spec, seed, cache, task, splits, forget_positions, original, original_meta)
    reference, reference_meta = _train_cached(cache, task, spec, splits["retain"], seed, "retrained")
    return Scenario(spec, seed, task, splits, original, reference, original_meta, reference_meta,
                    cache=cache)


def _sequence(spec, seed, cache, task, splits, forget_positions, original, original_meta
              ) -> list[Scenario]:
    """Stage i forgets requests 1..i: its forget split is their union, its reference is
    retrained without them, and ``newly_forgotten`` is request i alone."""
    k = spec.forget.requests
    if len(forget_positions) < k:
        raise UserError(f"cannot split {len(forget_positions)} forget examples into {k} requests")
    train = task.data.train
    order = np.random.default_rng(seed + 2).permutation(forget_positions)
    requests = [np.sort(part) for part in np.array_split(order, k)]
    stages = []
    for i in range(1, k + 1):
        forgotten = np.sort(np.concatenate(requests[:i]))
        stage_splits = dict(splits, forget=train.subset(forgotten, "forget"),
                            retain=train.subset(np.setdiff1d(np.arange(len(train)), forgotten),
                                                "retain"))
        reference, reference_meta = _train_cached(cache, task, spec, stage_splits["retain"], seed,
                                                  "retrained")
        stages.append(Scenario(spec, seed, task, stage_splits, original, reference, original_meta,
                               reference_meta, i, train.subset(requests[i - 1], "forget"), cache))
    return stages


# Language benchmarks score the retain set on a fixed sample of this size (TOFU evaluates its
# 400-question retain_perturbed set): generating answers for every retain question would cost
# more than the unlearning.
RETAIN_EVAL_SIZE = 400


def _language_scenario(spec: BenchmarkSpec, seed: int, cache: ModelCache, device: str) -> Scenario:
    """A language benchmark's data set defines the forget request (its ``forget`` split); the
    original is trained on everything it trains, the reference on all of that but forget
    (with the spec's ``model_seed`` where it fixes them, as TOFU fixes its targets)."""
    from .models.language import language_model_for
    from .tasks.language import LanguageTask

    bundle = load_data(spec)
    tokenizer, make_model = language_model_for(spec.model, bundle, cache, spec.model_options)
    task = LanguageTask(bundle, tokenizer, make_model, device, model_name=spec.model)
    model_seed = seed if spec.model_seed is None else spec.model_seed
    original, original_meta = _train_cached(cache, task, spec, bundle.training_split(True),
                                            model_seed, "original")
    if spec.forget.requests > 1:
        return _language_sequence(spec, seed, cache, task, original, original_meta, model_seed)
    reference, reference_meta = _train_cached(cache, task, spec, bundle.training_split(False),
                                              model_seed, "retrained")
    return Scenario(spec, seed, task, with_retain_eval(bundle.splits), original, reference,
                    original_meta, reference_meta, cache=cache)


def with_retain_eval(splits: dict) -> dict:
    if "retain_eval" in splits:  # the data set's own sample (TOFU's: retain_perturbed)
        return splits
    retain = splits["retain"]
    sample = np.sort(np.random.default_rng(0).permutation(len(retain))[:RETAIN_EVAL_SIZE])
    return dict(splits, retain_eval=retain.subset(sample, "retain_eval"))


def _language_sequence(spec, seed, cache, task, original, original_meta, model_seed
                       ) -> list[Scenario]:
    """MUSE's sustainability protocol: request i forgets the disjoint set ``sustain_i``,
    starting from the model request i - 1 left. Stage i is scored as the ``scale_i`` request
    (the union of sustain_1..i: its forget, verbatim and knowledge splits), against a
    reference retrained without that union; the original is the usual target."""
    if "sustain_1" not in load_data(spec).splits:
        raise UserError(f"benchmark {spec.name!r}: sequential requests on language data need a "
                        "data set with sustain sets (news, books); use requests=1")
    if spec.dataset_options.get("forget", "forget") != "forget":
        raise UserError(f"benchmark {spec.name!r}: requests=K takes the sustain sets of the "
                        "whole forget set; drop the forget= option")
    if spec.forget.requests > N_GROUPS:
        raise UserError(f"benchmark {spec.name!r}: at most {N_GROUPS} sequential requests "
                        f"(the data set has {N_GROUPS} sustain sets), got {spec.forget.requests}")
    stages = []
    for i in range(1, spec.forget.requests + 1):
        stage = load_data(dataclasses.replace(
            spec, dataset_options={**spec.dataset_options, "forget": f"scale_{i}"}))
        reference, reference_meta = _train_cached(cache, task, spec, stage.training_split(False),
                                                  model_seed, "retrained")
        newly = stage.splits[f"sustain_{i}"]
        stages.append(Scenario(spec, seed, task, with_retain_eval(stage.splits), original,
                               reference, original_meta, reference_meta, i,
                               newly.subset(np.arange(len(newly)), "forget"), cache))
    return stages
