"""BenchmarkSpec + seed -> Scenario: the splits, the original model (trained on forget +
retain) and the retrained reference (trained on retain only), both from the model cache."""
from __future__ import annotations

import dataclasses
import inspect
import typing

import numpy as np

from .cache import ModelCache
from .data import DataBundle, Split
from .data.documents import N_GROUPS
from .errors import UserError
from .params import check_values
from .registry import benchmarks, datasets, models
from .requests.forget import select_forget
from .requests.manipulate import backdoor, swap_labels
from .requests.validation import select_validation
from .requests.worst_case import residual_fit
from .specs import (BenchmarkSpec, ForgetSpec, Recipe, check_request, coerce, forget_field,
                    variant_forget_fields, with_forget_field)
from .tasks.classification import ClassificationTask
from .unlearning import Scenario, train_cached

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
    if spec.task == "generation":
        return _generation_scenario(spec, seed, cache, device)
    if spec.task == "regression":
        return _regression_scenario(spec, seed, cache, device)
    data, manipulated, extra_splits = manipulate(load_data(spec), spec.forget, seed)
    check_class_id(spec.forget, data.num_classes)
    task = ClassificationTask(data, spec.model, device)
    original, original_meta = train_cached(cache, task, spec, data.train, seed, "original")
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
    reference, reference_meta = train_cached(cache, task, spec, splits["retain"], seed, "retrained")
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
        reference, reference_meta = train_cached(cache, task, spec, stage_splits["retain"], seed,
                                                  "retrained")
        stages.append(Scenario(spec, seed, task, stage_splits, original, reference, original_meta,
                               reference_meta, i, train.subset(requests[i - 1], "forget"), cache))
    return stages


def _generation_scenario(spec: BenchmarkSpec, seed: int, cache: ModelCache, device: str
                         ) -> Scenario:
    """A diffusion model forgets a class: the original trained on the training pool, the
    reference on all of it but the class; the judge classifier that reads their samples is
    trained once per data set (on a style x object grid, a style and an object classifier);
    the "prompts" split fixes what every model samples."""
    from .tasks.generation import JUDGE_MODEL, JUDGE_RECIPE, GenerationTask, judged_data

    data = load_data(spec)
    check_class_id(spec.forget, data.num_classes)
    if spec.forget.kind != "class" or spec.forget.requests > 1:
        raise UserError(f"benchmark {spec.name!r}: a generation benchmark forgets one class; "
                        "use forget_kind=class with requests=1")
    judges = []
    for judge_data in judged_data(data):
        judge_task = ClassificationTask(judge_data, JUDGE_MODEL, device)
        judge, _ = train_cached(cache, judge_task,
                                dataclasses.replace(spec, model=JUDGE_MODEL, recipe=JUDGE_RECIPE),
                                judge_data.train, 0, "judge")
        judges.append((judge_task, judge))
    task = GenerationTask(data, spec.model, device, judges, **spec.model_options)
    forget = np.flatnonzero(task.forgotten(data.train.targets, spec.forget.class_id).numpy())
    original, original_meta = train_cached(cache, task, spec, data.train, seed, "original")
    splits = {"forget": data.train.subset(forget, "forget"),
              "retain": data.train.subset(np.setdiff1d(np.arange(len(data.train)), forget),
                                          "retain"),
              "test": data.test, "validation": data.validation,
              task.prompts_name: task.prompts(range(data.num_classes), task.samples_per_class,
                                              task.sample_seed)}
    reference, reference_meta = train_cached(cache, task, spec, splits["retain"], seed, "retrained")
    return Scenario(spec, seed, task, splits, original, reference, original_meta, reference_meta,
                    cache=cache)


def _regression_scenario(spec: BenchmarkSpec, seed: int, cache: ModelCache, device: str
                         ) -> Scenario | list[Scenario]:
    """A regressor forgets a random share of its training pool or the request its data set
    defines (forget kind "dataset": a target range or a feature-defined group, see
    ``data/regression.py``)."""
    from .tasks.regression import RegressionTask

    data = load_data(spec)
    task = RegressionTask(data, spec.model, device, **spec.model_options)
    if spec.forget.kind == "dataset":
        if data.forget_positions is None:
            raise UserError(f"benchmark {spec.name!r}: forget_kind=dataset needs the data "
                            "set's forget option (e.g. forget=target); or use forget_kind=random")
        forget_positions = data.forget_positions
    elif spec.forget.kind == "random":
        forget_positions = select_forget(spec.forget, data.train, 1, seed)
    else:
        raise UserError(f"benchmark {spec.name!r}: a regression request is random or defined "
                        f"by the data set; forget_kind={spec.forget.kind} needs classes")
    if spec.forget.validation:
        if spec.forget.kind != "random":
            raise UserError(f"benchmark {spec.name!r}: only random regression requests have a "
                            "validation request; tune a random one")
        forget_positions = select_validation(spec.forget, data.train, 1, seed, forget_positions)
    original, original_meta = train_cached(cache, task, spec, data.train, seed, "original")
    retain_positions = np.setdiff1d(np.arange(len(data.train)), forget_positions)
    splits = {"forget": data.train.subset(forget_positions, "forget"),
              "retain": data.train.subset(retain_positions, "retain"),
              "test": data.test, "validation": data.validation}
    if spec.forget.requests > 1:
        return _sequence(spec, seed, cache, task, splits, forget_positions, original, original_meta)
    reference, reference_meta = train_cached(cache, task, spec, splits["retain"], seed, "retrained")
    return Scenario(spec, seed, task, splits, original, reference, original_meta, reference_meta,
                    cache=cache)


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

    if spec.dataset in ("rwku", "rwku-mini"):
        return _rwku_scenario(spec, seed, cache, device)
    bundle = load_data(spec)
    tokenizer, make_model = language_model_for(spec.model, bundle, cache, spec.model_options)
    task = LanguageTask(bundle, tokenizer, make_model, device, model_name=spec.model)
    model_seed = seed if spec.model_seed is None else spec.model_seed
    original, original_meta = train_cached(cache, task, spec, bundle.training_split(True),
                                            model_seed, "original")
    if spec.forget.requests > 1:
        return _language_sequence(spec, seed, cache, task, original, original_meta, model_seed)
    reference, reference_meta = train_cached(cache, task, spec, bundle.training_split(False),
                                              model_seed, "retrained")
    return Scenario(spec, seed, task, with_retain_eval(bundle.splits), original, reference,
                    original_meta, reference_meta, cache=cache)


def _rwku_scenario(spec: BenchmarkSpec, seed: int, cache: ModelCache, device: str) -> Scenario:
    """RWKU (``data/rwku.py``): the original is a model that already knows its targets, not
    trained here; the forget set is text that model wrote about them. ``rwku``: the given
    pretrained model as it is, and the reference is the original (RWKU retrains nothing).
    ``rwku-mini``: the target of ``entities-forget05`` (trained and cached as that benchmark
    trains it), its retain model as the reference, and the forget corpus its greedy answers."""
    from .data.rwku import MINI_PEOPLE, mini_base
    from .models.language import language_model_for
    from .tasks.language import LanguageTask

    bundle = load_data(spec)
    if spec.dataset == "rwku":
        if spec.model in models and not models.get(spec.model).attributes.get("pretrained"):
            raise UserError(f"benchmark {spec.name!r}: RWKU unlearns a pretrained model that "
                            "knows its targets; give model=DIR (a Hugging Face model) or a "
                            "registered pretrained model")
        tokenizer, make_model = language_model_for(spec.model, bundle, cache, spec.model_options)
        task = LanguageTask(bundle, tokenizer, make_model, device, model_name=spec.model)
        original = task.fresh_model(0)
        # Nothing is retrained: the cost a method is compared with is the recipe's epochs
        # over the forget corpus, done in no time (retrain_seconds 0).
        meta = {"role": "original", "benchmark": spec.name, "seed": seed,
                "examples": len(bundle.splits["forget"]), "train_seconds": 0.0,
                "train_cpu_seconds": 0.0}
        return Scenario(spec, seed, task, bundle.splits, original, original, meta, meta,
                        cache=cache)
    # rwku-mini's recipe and model are its base's (a variant's recipe keys train the base)
    base = dataclasses.replace(get_spec(mini_base(spec.dataset_options.get("n_entities",
                                                                          MINI_PEOPLE))),
                               recipe=spec.recipe, model_options=spec.model_options)
    base_bundle = load_data(base)
    tokenizer, make_model = language_model_for(base.model, base_bundle, cache,
                                               base.model_options)
    base_task = LanguageTask(base_bundle, tokenizer, make_model, device, model_name=base.model)
    original, original_meta = train_cached(cache, base_task, base,
                                           base_bundle.training_split(True), base.model_seed,
                                           "original")
    reference, reference_meta = train_cached(cache, base_task, base,
                                             base_bundle.training_split(False),
                                             base.model_seed, "retrained")
    prompts = bundle.splits["forget"]
    answers = base_task.generate(original, prompts)
    corpus = prompts.with_records([dict(r, answer=a) for r, a in zip(prompts.records, answers)])
    bundle = dataclasses.replace(bundle, splits=dict(bundle.splits, forget=corpus))
    task = LanguageTask(bundle, tokenizer, make_model, device, model_name=base.model)
    return Scenario(spec, seed, task, bundle.splits, original, reference, original_meta,
                    reference_meta, cache=cache)


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
        reference, reference_meta = train_cached(cache, task, spec, stage.training_split(False),
                                                  model_seed, "retrained")
        newly = stage.splits[f"sustain_{i}"]
        stages.append(Scenario(spec, seed, task, with_retain_eval(stage.splits), original,
                               reference, original_meta, reference_meta, i,
                               newly.subset(np.arange(len(newly)), "forget"), cache))
    return stages
